package loaderrun

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

// FuzzParse: any bytes give a run or an error, never a panic; a record of
// the right size always parses, and what it says round-trips.
func FuzzParse(f *testing.F) {
	var e LoaderrunLoaderrunEvent
	e.Tgid, e.Tid, e.ProgId, e.Stopped, e.Ret = 7, 8, 9, 1, -22
	copy(e.Tag[:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
	for i, c := range "__loader.prog" {
		e.Name[i] = int8(c)
	}
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, &e)
	f.Add(b.Bytes())
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, int(unsafe.Sizeof(e))+3))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parse(raw)
		if len(raw) >= int(unsafe.Sizeof(e)) {
			if err != nil {
				t.Fatalf("a %d-byte record failed: %v", len(raw), err)
			}
			if len(r.ProgTag) != 16 || len(r.ProgName) > 16 || len(r.Comm) > 16 {
				t.Fatalf("run %+v", r)
			}
			return
		}
		if err == nil {
			t.Fatalf("a %d-byte record parsed", len(raw))
		}
	})
}
