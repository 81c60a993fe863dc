package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// Marshal encodes an event as one line of JSON without the trailing newline.
// HTML escaping is off: disassembly is full of '<' and '&', and "\u003c"
// would only make it harder to read and search in a SIEM.
func Marshal(ev *Event) ([]byte, error) {
	e := encoders.Get().(*encoder)
	b, ok := appendEvent(e.fast[:0], ev)
	if !ok {
		encoders.Put(e)
		return marshalJSON(ev)
	}
	out := bytes.Clone(b)
	if cap(b) <= maxPooledEncoder {
		e.fast = b
		encoders.Put(e)
	}
	return out, nil
}

// marshalJSON is Marshal through encoding/json alone (appendEvent's
// reference, and its fallback).
func marshalJSON(ev *Event) ([]byte, error) {
	return marshal(ev, ev.Event)
}

// MarshalECS encodes the ECS shape of a stamped event (see ToECS).
func MarshalECS(ev *Event) ([]byte, error) {
	return marshal(ToECS(ev), ev.Event)
}

// encoder is a JSON encoder with its buffer, reused across events: the
// buffer grows once to the size of the largest events instead of doubling
// its way up for every event, and each event costs one exact-size copy.
type encoder struct {
	buf  bytes.Buffer
	enc  *json.Encoder
	fast []byte // appendEvent's buffer
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// maxPooledEncoder is the largest buffer put back in the pool; a bigger
// one (a huge program with --event-insn-max 0) is left to the collector.
const maxPooledEncoder = 4 << 20

func marshal(v any, kind Kind) ([]byte, error) {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s event: %w", kind, err)
	}
	out := bytes.Clone(bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'}))
	if e.buf.Cap() <= maxPooledEncoder {
		encoders.Put(e)
	}
	return out, nil
}

// Format selects the JSON shape events are encoded in.
type Format string

// Event formats.
const (
	FormatJSON Format = "json" // the native schema, docs/event.schema.json
	FormatECS  Format = "ecs"  // Elastic Common Schema shape, docs/event-ecs.schema.json
)
