package main

import (
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
