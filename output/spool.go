package output

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// A spool is a bounded first-in first-out queue of messages on disk, where a
// network sink keeps what it could not deliver during an outage.
//
// Layout: DIR/<16 hex digits>.seg segment files, appended in order, and
// DIR/cursor, the position (segment, offset) of the first message not yet
// delivered. A record is
//
//	u32 payload length | u32 CRC-32C of the payload | payload
//	payload: u16 flags+len | subject | u16 len | id | data
//
// all little-endian. Bit 15 of the subject's length word marks a pack (data
// is several events, one JSON object per line, each line ending in a
// newline: see natsPack); the other 15 bits are the length. A spool written
// before packs existed has the bit clear everywhere and reads as single
// events. Len and Commit count events, not records.
//
// A segment is deleted once every message in it was delivered; the spool's
// size is the bytes of the segment files present, so a partly delivered
// segment still counts whole until it is done.
//
// Durability: with fsync, every Append is flushed with fdatasync before it
// returns and the cursor is replaced atomically (write, fsync, rename) on
// every Commit, so a crash loses nothing that Append accepted and replays at
// most the messages of the last uncommitted batch (receivers de-duplicate on
// the message id). Without fsync the kernel writes back when it likes: a
// process crash loses nothing, a power loss may lose the last seconds.
type spool struct {
	dir    string
	max    int64
	segMax int64
	fsync  bool

	mu    sync.Mutex
	segs  []uint64 // present on disk, ascending
	size  int64    // bytes of all segment files
	w     *os.File // append handle of the last segment, nil before the first Append
	wEnd  int64
	rSeg  uint64 // cursor
	rOff  int64
	count int // events not yet committed
	buf   []byte
}

type spoolMsg struct {
	Subject string
	ID      string
	Data    []byte
	// N is how many events Data holds when it is a pack (N ≥ 2, one per
	// line); 0 for a single event.
	N int
}

// events is how many events m carries.
func (m spoolMsg) events() int { return max(m.N, 1) }

// spoolPackBit marks a pack in the subject's length word.
const spoolPackBit = 0x8000

// eventsOf is how many events msgs carry.
func eventsOf(msgs []spoolMsg) int {
	n := 0
	for _, m := range msgs {
		n += m.events()
	}
	return n
}

// spoolEntry is a message read back with the cursor just after it.
type spoolEntry struct {
	spoolMsg
	seg uint64
	end int64
}

const spoolHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errSpoolFull says the spool has no room for a message.
var errSpoolFull = errors.New("spool full")

// spoolRecordSize is how many bytes m takes in a segment.
func spoolRecordSize(m spoolMsg) int64 {
	return spoolHeader + 2 + int64(len(m.Subject)) + 2 + int64(len(m.ID)) + int64(len(m.Data))
}

// openSpool opens (creating) the spool in dir. Messages kept by a previous
// run are delivered first. It returns how many messages it had to discard
// because a segment was damaged (a torn write at a crash, a bad CRC).
func openSpool(dir string, max, segMax int64, fsync bool) (*spool, int, error) {
	if max <= 0 {
		return nil, 0, fmt.Errorf("spool %s: size %d: want > 0", dir, max)
	}
	if segMax <= 0 || segMax > max {
		segMax = max
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	s := &spool{dir: dir, max: max, segMax: segMax, fsync: fsync}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, n)
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i] < s.segs[j] })
	if b, err := os.ReadFile(filepath.Join(dir, "cursor")); err == nil && len(b) == 16 {
		s.rSeg, s.rOff = binary.LittleEndian.Uint64(b), int64(binary.LittleEndian.Uint64(b[8:]))
	}
	// Drop segments wholly before the cursor (deleted late by a crash).
	for len(s.segs) > 0 && s.segs[0] < s.rSeg {
		_ = os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
	}
	if len(s.segs) == 0 || s.segs[0] != s.rSeg {
		s.rOff = 0
		if len(s.segs) > 0 {
			s.rSeg = s.segs[0]
		}
	}
	lost := 0
	for i, seg := range s.segs {
		from := int64(0)
		if seg == s.rSeg {
			from = s.rOff
		}
		n, good, end, err := scanSegment(s.segPath(seg), from)
		if err != nil {
			return nil, 0, err
		}
		s.count += n
		if good < end {
			// Damage: keep what precedes it. The rest of the segment
			// cannot be framed again: how many messages it held is
			// unknown, so it counts as one lost message.
			lost++
			if err := os.Truncate(s.segPath(seg), good); err != nil {
				return nil, 0, fmt.Errorf("spool: cut damaged %s: %w", s.segPath(seg), err)
			}
			end = good
		}
		if seg == s.rSeg && s.rOff > end {
			s.rOff = end
		}
		s.size += end
		if i == len(s.segs)-1 {
			s.wEnd = end
		}
	}
	if len(s.segs) > 0 {
		f, err := os.OpenFile(s.segPath(s.segs[len(s.segs)-1]), os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, 0, fmt.Errorf("spool: %w", err)
		}
		s.w = f
	}
	if s.count == 0 {
		if err := s.reset(); err != nil {
			return nil, 0, err
		}
	}
	return s, lost, nil
}

