package embedded

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzFind(f *testing.F) {
	objs, _ := filepath.Glob("../testdata/*.o")
	for _, o := range objs {
		if b, err := os.ReadFile(o); err == nil && len(b) < 9*1024 {
			f.Add(append([]byte("junk\x7fELF\x02\x01\x01"), b...))
		}
	}
	if b, err := os.ReadFile("../testdata/lskel/exechijack-lskel"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\xf7\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, loaders, err := FindAll(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range loaders {
			l, err := DecodeLightSkeleton(data, off)
			if err != nil {
				continue
			}
			for _, p := range l.Programs {
				if p.InsnsOffset < 0 || p.InsnsOffset+int64(len(p.Insns)) > int64(len(data)) || len(p.Insns)%8 != 0 {
					t.Fatalf("program %s outside the input", p.Name)
				}
			}
		}
		end := int64(0)
		for _, o := range got {
			if o.Offset < end || o.Size < 64 || o.Offset+o.Size > int64(len(data)) {
				t.Fatalf("object %+v overlaps the previous (ends %d) or leaves the %d-byte input", o, end, len(data))
			}
			if !bytes.HasPrefix(data[o.Offset:], []byte("\x7fELF")) {
				t.Fatalf("object %+v does not start with the ELF magic", o)
			}
			end = o.Offset + o.Size
		}
	})
}
