// Command bpftoken is the sensor's BPF token test helper (Linux 6.9+). Run
// as root, it starts a copy of itself in a new user namespace (its root
// mapped to an unprivileged host uid), which opens a bpffs context there;
// the privileged parent sets the delegation options on it and mounts it
// (only init-namespace root may delegate); the child then creates a token
// from the mount (BPF_TOKEN_CREATE) and runs a loader (bpfload) with the
// token as fd 3, passing it the remaining arguments. The child is the
// token's creator; the loader is the unprivileged process that uses it.
// It prints one JSON line about the token, then the loader's output.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

type tokenInfo struct {
	CreatorPID int    `json:"creator_pid"`
	TokenFD    int    `json:"token_fd"`
	Fdinfo     string `json:"fdinfo"`
	UserNS     string `json:"userns"`
}

func main() {
	child := flag.Bool("child", false, "internal: the user-namespace side")
	cmds := flag.String("delegate-cmds", "prog_load:map_create:btf_load", "delegate_cmds mount option")
	progs := flag.String("delegate-progs", "kprobe:socket_filter:tracepoint", "delegate_progs mount option")
	maps := flag.String("delegate-maps", "array", "delegate_maps mount option")
	attachs := flag.String("delegate-attachs", "any", "delegate_attachs mount option")
	loader := flag.String("loader", "bpfload", "the loader to run with the token as fd 3")
	// As the kernel's own token selftests do: the namespace's root is the
	// caller's uid. Mapped to another uid (65534), fsopen("bpf") in the
	// namespace fails with EPERM on 6.18 and 7.3 (not understood yet).
	hostUID := flag.Int("host-uid", 0, "host uid the namespace's root maps to")
	flag.Parse()
	if *child {
		runChild(*loader, flag.Args())
		return
	}
	// Parent: a socket pair carries the bpffs context fd up and the mount fd down.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	fatalIf("socketpair", err)
	self, err := os.Executable()
	fatalIf("executable", err)
	cmd := exec.Command(self, append([]string{"-child", "-loader", *loader, "--"}, flag.Args()...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(sp[1]), "sock")} // fd 3 in the child
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: *hostUID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: *hostUID, Size: 1}},
	}
	fatalIf("start the namespace side", cmd.Start())
	unix.Close(sp[1])
	fsfd := recvFD(sp[0])
	for k, v := range map[string]string{"delegate_cmds": *cmds, "delegate_progs": *progs, "delegate_maps": *maps, "delegate_attachs": *attachs} {
		if v == "" {
			continue
		}
		fatalIf("fsconfig "+k, unix.FsconfigSetString(fsfd, k, v))
	}
	fatalIf("fsconfig create", unix.FsconfigCreate(fsfd))
	mfd, err := unix.Fsmount(fsfd, 0, 0)
	fatalIf("fsmount", err)
	sendFD(sp[0], mfd)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	fatalIf("namespace side", err)
}

func runChild(loader string, args []string) {
	sock := 3
	fsfd, err := unix.Fsopen("bpf", 0)
	fatalIf("fsopen bpf", err)
	sendFD(sock, fsfd)
	mfd := recvFD(sock)
	// fsmount gives an O_PATH fd, which BPF_TOKEN_CREATE refuses (EBADF):
	// open the mount's root through it.
	root, err := unix.Openat(mfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	fatalIf("open the bpffs root", err)
	var attr [2]uint32 // token_create: flags, bpffs_fd
	attr[1] = uint32(root)
	tfd, _, errno := unix.Syscall(unix.SYS_BPF, 36 /* BPF_TOKEN_CREATE */, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		fatalIf("BPF_TOKEN_CREATE", errno)
	}
	fdinfo, _ := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(tfd)))
	ns, _ := os.Readlink("/proc/self/ns/user")
	b, _ := json.Marshal(tokenInfo{CreatorPID: os.Getpid(), TokenFD: int(tfd), Fdinfo: string(fdinfo), UserNS: ns})
	fmt.Println(string(b))
	cmd := exec.Command(loader, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{os.NewFile(tfd, "token")} // fd 3 in the loader
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Printf("{\"loader_signal\":%d}\n", int(ws.Signal()))
			return
		}
		os.Exit(ee.ExitCode())
	}
	fatalIf("loader", err)
}

func sendFD(sock, fd int) {
	fatalIf("send fd", unix.Sendmsg(sock, []byte{0}, unix.UnixRights(fd), nil, 0))
}

func recvFD(sock int) int {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, 0)
	fatalIf("receive fd", err)
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	fatalIf("parse control message", err)
	if len(msgs) != 1 {
		fatalIf("receive fd", fmt.Errorf("%d control messages", len(msgs)))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	fatalIf("parse rights", err)
	if len(fds) != 1 {
		fatalIf("receive fd", fmt.Errorf("%d fds", len(fds)))
	}
	return fds[0]
}

func fatalIf(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "bpftoken: %s: %v\n", what, err)
		os.Exit(1)
	}
}
