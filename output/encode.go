package output

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Marshal encodes an event as one line of JSON without the trailing newline.
// HTML escaping is off: disassembly is full of '<' and '&', and "\u003c"
// would only make it harder to read and search in a SIEM.
func Marshal(ev *Event) ([]byte, error) {
	return marshal(ev, ev.Event)
}

// MarshalECS encodes the ECS shape of a stamped event (see ToECS).
func MarshalECS(ev *Event) ([]byte, error) {
	return marshal(ToECS(ev), ev.Event)
}

func marshal(v any, kind Kind) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s event: %w", kind, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// Format selects the JSON shape events are encoded in.
type Format string

// Event formats.
const (
	FormatJSON Format = "json" // the native schema, docs/event.schema.json
	FormatECS  Format = "ecs"  // Elastic Common Schema shape, docs/event-ecs.schema.json
)
