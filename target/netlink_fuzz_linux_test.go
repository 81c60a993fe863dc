//go:build linux

package target

import "testing"

// Netlink attributes come from the kernel, but a parser bug must still
// never read past its buffer: any bytes, nested to two levels as the link
// and filter dumps read them, yield payloads inside the input or stop.
func FuzzNetlinkAttrs(f *testing.F) {
	f.Add([]byte{8, 0, 3, 0, 'l', 'o', 0, 0})
	f.Add([]byte{12, 0, 43 | 0x80, 0, 8, 0, 4, 0, 7, 0, 0, 0})
	f.Add([]byte{3, 0, 1, 0})
	f.Add([]byte{255, 255, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		for typ, v := range attrs(b) {
			if len(v) > len(b) || typ&0xc000 != 0 {
				t.Fatalf("attribute %d of %d bytes from %d", typ, len(v), len(b))
			}
			for _, w := range attrs(v) {
				if len(w) > len(v) {
					t.Fatalf("nested attribute of %d bytes from %d", len(w), len(v))
				}
				_ = cstr(w)
			}
			if n++; n > len(b)/4+1 {
				t.Fatalf("%d attributes from %d bytes", n, len(b))
			}
		}
	})
}
