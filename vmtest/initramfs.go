package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// File is one regular file of an initramfs.
type File struct {
	// Name is the path inside the image, relative ("init", "suites/x.test").
	Name string
	// Mode holds the permission bits (0o755 for executables).
	Mode fs.FileMode
	Data []byte
}

// WriteInitramfs writes files as an uncompressed cpio archive in the "newc"
// format the kernel unpacks into its rootfs. Parent directories are added
// (mode 0755) before their first file, every timestamp and owner is zero so
// the same inputs give the same bytes.
func WriteInitramfs(w io.Writer, files []File) error {
	bw := bufio.NewWriter(w)
	cw := cpioWriter{w: bw, ino: 1}
	dirs := map[string]bool{}
	for _, f := range files {
		name := path.Clean(f.Name)
		if f.Name == "" || path.IsAbs(f.Name) || name == "." || strings.HasPrefix(name, "../") || name == ".." {
			return fmt.Errorf("initramfs file %q: want a relative path inside the image", f.Name)
		}
		if f.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("initramfs file %q: mode %v is not a plain permission", f.Name, f.Mode)
		}
		var parents []string
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			parents = append(parents, d)
		}
		slices.Reverse(parents)
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := cw.entry(d, 0o040000|0o755, nil); err != nil {
				return err
			}
		}
		if dirs[name] {
			return fmt.Errorf("initramfs file %q: already a directory", f.Name)
		}
		if err := cw.entry(name, 0o100000|uint32(f.Mode.Perm()), f.Data); err != nil {
			return err
		}
	}
	if err := cw.entry("TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return bw.Flush()
}

type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	off int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	if err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	return nil
}

// pad aligns the archive to 4 bytes, as newc requires after names and data.
func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	if uint64(len(data)) > 0xffffffff {
		return fmt.Errorf("initramfs file %q: %d bytes do not fit newc's 32-bit size", name, len(data))
	}
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	ino := c.ino
	c.ino++
	if name == "TRAILER!!!" {
		ino, nlink = 0, 1
	}
	// Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with NUL), check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if err := c.write([]byte(hdr)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}
