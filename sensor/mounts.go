package sensor

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func ensureTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events/syscalls/sys_enter_bpf", "/sys/kernel/debug/tracing/events/syscalls/sys_enter_bpf"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount tracefs at /sys/kernel/tracing: %w", err)
	}
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_enter_bpf"); err != nil {
		return fmt.Errorf("syscall tracepoints missing (CONFIG_FTRACE_SYSCALLS?): %w", err)
	}
	return nil
}

func ensureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
		return fmt.Errorf("mount bpffs at /sys/fs/bpf: %w", err)
	}
	return nil
}
