package main

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapWrite is -map-write-id: what an attacker of the sensor's own state
// does. It asks for an fd on map id (no flags, as bpftool does), then
// writes zeros (valueSize bytes) at key 0, and prints one result line:
// ret 0 when both worked, else -1 with the failing step's error.
func mapWrite(id, valueSize uint32) {
	res := struct {
		Ret   int    `json:"ret"`
		Step  string `json:"step,omitempty"`
		Error string `json:"error,omitempty"`
	}{}
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	byID := struct{ id, next, flags uint32 }{id: id}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_GET_FD_BY_ID, uintptr(unsafe.Pointer(&byID)), unsafe.Sizeof(byID))
	if errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_MAP_GET_FD_BY_ID", errno.Error()
		return
	}
	key := uint32(0)
	value := make([]byte, valueSize)
	upd := struct {
		fd    uint32
		_     uint32
		key   uint64
		value uint64
		flags uint64
	}{fd: uint32(fd), key: uint64(uintptr(unsafe.Pointer(&key))), value: uint64(uintptr(unsafe.Pointer(&value[0])))}
	_, _, errno = unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_UPDATE_ELEM, uintptr(unsafe.Pointer(&upd)), unsafe.Sizeof(upd))
	runtime.KeepAlive(value)
	runtime.KeepAlive(&key)
	if errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_MAP_UPDATE_ELEM", errno.Error()
	}
}

// attachToProg is -attach-to-prog-id: an attacker of the sensor's own
// programs. It asks for an fd on program id (allowed: read access), then,
// by how: "fentry" loads a tracing program with attach_prog_fd naming it,
// "freplace" an extension program the same way, "link" calls
// BPF_LINK_CREATE with it as target_fd. One result line: ret 0 when every
// step worked, else -1 with the failing step's error.
func attachToProg(id uint32, how string) {
	res := struct {
		Ret   int    `json:"ret"`
		Step  string `json:"step,omitempty"`
		Error string `json:"error,omitempty"`
	}{}
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	byID := struct{ id, next, flags uint32 }{id: id}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_GET_FD_BY_ID, uintptr(unsafe.Pointer(&byID)), unsafe.Sizeof(byID))
	if errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_PROG_GET_FD_BY_ID", errno.Error()
		return
	}
	if how == "link" {
		lc := struct{ progFD, targetFD, attachType, flags uint32 }{progFD: uint32(fd), targetFD: uint32(fd)}
		_, _, errno = unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&lc)), unsafe.Sizeof(lc))
		if errno != 0 {
			res.Ret, res.Step, res.Error = -1, "BPF_LINK_CREATE", errno.Error()
		}
		return
	}
	insns := []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0} // r0 = 0; exit
	license := []byte("GPL\x00")
	var attr [128]byte
	put := func(off int, v uint32) { binary.LittleEndian.PutUint32(attr[off:], v) }
	put64 := func(off int, v uint64) { binary.LittleEndian.PutUint64(attr[off:], v) }
	switch how {
	case "fentry":
		put(0, unix.BPF_PROG_TYPE_TRACING)
		put(68, unix.BPF_TRACE_FENTRY) // expected_attach_type
	case "freplace":
		put(0, unix.BPF_PROG_TYPE_EXT)
	default:
		res.Ret, res.Step, res.Error = -1, "args", "-attach-how: fentry, freplace or link"
		return
	}
	put(4, 2)                                               // insn_cnt
	put64(8, uint64(uintptr(unsafe.Pointer(&insns[0]))))    // insns
	put64(16, uint64(uintptr(unsafe.Pointer(&license[0])))) // license
	put(108, 1)                                             // attach_btf_id: a function of the target's BTF
	put(112, uint32(fd))                                    // attach_prog_fd
	pfd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_PROG_LOAD", errno.Error()
		return
	}
	unix.Close(int(pfd))
}

// sendSignal is -signal-pid: kill(pid, sig), as an attacker of the agent
// would. One result line: ret 0, or -1 with the error.
func sendSignal(pid, sig int) {
	res := struct {
		Ret   int    `json:"ret"`
		Step  string `json:"step,omitempty"`
		Error string `json:"error,omitempty"`
	}{}
	if err := unix.Kill(pid, unix.Signal(sig)); err != nil {
		res.Ret, res.Step, res.Error = -1, "kill", err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// detachFakeLink is -fake-link-id: BPF_LINK_DETACH on a program fd whose
// struct bpf_prog has id where a struct bpf_link has its id. One result
// line: ret 0, or -1 with the failing step and error (EINVAL from the
// kernel: not a link).
func detachFakeLink(id uint32) {
	res := struct {
		Ret   int    `json:"ret"`
		Step  string `json:"step,omitempty"`
		Error string `json:"error,omitempty"`
	}{}
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	insns := make([]byte, 16)
	insns[0], insns[8] = 0xb7, 0x95 // r0 = 0; exit
	license := []byte("GPL\x00")
	load := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
		kernVersion       uint32
		progFlags         uint32
		progName          [16]byte
		progIfindex       uint32
		expectedAttach    uint32
	}{progType: 1 /* socket filter */, insnCnt: 2, insns: uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license: uint64(uintptr(unsafe.Pointer(&license[0]))), expectedAttach: id}
	pfd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&load)), unsafe.Sizeof(load))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_PROG_LOAD", errno.Error()
		return
	}
	defer unix.Close(int(pfd))
	detach := struct{ linkFD uint32 }{linkFD: uint32(pfd)}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_DETACH, uintptr(unsafe.Pointer(&detach)), unsafe.Sizeof(detach)); errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_LINK_DETACH", errno.Error()
	}
}

// detachLink is -detach-link-id: BPF_LINK_GET_FD_BY_ID, then
// BPF_LINK_DETACH on that fd. One result line, as detachFakeLink's.
func detachLink(id uint32) {
	res := struct {
		Ret   int    `json:"ret"`
		Step  string `json:"step,omitempty"`
		Error string `json:"error,omitempty"`
	}{}
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	get := struct{ id, next, flags uint32 }{id: id}
	lfd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_GET_FD_BY_ID, uintptr(unsafe.Pointer(&get)), unsafe.Sizeof(get))
	if errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_LINK_GET_FD_BY_ID", errno.Error()
		return
	}
	defer unix.Close(int(lfd))
	detach := struct{ linkFD uint32 }{linkFD: uint32(lfd)}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_DETACH, uintptr(unsafe.Pointer(&detach)), unsafe.Sizeof(detach)); errno != 0 {
		res.Ret, res.Step, res.Error = -1, "BPF_LINK_DETACH", errno.Error()
	}
}
