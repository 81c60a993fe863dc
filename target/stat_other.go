//go:build !linux

package target

import "os"

func statIno(os.FileInfo) (uint64, bool) { return 0, false }
