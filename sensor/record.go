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
	need := map[uint32]int{kindHeader: headerSize, kindChunk: chunkDataOff, kindVerdict: verdictSize, kindExit: exitSize, kindTamper: tamperSize,
		kindAttach: attachSize, kindAttachExit: attachExitSize, kindToken: tokenSize, kindMapMake: mapCreateSize}[kind]
	if need == 0 {
		return record{}, fmt.Errorf("%w: unknown kind %d", ErrRecord, kind)
	}
	if len(b) < need {
		return record{}, fmt.Errorf("%w: kind %d is %d bytes, want %d", ErrRecord, kind, len(b), need)
	}
	var err error
	switch kind {
	case kindHeader:
		r.header = new(sentrySentryHeader)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.header)
		// The kernel reads at most maxCaptureInsn instructions; a header
		// announcing more chunks is malformed (and would make the
		// assembler allocate gigabytes).
		if max := uint32((maxCaptureInsn + chunkInsns - 1) / chunkInsns); err == nil && r.header.Chunks > max {
			return record{}, fmt.Errorf("%w: header of load %#x announces %d chunks, at most %d", ErrRecord, r.loadID, r.header.Chunks, max)
		}
	case kindVerdict:
		r.verdict = new(sentrySentryVerdictRec)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.verdict)
	case kindExit:
		r.exit = new(sentrySentryExit)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.exit)
	case kindTamper:
		r.tamper = new(sentrySentryTamper)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.tamper)
	case kindAttach:
		r.attach = new(sentrySentryAttach)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.attach)
	case kindAttachExit:
		r.attachExit = new(sentrySentryAttachExit)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.attachExit)
	case kindToken:
		r.token = new(sentrySentryTokenRec)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.token)
	case kindMapMake:
		r.mapCreate = new(sentrySentryMapCreate)
		_, err = binary.Decode(b[:need], binary.LittleEndian, r.mapCreate)
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
	if err != nil {
		return record{}, fmt.Errorf("%w: kind %d: %v", ErrRecord, kind, err)
	}
	return r, nil
}
