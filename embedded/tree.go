package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is one regular file of a tree that holds BPF objects.
type File struct {
	Path    string
	Size    int64
	Objects []Object
	// Loaders are the offsets of light-skeleton loader programs.
	Loaders []int64
	// Open file, valid during the visit only: read the objects from it.
	Reader *os.File
}

// TreeStats counts what ScanTree read, and what it could not.
type TreeStats struct {
	Files  int64    `json:"files_scanned"`
	Bytes  int64    `json:"bytes_scanned"`
	Errors []string `json:"errors,omitempty"` // one per file or folder that could not be read
}

// ScanTree finds the BPF objects in every regular file under root (symbolic
// links are not followed: inside a container image they point at the host)
// and calls visit for each file that holds any. Files and folders that
// cannot be read are listed in TreeStats.Errors and the walk goes on; an
// error from visit stops it.
func ScanTree(root string, visit func(File) error) (TreeStats, error) {
	var st TreeStats
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", path, unwrapPath(err)))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", path, unwrapPath(err)))
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", path, unwrapPath(err)))
			return nil
		}
		st.Files++
		st.Bytes += fi.Size()
		objs, loaders, err := FindAll(f, fi.Size())
		if err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", path, unwrapPath(err)))
		}
		if len(objs) == 0 && len(loaders) == 0 {
			return nil
		}
		return visit(File{Path: path, Size: fi.Size(), Objects: objs, Loaders: loaders, Reader: f})
	})
	return st, err
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
