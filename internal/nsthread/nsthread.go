//go:build linux

// Package nsthread runs a function on an OS thread of its own that is
// thrown away afterwards, so that the function may change the thread's
// namespaces (setns, unshare) without any other goroutine ever running in
// them.
package nsthread

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a locked, disposable thread and returns its error. The Go
// runtime does not end the main thread when a goroutine locked to it
// exits (it parks it, namespaces and all, and /proc/self then shows its
// namespaces): when the goroutine lands there, fn runs on another thread
// while the main thread stays locked and untouched.
func Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			ch <- fn() // never unlocked: the thread dies with the goroutine
			return
		}
		// on the main thread: hold it while another thread does the work
		inner := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // not the main thread: that one is held here
			inner <- fn()
		}()
		err := <-inner
		runtime.UnlockOSThread() // the main thread was never changed
		ch <- err
	}()
	return <-ch
}

// InNetns runs fn as Do does, inside the network namespace at path (a
// /proc/PID/ns/net, /run/netns entry or /proc/PID/fd link); "" runs it in
// the caller's own namespace, still on a disposable thread.
func InNetns(path string, fn func() error) error {
	return Do(func() error {
		if path != "" {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
			if err != nil {
				return fmt.Errorf("enter network namespace %s: %w", path, err)
			}
		}
		return fn()
	})
}
