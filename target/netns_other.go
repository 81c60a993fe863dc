//go:build !linux

package target

import "fmt"

func ownNetNS() uint32 { return 0 }

func interfaceName(ifindex, ino, pid uint32) (string, error) {
	return "", fmt.Errorf("ifindex %d: interfaces are named on Linux only", ifindex)
}

func mapName(id uint32) string { return "" }

// Interface is a network interface in one network namespace.
type Interface struct {
	NetNS   uint32
	Ifindex uint32
	Name    string
}

// Interfaces lists interfaces per network namespace (Linux only).
func Interfaces() ([]Interface, error) {
	return nil, fmt.Errorf("interfaces are listed per network namespace on Linux only")
}
