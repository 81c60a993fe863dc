package sensor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadAttachConfigStopsOnceEverySymbolIsFound(t *testing.T) {
	core := "ffffffff81000000 T _text\n" +
		"ffffffffc0000000 d perf_fops\t[kvm]\n" + // a module's: not the core one
		"ffffffff82000010 d bpf_prog_fops\n" +
		"ffffffff82000020 d bpf_link_fops\n" +
		"ffffffff82000030 d bpf_link_fops_poll\n" +
		"ffffffff82000040 d perf_fops\n"
	want := sentrySentryAttachCfg{ProgFops: 0xffffffff82000010, LinkFops: 0xffffffff82000020,
		LinkFopsPoll: 0xffffffff82000030, PerfFops: 0xffffffff82000040, MapFops: 0xffffffff82000050}
	// A line longer than the scanner takes fails the read when it is read.
	tooLong := strings.Repeat("x", 1<<17) + "\n"
	for _, tc := range []struct {
		name, text string
		want       sentrySentryAttachCfg
		err        bool
	}{
		{"all five found: the rest of the file is not read", core + "ffffffff82000050 d bpf_map_fops\n" + tooLong, want, false},
		{"a later line of a found symbol is not taken", core + "ffffffff82000050 d bpf_map_fops\nffffffff8200ffff d bpf_prog_fops\n", want, false},
		{"one missing: read to the end", core + tooLong, sentrySentryAttachCfg{ProgFops: want.ProgFops, LinkFops: want.LinkFops,
			LinkFopsPoll: want.LinkFopsPoll, PerfFops: want.PerfFops}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kallsyms")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readAttachConfig(path)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want an error: %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
