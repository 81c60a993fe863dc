package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// WriterSink writes JSON lines to an io.Writer (stdout).
type WriterSink struct {
	name string
	w    io.Writer
	buf  []byte
}

// NewWriterSink writes one JSON object per line to w.
func NewWriterSink(name string, w io.Writer) *WriterSink { return &WriterSink{name: name, w: w} }

// Name implements Sink.
func (s *WriterSink) Name() string { return s.name }

// Send implements Sink with one Write per batch.
func (s *WriterSink) Send(_ context.Context, recs []Record) (int, error) {
	s.buf = appendLines(s.buf[:0], recs)
	if _, err := s.w.Write(s.buf); err != nil {
		return 0, &DropError{Reason: ioReason(err), Err: fmt.Errorf("write %s: %w", s.name, err)}
	}
	return len(recs), nil
}

// Close implements Sink; the writer is the caller's to close.
func (s *WriterSink) Close() error { return nil }

func appendLines(b []byte, recs []Record) []byte {
	for _, r := range recs {
		b = append(b, r.JSON...)
		b = append(b, '\n')
	}
	return b
}

// ioReason classifies a write error for the loss counters.
func ioReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return "disk_full"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, os.ErrClosed):
		return "closed"
	}
	return "io_error"
}

// FileSink appends JSON lines to a file and rotates it by size: when the next
// line would push the file past MaxSize, path.1 … path.Keep-1 shift up one,
// path becomes path.1 and a new path is started. A line is never split
// across files, and a failed write (disk full) is cut back off the file, so
// readers never see a torn line.
type FileSink struct {
	path    string
	maxSize int64
	keep    int
	f       *os.File
	size    int64
	regular bool
	buf     []byte
}

// NewFileSink opens (appending to) path. maxSize <= 0 disables rotation;
// keep is how many rotated files to keep (at least 1 when rotating).
func NewFileSink(path string, maxSize int64, keep int) (*FileSink, error) {
	if maxSize > 0 && keep < 1 {
		keep = 1
	}
	s := &FileSink{path: path, maxSize: maxSize, keep: keep}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FileSink) open() error {
	// Never through a symlink (another user could point it at a file the
	// agent, as root, would then append to), and readable by root alone:
	// events carry program contents and loader details.
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|oNoFollow, 0o600)
	if isSymlinkRefusal(err) {
		return fmt.Errorf("open event file %s: it is a symbolic link, which the file sink does not follow", s.path)
	}
	if err != nil {
		return fmt.Errorf("open event file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat event file: %w", err)
	}
	s.f, s.size, s.regular = f, st.Size(), st.Mode().IsRegular()
	if !st.Mode().IsRegular() {
		s.maxSize = 0 // a device or fifo (/dev/full, a pipe): nothing to rotate
	}
	return nil
}

// Name implements Sink.
func (s *FileSink) Name() string { return "file:" + s.path }

// Send implements Sink: consecutive lines that fit before the size limit are
// written with one write each, rotating between them.
func (s *FileSink) Send(_ context.Context, recs []Record) (int, error) {
	done := 0
	for done < len(recs) {
		if s.f == nil {
			if err := s.open(); err != nil {
				return done, &DropError{Reason: ioReason(err), Err: err}
			}
		}
		// Take as many lines as fit; at least one (a line larger than
		// MaxSize gets a file to itself rather than being cut).
		s.buf = s.buf[:0]
		n := 0
		for _, r := range recs[done:] {
			l := int64(len(r.JSON) + 1)
			if s.maxSize > 0 && s.size+int64(len(s.buf))+l > s.maxSize && (n > 0 || s.size > 0) {
				break
			}
			s.buf = append(s.buf, r.JSON...)
			s.buf = append(s.buf, '\n')
			n++
		}
		if n == 0 {
			if err := s.rotate(); err != nil {
				return done, &DropError{Reason: ioReason(err), Err: err}
			}
			continue
		}
		if err := s.write(s.buf); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// write appends b whole or not at all.
func (s *FileSink) write(b []byte) error {
	w, err := s.f.Write(b)
	if err == nil {
		s.size += int64(w)
		return nil
	}
	if w > 0 && s.regular {
		// Cut the partial write back off so no torn line stays behind.
		if terr := s.f.Truncate(s.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut back partial write: %w", terr))
		}
	}
	return &DropError{Reason: ioReason(err), Err: fmt.Errorf("write event file %s: %w", s.path, err)}
}

func (s *FileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close event file before rotation: %w", err)
	}
	s.f = nil
	// Shift only the files that exist: stat upwards to the first gap
	// instead of trying keep renames (keep may be large).
	top := 0
	for top < s.keep {
		if _, err := os.Lstat(s.path + "." + strconv.Itoa(top+1)); err != nil {
			break
		}
		top++
	}
	if top == s.keep {
		if err := os.Remove(s.path + "." + strconv.Itoa(top)); err != nil {
			return fmt.Errorf("rotate event file: %w", err)
		}
		top--
	}
	for i := top; i >= 1; i-- {
		if err := os.Rename(s.path+"."+strconv.Itoa(i), s.path+"."+strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("rotate event file: %w", err)
		}
	}
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		return fmt.Errorf("rotate event file: %w", err)
	}
	return s.open()
}

// Close implements Sink.
func (s *FileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
