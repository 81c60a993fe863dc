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
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, fmt.Errorf("encode %s event: %w", ev.Event, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
