package insn

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

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
