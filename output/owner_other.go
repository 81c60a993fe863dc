//go:build !unix

package output

import "os"

// fileOwner is unknown off Unix.
func fileOwner(os.FileInfo) (int, bool) { return 0, false }
