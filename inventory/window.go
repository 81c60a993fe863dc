package inventory

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LoadedBetween lists the ids of the programs whose load time
// (bpf_prog_info.load_time, CLOCK_BOOTTIME nanoseconds) lies in [from, to]:
// what appeared while a syscall program ran, whichever way it was loaded.
// Programs unloaded meanwhile are skipped; they are gone.
func LoadedBetween(from, to uint64) ([]uint32, error) {
	ids, err := ProgramIDs()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, id := range ids {
		fd, err := fdByID(cmdProgGetFDByID, id)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var info progInfo
		err = objInfo(fd, unsafe.Pointer(&info), uint32(unsafe.Sizeof(info)))
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		if info.LoadTime >= from && info.LoadTime <= to {
			out = append(out, id)
		}
	}
	return out, nil
}