// scanSegment walks the records of path from offset from: how many are
// intact, the offset after the last intact one and the file's size.
func scanSegment(path string, from int64) (n int, good, end int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("spool: %w", err)
	}
	end = st.Size()
	if from > end {
		return 0, end, end, nil
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, 0, 0, fmt.Errorf("spool: %w", err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	good = from
	for good < end {
		m, size, err := readSpoolRecord(r)
		if err != nil {
			break
		}
		good += size
		n += m.events()
	}
	return n, good, end, nil
}

// readSpoolRecord reads one record; any framing or CRC problem is an error.
func readSpoolRecord(r *bufio.Reader) (spoolMsg, int64, error) {
	var h [spoolHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return spoolMsg{}, 0, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n < 4 || n > 64<<20 {
		return spoolMsg{}, 0, fmt.Errorf("spool record length %d out of range", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return spoolMsg{}, 0, err
	}
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return spoolMsg{}, 0, errors.New("spool record CRC mismatch")
	}
	var m spoolMsg
	rest := p
	pack := false
	for i, dst := range []*string{&m.Subject, &m.ID} {
		if len(rest) < 2 {
			return spoolMsg{}, 0, errors.New("spool record truncated")
		}
		l := int(binary.LittleEndian.Uint16(rest))
		if i == 0 {
			pack, l = l&spoolPackBit != 0, l&^spoolPackBit
		}
		if len(rest) < 2+l {
			return spoolMsg{}, 0, errors.New("spool record truncated")
		}
		*dst, rest = string(rest[2:2+l]), rest[2+l:]
	}
	m.Data = rest
	if pack {
		m.N = bytes.Count(m.Data, []byte{'\n'})
		if m.N < 2 || m.Data[len(m.Data)-1] != '\n' {
			return spoolMsg{}, 0, errors.New("spool record: malformed pack")
		}
	}
	return m, spoolHeader + int64(n), nil
}

func (s *spool) segPath(n uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%016x.seg", n)) }

// Len is how many events wait in the spool.
func (s *spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Size is the bytes the spool's segments take.
func (s *spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Append adds msgs in order, as many as fit: it returns how many it took,
// with errSpoolFull when the next one would have made the spool exceed its
// size, or the I/O error that stopped it.
func (s *spool) Append(msgs []spoolMsg) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := 0
	var stop error
	for taken < len(msgs) {
		// One segment at a time: fill the buffer until the segment or the
		// spool is full, then write it with one call.
		if s.w == nil || s.wEnd > 0 && s.wEnd+spoolRecordSize(msgs[taken]) > s.segMax {
			if err := s.rotate(); err != nil {
				return taken, err
			}
		}
		s.buf = s.buf[:0]
		start := taken
		segEnd, size := s.wEnd, s.size
		for taken < len(msgs) {
			m := msgs[taken]
			rs := spoolRecordSize(m)
			if len(m.Subject) >= spoolPackBit || len(m.ID) > 0xffff || rs > 64<<20 {
				stop = fmt.Errorf("spool: message %q too large", m.ID)
				break
			}
			if size+rs > s.max {
				stop = errSpoolFull
				break
			}
			if segEnd > 0 && segEnd+rs > s.segMax {
				break
			}
			s.buf = appendSpoolRecord(s.buf, m)
			segEnd, size = segEnd+rs, size+rs
			taken++
		}
		if taken > start {
			if _, err := s.w.Write(s.buf); err != nil {
				// Cut back what was partly written, so the segment stays framed.
				_ = s.w.Truncate(s.wEnd)
				return start, fmt.Errorf("spool write: %w", err)
			}
			if s.fsync {
				if err := s.w.Sync(); err != nil {
					return start, fmt.Errorf("spool sync: %w", err)
				}
			}
			s.wEnd, s.size = segEnd, size
			s.count += eventsOf(msgs[start:taken])
		}
		if stop != nil {
			return taken, stop
		}
	}
	return taken, nil
}

func appendSpoolRecord(b []byte, m spoolMsg) []byte {
	n := 2 + len(m.Subject) + 2 + len(m.ID) + len(m.Data)
	at := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, 0)
	p := len(b)
	sl := uint16(len(m.Subject))
	if m.N > 1 {
		sl |= spoolPackBit
	}
	b = binary.LittleEndian.AppendUint16(b, sl)
	b = append(b, m.Subject...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.ID)))
	b = append(b, m.ID...)
	b = append(b, m.Data...)
	binary.LittleEndian.PutUint32(b[at+4:], crc32.Checksum(b[p:], castagnoli))
	return b
}

// rotate starts a new segment after the last one.
func (s *spool) rotate() error {
	next := uint64(1)
	if len(s.segs) > 0 {
		next = s.segs[len(s.segs)-1] + 1
	} else if s.rSeg > 0 {
		next = s.rSeg + 1
	}
	f, err := os.OpenFile(s.segPath(next), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if s.w != nil {
		_ = s.w.Close()
	}
	if len(s.segs) == 0 {
		s.rSeg, s.rOff = next, 0
	}
	s.segs = append(s.segs, next)
	s.w, s.wEnd = f, 0
	return nil
}

// Peek reads up to max messages from the cursor on, without consuming them.
func (s *spool) Peek(max int) ([]spoolEntry, error) {
	s.mu.Lock()
	segs := append([]uint64(nil), s.segs...)
	seg, off, wEnd := s.rSeg, s.rOff, s.wEnd
	s.mu.Unlock()
	var out []spoolEntry
	for _, n := range segs {
		if n < seg || len(out) >= max {
			continue
		}
		if n > seg {
			off = 0
		}
		f, err := os.Open(s.segPath(n))
		if err != nil {
			return out, fmt.Errorf("spool: %w", err)
		}
		end := int64(-1)
		if n == segs[len(segs)-1] {
			end = wEnd // a concurrent Append may be writing past it
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return out, fmt.Errorf("spool: %w", err)
		}
		r := bufio.NewReaderSize(f, 64<<10)
		for len(out) < max && (end < 0 || off < end) {
			m, size, err := readSpoolRecord(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return out, fmt.Errorf("spool %s at %d: %w", s.segPath(n), off, err)
			}
			off += size
			out = append(out, spoolEntry{spoolMsg: m, seg: n, end: off})
		}
		f.Close()
	}
	return out, nil
}

// Commit consumes the messages up to and including e (n is how many events
// the messages Peek returned up to e carry) and deletes the segments done.
func (s *spool) Commit(e spoolEntry, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rSeg, s.rOff = e.seg, e.end
	s.count -= n
	for len(s.segs) > 1 && s.segs[0] < s.rSeg {
		if err := s.removeSeg(s.segs[0]); err != nil {
			return err
		}
	}
	if s.count <= 0 {
		return s.reset()
	}
	return s.saveCursor()
}

func (s *spool) removeSeg(n uint64) error {
	st, err := os.Stat(s.segPath(n))
	if err == nil {
		s.size -= st.Size()
	}
	if err := os.Remove(s.segPath(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	s.segs = s.segs[1:]
	return nil
}

// reset deletes every segment once all was delivered; numbering goes on.
func (s *spool) reset() error {
	if s.w != nil {
		_ = s.w.Close()
		s.w = nil
	}
	for len(s.segs) > 0 {
		s.rSeg = s.segs[0]
		if err := s.removeSeg(s.segs[0]); err != nil {
			return err
		}
	}
	s.size, s.wEnd, s.count, s.rOff = 0, 0, 0, 0
	return s.saveCursor()
}

func (s *spool) saveCursor() error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], s.rSeg)
	binary.LittleEndian.PutUint64(b[8:], uint64(s.rOff))
	tmp := filepath.Join(s.dir, "cursor.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil && s.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "cursor")); err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	return nil
}

// Close releases the append handle; the spool's content stays on disk.
func (s *spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		err := s.w.Close()
		s.w = nil
		return err
	}
	return nil
}
