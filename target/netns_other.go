//go:build !linux

package target

import "fmt"

func ownNetNS() uint32 { return 0 }

func interfaceName(ifindex, ino, pid uint32) (string, error) {
	return "", fmt.Errorf("ifindex %d: interfaces are named on Linux only", ifindex)
}

func mapName(id uint32) string { return "" }
