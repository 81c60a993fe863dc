package inventory

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

const cmdLinkDetach = 34 // BPF_LINK_DETACH

// DetachLink detaches link id from its target (BPF_LINK_DETACH): the link
// stays as an object but no longer runs its program.
func DetachLink(id uint32) error {
	fd, err := fdByID(cmdLinkGetFDByID, id)
	if err != nil {
		return fmt.Errorf("open link %d: %w", id, err)
	}
	defer unix.Close(fd)
	attr := [1]uint32{uint32(fd)}
	if _, err := bpf(cmdLinkDetach, unsafe.Pointer(&attr), 4); err != nil {
		return fmt.Errorf("detach link %d: %w", id, err)
	}
	return nil
}

// KillHolder sends SIGKILL to h.PID if that process still holds fd h.FD on
// object id (key "prog_id" or "link_id" in its fdinfo). The check is made
// through a pidfd opened first, so a pid reused meanwhile is never signalled.
func KillHolder(root string, h Holder, key string, id uint32) error {
	if root == "" {
		root = "/"
	}
	pidfd, err := unix.PidfdOpen(int(h.PID), 0)
	if err != nil {
		return fmt.Errorf("pid %d: %w", h.PID, err)
	}
	defer unix.Close(pidfd)
	b, err := os.ReadFile(filepath.Join(root, "proc", strconv.Itoa(int(h.PID)), "fdinfo", strconv.Itoa(h.FD)))
	if err != nil {
		return fmt.Errorf("pid %d no longer holds fd %d: %w", h.PID, h.FD, err)
	}
	f := parseFDInfo(b)
	got := f.prog
	if key == "link_id" {
		got = f.link
	}
	if got != id || !bytes.Contains(b, []byte(key)) {
		return fmt.Errorf("pid %d fd %d no longer refers to %s %d", h.PID, h.FD, key, id)
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
		return fmt.Errorf("kill pid %d: %w", h.PID, err)
	}
	return nil
}
