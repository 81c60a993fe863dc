package insn

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

// JSONSlot is the raw fields of one 8-byte slot.
type JSONSlot struct {
	Code uint8 `json:"code"`
	Dst  uint8 `json:"dst"`
	Src  uint8 `json:"src"`
	Off  int16 `json:"off"`
	Imm  int32 `json:"imm"`
}

// JSONInstruction is the JSON form of one instruction: its raw fields, the
// names of its class and operation, and both text forms.
type JSONInstruction struct {
	Index int `json:"index"` // slot index of the first slot
	JSONSlot
	// Next is the second slot of an ld_imm64.
	Next *JSONSlot `json:"next,omitempty"`
	// Imm64 is the 64-bit constant of an ld_imm64 in hex, a string because
	// JSON readers that use doubles (JavaScript, jq) would round it.
	Imm64 string `json:"imm64,omitempty"`
	// Raw is the instruction's bytes (8, or 16 for an ld_imm64) in hex.
	Raw    string `json:"raw"`
	Class  string `json:"class"`  // "alu64", "jmp32", … (Kind's class names)
	Op     string `json:"op"`     // Kind's name: "mov", "call_kfunc", "invalid", …
	Macro  string `json:"macro"`  // filter.h form, see MacroFormatter
	Kernel string `json:"kernel"` // verifier-log form, see KernelFormatter
}

// JSONFormatter renders instructions as JSON objects.
type JSONFormatter struct {
	// Macro and Kernel render the two text forms; nil means a formatter that
	// names helpers from helper.Default().
	Macro  *MacroFormatter
	Kernel *KernelFormatter
}

func (f *JSONFormatter) formatters() (*MacroFormatter, *KernelFormatter) {
	m, k := f.Macro, f.Kernel
	if m == nil {
		m = &MacroFormatter{}
	}
	if k == nil {
		k = &KernelFormatter{HelperName: HelperNamer(helper.Default())}
	}
	return m, k
}

// HelperNamer adapts a helper table to KernelFormatter.HelperName.
func HelperNamer(t *helper.Table) func(int32) string {
	return func(id int32) string {
		n, _ := t.Name(id)
		return n
	}
}

// Instruction builds the JSON form of one instruction.
func (f *JSONFormatter) Instruction(ins Instruction) JSONInstruction {
	m, k := f.formatters()
	return jsonInstruction(m, k, ins)
}

func jsonInstruction(m *MacroFormatter, k *KernelFormatter, ins Instruction) JSONInstruction {
	var raw [2 * Size]byte
	j := JSONInstruction{
		Index:    ins.Index,
		JSONSlot: JSONSlot(ins.Slot),
		Raw:      hex.EncodeToString(ins.Append(raw[:0])),
		Class:    ClassName(ins.Code),
		Op:       ins.Kind().String(),
		Macro:    m.Format(ins),
		Kernel:   k.Format(ins),
	}
	if ins.Wide {
		next := JSONSlot(ins.Next)
		j.Next = &next
		j.Imm64 = "0x" + strconv.FormatUint(uint64(ins.Imm64()), 16)
	}
	return j
}

// Marshal renders insns as one JSON array.
func (f *JSONFormatter) Marshal(insns []Instruction) ([]byte, error) {
	m, k := f.formatters()
	out := make([]JSONInstruction, len(insns))
	for i, ins := range insns {
		out[i] = jsonInstruction(m, k, ins)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" in "if r1 < r2" should stay readable
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("marshal instructions: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WriteLines writes one JSON object per line (JSON Lines), streaming, so a
// million-instruction program needs no single giant buffer.
func (f *JSONFormatter) WriteLines(w io.Writer, insns []Instruction) error {
	m, k := f.formatters()
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // "<" in "if r1 < r2" should stay readable
	for _, ins := range insns {
		if err := enc.Encode(jsonInstruction(m, k, ins)); err != nil {
			return fmt.Errorf("write instruction %d: %w", ins.Index, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write instructions: %w", err)
	}
	return nil
}

// AppendJSON appends the JSON form of ins (exactly what encoding/json writes
// for Instruction(ins) with HTML escaping off, without a newline), for
// writers that stream millions of instructions: no reflection, no per-field
// allocation.
func (f *JSONFormatter) AppendJSON(dst []byte, ins Instruction) []byte {
	m, k := f.formatters()
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(ins.Index), 10)
	dst = appendJSONSlot(append(dst, ','), ins.Slot)
	if ins.Wide {
		dst = append(dst, `,"next":{`...)
		dst = append(appendJSONSlot(dst, ins.Next), '}')
		dst = append(dst, `,"imm64":"0x`...)
		dst = append(strconv.AppendUint(dst, uint64(ins.Imm64()), 16), '"')
	}
	dst = append(dst, `,"raw":"`...)
	var raw [2 * Size]byte
	dst = hex.AppendEncode(dst, ins.Append(raw[:0]))
	dst = append(dst, `","class":`...)
	dst = appendJSONString(dst, ClassName(ins.Code))
	dst = append(dst, `,"op":`...)
	dst = appendJSONString(dst, ins.Kind().String())
	var text [128]byte
	dst = append(dst, `,"macro":`...)
	dst = appendJSONString(dst, m.Append(text[:0], ins))
	dst = append(dst, `,"kernel":`...)
	dst = appendJSONString(dst, k.Append(text[:0], ins))
	return append(dst, '}')
}

func appendJSONSlot(dst []byte, s Slot) []byte {
	dst = append(dst, `"code":`...)
	dst = strconv.AppendUint(dst, uint64(s.Code), 10)
	dst = append(dst, `,"dst":`...)
	dst = strconv.AppendUint(dst, uint64(s.Dst), 10)
	dst = append(dst, `,"src":`...)
	dst = strconv.AppendUint(dst, uint64(s.Src), 10)
	dst = append(dst, `,"off":`...)
	dst = strconv.AppendInt(dst, int64(s.Off), 10)
	dst = append(dst, `,"imm":`...)
	return strconv.AppendInt(dst, int64(s.Imm), 10)
}

// appendJSONString quotes s as encoding/json does with HTML escaping off:
// control characters, invalid UTF-8 (as U+FFFD), U+2028 and U+2029 escaped.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&15])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
