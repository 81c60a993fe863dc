package program

import (
	"encoding/binary"
	"fmt"
)

// checkBTF walks the type section of a .BTF blob and says exactly where it
// is malformed: the type id, its byte offset in the section and in the file,
// and the kind. sectionOff is the section's offset in the file.
func checkBTF(data []byte, sectionOff uint64, bo binary.ByteOrder) error {
	const hdrMin = 24
	if len(data) < hdrMin {
		return fmt.Errorf(".BTF (file offset %d): %d bytes, shorter than the %d-byte header", sectionOff, len(data), hdrMin)
	}
	if m := bo.Uint16(data); m != 0xeb9f {
		return fmt.Errorf(".BTF (file offset %d): magic %#04x at byte 0, want 0xeb9f", sectionOff, m)
	}
	hdrLen := uint64(bo.Uint32(data[4:]))
	typeOff, typeLen := uint64(bo.Uint32(data[8:])), uint64(bo.Uint32(data[12:]))
	strOff, strLen := uint64(bo.Uint32(data[16:])), uint64(bo.Uint32(data[20:]))
	size := uint64(len(data))
	if hdrLen < hdrMin || hdrLen > size {
		return fmt.Errorf(".BTF (file offset %d): header length %d at byte 4 is outside 24..%d", sectionOff, hdrLen, size)
	}
	if hdrLen+typeOff+typeLen > size {
		return fmt.Errorf(".BTF (file offset %d): type section at bytes %d..%d (header bytes 8..15) but the section has %d bytes", sectionOff, hdrLen+typeOff, hdrLen+typeOff+typeLen, size)
	}
	if hdrLen+strOff+strLen > size {
		return fmt.Errorf(".BTF (file offset %d): string section at bytes %d..%d (header bytes 16..23) but the section has %d bytes", sectionOff, hdrLen+strOff, hdrLen+strOff+strLen, size)
	}
	start := hdrLen + typeOff
	types := data[start : start+typeLen]
	for off, id := uint64(0), 1; off < typeLen; id++ {
		at := start + off
		if typeLen-off < 12 {
			return fmt.Errorf(".BTF type id %d at byte %d (file offset %d): %d bytes left, a type needs 12", id, at, sectionOff+at, typeLen-off)
		}
		info := bo.Uint32(types[off+4:])
		kind, vlen := info>>24&0x1f, uint64(info&0xffff)
		var extra uint64
		switch kind {
		case 1, 14, 17: // INT, VAR, DECL_TAG
			extra = 4
		case 2, 7, 8, 9, 10, 11, 12, 16, 18: // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
		case 3: // ARRAY
			extra = 12
		case 4, 5, 15, 19: // STRUCT, UNION, DATASEC, ENUM64
			extra = 12 * vlen
		case 6, 13: // ENUM, FUNC_PROTO
			extra = 8 * vlen
		default:
			return fmt.Errorf(".BTF type id %d at byte %d (file offset %d): unknown kind %d (info %#08x at byte %d)", id, at, sectionOff+at, kind, info, at+4)
		}
		if 12+extra > typeLen-off {
			return fmt.Errorf(".BTF type id %d at byte %d (file offset %d): kind %d with %d members needs %d bytes, the type section ends at byte %d", id, at, sectionOff+at, kind, vlen, 12+extra, start+typeLen)
		}
		off += 12 + extra
	}
	return nil
}
