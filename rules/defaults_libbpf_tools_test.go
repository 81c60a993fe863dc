package rules

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// embeddedBPFObjects finds the BPF ELF objects a libbpf skeleton binary
// embeds (its whole object is a byte array in .rodata): an ELF header with
// EM_BPF, cut at the end of its section header table.
func embeddedBPFObjects(data []byte) [][]byte {
	var out [][]byte
	for i := 1; ; {
		j := bytes.Index(data[i:], []byte(elf.ELFMAG))
		if j < 0 {
			return out
		}
		o := data[i+j:]
		i += j + 1
		if len(o) < 64 || o[elf.EI_CLASS] != byte(elf.ELFCLASS64) || elf.Machine(binary.LittleEndian.Uint16(o[18:])) != elf.EM_BPF {
			continue
		}
		shoff := binary.LittleEndian.Uint64(o[40:])
		end := shoff + uint64(binary.LittleEndian.Uint16(o[58:]))*uint64(binary.LittleEndian.Uint16(o[60:]))
		if end <= uint64(len(o)) {
			out = append(out, o[:end])
		}
	}
}

// TestDefaultRulesLeaveLibbpfToolsAlone judges every program of Debian's
// libbpf-tools (bcc's tools built with libbpf skeletons; scripts/deps.sh
// installs them) with the defaults: ordinary observability tools must raise
// nothing.
func TestDefaultRulesLeaveLibbpfToolsAlone(t *testing.T) {
	out, err := exec.Command("dpkg", "-L", "libbpf-tools").Output()
	if err != nil {
		t.Skipf("libbpf-tools is not installed (scripts/deps.sh installs it): %v", err)
	}
	set := MustDefaults()
	seed, err := LoadFile("examples/seed-prog-names.yaml")
	if err != nil {
		t.Fatal(err)
	}
	progs, named := 0, 0
	for _, path := range strings.Fields(string(out)) {
		if !strings.HasPrefix(path, "/usr/sbin/") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			continue // a directory
		}
		for k, obj := range embeddedBPFObjects(data) {
			name := filepath.Base(path)
			ps, err := program.FromELFReader(name, bytes.NewReader(obj))
			if err != nil {
				// Weak USDT maps (javagc): the object reader's half of
				// issue 16; logged, judged once the reader takes them.
				t.Logf("%s: embedded object %d not judged: %v", name, k, err)
				continue
			}
			for _, p := range ps {
				progs++
				v := Evaluate(set, p, analysis.Analyze(p, nil))
				for _, h := range v.Hits {
					t.Errorf("%s: program %s (%s): default rule %s matched: %v", name, p.Name, p.Section, h.ID, h.Why)
				}
				if len(Evaluate(seed, p, nil).Hits) > 0 {
					named++
				}
			}
		}
	}
	if progs < 100 {
		t.Fatalf("judged %d programs of libbpf-tools, expected hundreds: the embedded objects were not found", progs)
	}
	// Why seed-prog-names is opt-in: libbpf-tools names programs handle_*.
	if named == 0 {
		t.Error("the opt-in seed-prog-names matches no libbpf-tools program: docs/RULES.md says it does")
	}
	t.Logf("%d libbpf-tools programs, no default rule matched; the opt-in seed-prog-names matches %d", progs, named)
}
