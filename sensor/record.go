package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// Ring-buffer record kinds (bpf/include/sentry.h).
const (
	kindHeader  = uint32(sentrySentryRecordKindSENTRY_REC_HEADER)
	kindChunk   = uint32(sentrySentryRecordKindSENTRY_REC_CHUNK)
	kindVerdict = uint32(sentrySentryRecordKindSENTRY_REC_VERDICT)
	kindExit    = uint32(sentrySentryRecordKindSENTRY_REC_EXIT)
	kindTamper  = uint32(sentrySentryRecordKindSENTRY_REC_TAMPER)
	kindToken   = uint32(sentrySentryRecordKindSENTRY_REC_TOKEN)
	kindMapMake = uint32(sentrySentryRecordKindSENTRY_REC_MAP_CREATE)

	maxCaptureInsn = 1_000_000
)

// The chunk layout comes from struct sentry_chunk as bpf2go generated it,
// so a change to the C struct changes these with it.
const (
	chunkInsns      = len(sentrySentryChunk{}.Data) / 8
	chunkIndexOff   = int(unsafe.Offsetof(sentrySentryChunk{}.Index))
	chunkCountOff   = int(unsafe.Offsetof(sentrySentryChunk{}.Count))
	chunkReadErrOff = int(unsafe.Offsetof(sentrySentryChunk{}.ReadErr))
	chunkDataOff    = int(unsafe.Offsetof(sentrySentryChunk{}.Data))
)

// ErrRecord is wrapped by every malformed-record error.
var ErrRecord = errors.New("malformed sensor record")

// record is one decoded ring-buffer record; exactly one pointer is set.
type record struct {
	loadID  uint64
	pid     uint32
	header  *sentrySentryHeader
	chunk   *chunkRecord
	verdict *sentrySentryVerdictRec
	exit    *sentrySentryExit
	tamper  *sentrySentryTamper // selfprotect.go; not part of a load

	attach     *sentrySentryAttach
	attachExit *sentrySentryAttachExit
	token      *sentrySentryTokenRec
	mapCreate  *sentrySentryMapCreate
}

// chunkRecord aliases the ring-buffer sample's data; copy before reuse.
type chunkRecord struct {
	index   uint32
	count   uint32
	readErr bool
	data    []byte
}

var (
	headerSize    = binary.Size(sentrySentryHeader{})
	verdictSize   = binary.Size(sentrySentryVerdictRec{})
	exitSize      = binary.Size(sentrySentryExit{})
	chunkSize     = binary.Size(sentrySentryChunk{})
	tokenSize     = binary.Size(sentrySentryTokenRec{})
	mapCreateSize = binary.Size(sentrySentryMapCreate{})
)

// parseRecord decodes one ring-buffer sample. Chunk data is not copied.
func parseRecord(b []byte) (record, error) {
	if len(b) < 16 {
		return record{}, fmt.Errorf("%w: %d bytes, shorter than the 16-byte record header", ErrRecord, len(b))
	}
	kind := binary.LittleEndian.Uint32(b)
	r := record{pid: binary.LittleEndian.Uint32(b[4:]), loadID: binary.LittleEndian.Uint64(b[8:])}
	// Chunks are as long as their instructions; the rest have fixed sizes.
	need := recordSize(kind)
	if need == 0 {
		return record{}, fmt.Errorf("%w: unknown kind %d", ErrRecord, kind)
	}
	if len(b) < need {
		return record{}, fmt.Errorf("%w: kind %d is %d bytes, want %d", ErrRecord, kind, len(b), need)
	}
	switch kind {
	case kindHeader:
		r.header = decode[sentrySentryHeader](b)
		// The kernel reads at most maxCaptureInsn instructions; a header
		// announcing more chunks is malformed (and would make the
		// assembler allocate gigabytes).
		if max := uint32((maxCaptureInsn + chunkInsns - 1) / chunkInsns); r.header.Chunks > max {
			return record{}, fmt.Errorf("%w: header of load %#x announces %d chunks, at most %d", ErrRecord, r.loadID, r.header.Chunks, max)
		}
	case kindVerdict:
		r.verdict = decode[sentrySentryVerdictRec](b)
	case kindExit:
		r.exit = decode[sentrySentryExit](b)
	case kindTamper:
		r.tamper = decode[sentrySentryTamper](b)
	case kindAttach:
		r.attach = decode[sentrySentryAttach](b)
	case kindAttachExit:
		r.attachExit = decode[sentrySentryAttachExit](b)
	case kindToken:
		r.token = decode[sentrySentryTokenRec](b)
	case kindMapMake:
		r.mapCreate = decode[sentrySentryMapCreate](b)
	case kindChunk:
		c := &chunkRecord{
			index:   binary.LittleEndian.Uint32(b[chunkIndexOff:]),
			count:   binary.LittleEndian.Uint32(b[chunkCountOff:]),
			readErr: binary.LittleEndian.Uint32(b[chunkReadErrOff:]) != 0,
		}
		if c.count > uint32(chunkInsns) {
			return record{}, fmt.Errorf("%w: chunk %d of load %#x claims %d instructions, at most %d", ErrRecord, c.index, r.loadID, c.count, chunkInsns)
		}
		if len(b) < chunkDataOff+int(c.count)*8 {
			return record{}, fmt.Errorf("%w: chunk %d of load %#x claims %d instructions in %d bytes", ErrRecord, c.index, r.loadID, c.count, len(b))
		}
		c.data = b[chunkDataOff : chunkDataOff+int(c.count)*8]
		r.chunk = c
	}
	return r, nil
}

// recordSize is the fixed size of a record of kind (for a chunk, of the
// part before its instructions); 0 for an unknown kind.
func recordSize(kind uint32) int {
	switch kind {
	case kindHeader:
		return headerSize
	case kindChunk:
		return chunkDataOff
	case kindVerdict:
		return verdictSize
	case kindExit:
		return exitSize
	case kindTamper:
		return tamperSize
	case kindAttach:
		return attachSize
	case kindAttachExit:
		return attachExitSize
	case kindToken:
		return tokenSize
	case kindMapMake:
		return mapCreateSize
	}
	return 0
}

// decode copies the first bytes of b, at least the size of T, into a new
// T: the generated record types mirror the C layout byte for byte, padding
// included (TestRecordTypesMirrorTheirBytes), and the objects are built
// only for little-endian targets, so this is binary.Decode without its
// per-field reflection, the largest cost of reading a small load's records.
func decode[T any](b []byte) *T {
	v := new(T)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v)), b)
	return v
}
