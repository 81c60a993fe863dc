//go:build !linux

package nsthread

import "runtime"

// Do runs fn on a locked thread (namespaces are Linux's; nothing changes
// a thread elsewhere).
func Do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}
