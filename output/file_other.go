//go:build !unix

package output

// oNoFollow: no such open flag on this platform.
const oNoFollow = 0

func isSymlinkRefusal(error) bool { return false }
