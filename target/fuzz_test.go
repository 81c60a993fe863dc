package target

import (
	"os"
	"path/filepath"
	"testing"
)

// The probe lists in tracefs are parsed to name legacy kprobes and uprobes:
// any content yields a target or an unresolved one, never a panic.
func FuzzLegacyProbeLists(f *testing.F) {
	f.Add("p:uprobes/p_x /lib/x86_64-linux-gnu/libc.so.6:0x1234\n", "p:kprobes/p_y vfs_read+4\n")
	f.Add("r:uprobes/p_x /bin/true:0x10(0x20)\n", "r:kprobes/p_y \n")
	f.Add(":\n::\np:\n", "p:kprobes/p_y")
	f.Fuzz(func(t *testing.T, uprobes, kprobes string) {
		root := t.TempDir()
		for _, ev := range []string{"uprobes/p_x", "kprobes/p_y"} {
			dir := filepath.Join(root, "events", ev)
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "id"), []byte(map[string]string{"uprobes/p_x": "1", "kprobes/p_y": "2"}[ev]), 0o644)
		}
		os.WriteFile(filepath.Join(root, "uprobe_events"), []byte(uprobes), 0o644)
		os.WriteFile(filepath.Join(root, "kprobe_events"), []byte(kprobes), 0o644)
		r := &Resolver{Tracefs: root, pmu: map[uint32]string{}}
		for _, id := range []uint64{1, 2} {
			tg := r.Resolve(Raw{AttachType: 41, PerfFound: true, PerfType: 2, PerfConfig: id})
			if tg.Name == "" && tg.Unresolved == "" {
				t.Fatalf("id %d: no name and no reason", id)
			}
		}
	})
}
