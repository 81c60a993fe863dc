//go:build unix

package output

import (
	"errors"
	"syscall"
)

// oNoFollow makes opening a symbolic link fail (ELOOP).
const oNoFollow = syscall.O_NOFOLLOW

func isSymlinkRefusal(err error) bool { return errors.Is(err, syscall.ELOOP) }
