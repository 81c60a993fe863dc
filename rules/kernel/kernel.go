package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Short names for the generated types of bpf/include/rules.h.
type (
	Table  = RuleEvalRulesTable
	Rule   = RuleEvalRulesRule
	Str    = RuleEvalRulesStr
	Facts  = RuleEvalRulesFacts
	Result = RuleEvalRulesResult
	Exe    = RuleEvalRulesExe
	Action = RuleEvalRulesAction
	Flag   = RuleEvalRulesFlag
)

// Limits of the tables, as defined in rules.h. The generated array lengths
// are the source of truth; these restate them for callers that check first.
const (
	MaxRules     = len(Table{}.Rules)
	MaxHelperID  = len(Facts{}.HelperCnt) - 1
	RuleHelpers  = len(Rule{}.HelperId)
	RuleNames    = len(Rule{}.Names)
	RuleComms    = len(Rule{}.Comms)
	RuleUIDs     = len(Rule{}.Uids)
	RuleHashes   = len(Rule{}.AllowHash)
	RuleExes     = len(Rule{}.Exes)
	NameLen      = len(Facts{}.ProgName)
	HarnessInsns = len(RuleEvalRuleevalInput{}.Insns)
)

const (
	ActionNone  = RuleEvalRulesActionRULES_ACTION_NONE
	ActionAlert = RuleEvalRulesActionRULES_ACTION_ALERT
	ActionBlock = RuleEvalRulesActionRULES_ACTION_BLOCK

	FlagHelpersOnly   = RuleEvalRulesFlagRULES_F_HELPERS_ONLY
	FlagHelpersAny    = RuleEvalRulesFlagRULES_F_HELPERS_ANY
	FlagHelpersCalled = RuleEvalRulesFlagRULES_F_HELPERS_CALLED
	FlagProgType      = RuleEvalRulesFlagRULES_F_PROG_TYPE
	FlagAttachType    = RuleEvalRulesFlagRULES_F_ATTACH_TYPE
	FlagInsnRange     = RuleEvalRulesFlagRULES_F_INSN_RANGE
	FlagNameNot       = RuleEvalRulesFlagRULES_F_NAME_NOT
	FlagUIDNot        = RuleEvalRulesFlagRULES_F_UID_NOT
	FlagExeNot        = RuleEvalRulesFlagRULES_F_EXE_NOT
	FlagGroup         = RuleEvalRulesFlagRULES_F_GROUP

	// ScopeGroup marks Facts that are a loader group's view (Facts.Scope).
	ScopeGroup = 1

	ProvSigned         = RuleEvalRulesProvRULES_PROV_SIGNED
	ProvToken          = RuleEvalRulesProvRULES_PROV_TOKEN
	ProvVerified       = RuleEvalRulesProvRULES_PROV_VERIFIED
	ProvKeyringNone    = RuleEvalRulesProvRULES_PROV_KEYRING_NONE
	ProvKeyringSystem  = RuleEvalRulesProvRULES_PROV_KEYRING_SYSTEM
	ProvKeyringBPF     = RuleEvalRulesProvRULES_PROV_KEYRING_BPF
	ProvKeyringUser    = RuleEvalRulesProvRULES_PROV_KEYRING_USER
	ProvKeyringSession = RuleEvalRulesProvRULES_PROV_KEYRING_SESSION
)

// Hash constants; must equal RULES_HASH_INIT and RULES_HASH_PRIME in rules_eval.h.
const (
	HashInit  uint64 = 0xcbf29ce484222325
	hashPrime uint64 = 0x100000001b3
)

// HashStep folds one normalised slot into h (rules_hash_step).
func HashStep(h, slot uint64) uint64 {
	h ^= slot
	h *= hashPrime
	h ^= h >> 32
	return h
}

// Normalise zeroes the map fd or index of a ld_imm64 that refers to a map
// (rules_normalise): it differs between two loads of the same program.
func Normalise(slot uint64) uint64 {
	src := (slot >> 12) & 0xf
	if slot&0xff == 0x18 && (src == 1 || src == 2 || src == 5 || src == 6) {
		slot &= 0xffffffff
	}
	return slot
}

// Hash is the kernel's instruction hash of a raw instruction stream (8 bytes
// per slot, little-endian); a trailing partial slot is ignored, as the kernel
// never sees one.
func Hash(insns []byte) uint64 {
	h := HashInit
	for i := 0; i+8 <= len(insns); i += 8 {
		h = HashStep(h, Normalise(binary.LittleEndian.Uint64(insns[i:])))
	}
	return h
}

// AddInsn accounts one slot exactly as rules_facts_add_insn does.
func AddInsn(f *Facts, slot uint64) {
	if slot&0xff == 0x85 && (slot>>12)&0xf == 0 {
		id := uint32(slot >> 32)
		if int(id) <= MaxHelperID {
			f.HelperCnt[id]++
			f.Used[id/64] |= 1 << (id % 64)
		} else {
			f.HelperOther++
		}
	}
	f.InsnHash = HashStep(f.InsnHash, Normalise(slot))
}

// SetString copies s into a kernel name field (prog_name, comm): at most
// NameLen-1 bytes, NUL-terminated, the rest zero, as the kernel stores it.
func SetString(dst *[16]int8, s string) {
	*dst = [16]int8{}
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		if s[i] == 0 {
			break
		}
		dst[i] = int8(s[i])
	}
}

// String returns a kernel name field as a Go string (up to the first NUL).
func String(src [16]int8) string {
	b := make([]byte, 0, len(src))
	for _, c := range src {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// Harness runs the kernel evaluator (bpf/ruleeval.bpf.c) with BPF_PROG_RUN.
// It needs root (CAP_BPF and CAP_SYS_ADMIN for BPF_PROG_TYPE_SYSCALL).
type Harness struct {
	objs RuleEvalObjects
}

// NewHarness loads the harness program and its maps.
func NewHarness() (*Harness, error) {
	h := &Harness{}
	if err := LoadRuleEvalObjects(&h.objs, nil); err != nil {
		return nil, fmt.Errorf("load rule evaluator harness: %w", err)
	}
	return h, nil
}

// Close releases the program and maps.
func (h *Harness) Close() error { return h.objs.Close() }

// Output is what one harness run produced.
type Output struct {
	Facts  Facts  // meta as given, plus the kernel's helper counts and hash
	Result Result // rules_evaluate's answer
	WalkNS uint64 // time the kernel spent walking the slots
	EvalNS uint64 // time the kernel spent in rules_evaluate
}

// ErrTooManyInsns says a program does not fit the harness input.
var ErrTooManyInsns = errors.New("too many instructions for the harness")

// SetTable replaces the rule table.
func (h *Harness) SetTable(t *Table) error {
	if err := h.objs.Table.Put(uint32(0), t); err != nil {
		return fmt.Errorf("write rule table: %w", err)
	}
	return nil
}

// Run walks insns in the kernel with meta's metadata (its counts and hash
// are ignored) and evaluates the current table against the result.
func (h *Harness) Run(meta *Facts, insns []byte) (*Output, error) {
	n := len(insns) / 8
	if n > HarnessInsns {
		return nil, fmt.Errorf("%d slots, at most %d: %w", n, HarnessInsns, ErrTooManyInsns)
	}
	in := &RuleEvalRuleevalInput{InsnN: uint32(n)}
	in.Facts.ProgType = meta.ProgType
	in.Facts.ExpectedAttachType = meta.ExpectedAttachType
	in.Facts.InsnCnt = meta.InsnCnt
	in.Facts.Uid = meta.Uid
	in.Facts.ProgName = meta.ProgName
	in.Facts.Comm = meta.Comm
	in.Facts.ExeIno, in.Facts.ExeDev = meta.ExeIno, meta.ExeDev
	in.Facts.Scope = meta.Scope // a group view: insns then hold the group's programs one after the other
	in.Facts.Prov = meta.Prov
	for i := 0; i < n; i++ {
		in.Insns[i] = binary.LittleEndian.Uint64(insns[i*8:])
	}
	if err := h.objs.Input.Put(uint32(0), in); err != nil {
		return nil, fmt.Errorf("write harness input: %w", err)
	}
	ret, err := h.objs.Ruleeval.Run(&ebpf.RunOptions{})
	if err != nil {
		return nil, fmt.Errorf("run rule evaluator: %w", err)
	}
	if ret != 0 {
		return nil, fmt.Errorf("rule evaluator returned %d (a map lookup failed)", ret)
	}
	if err := h.objs.Input.Lookup(uint32(0), in); err != nil {
		return nil, fmt.Errorf("read harness facts: %w", err)
	}
	var out RuleEvalRuleevalOutput
	if err := h.objs.Output.Lookup(uint32(0), &out); err != nil {
		return nil, fmt.Errorf("read harness output: %w", err)
	}
	return &Output{Facts: in.Facts, Result: out.Res, WalkNS: out.WalkNs, EvalNS: out.EvalNs}, nil
}

// Rules is what a sensor loads: a kernel rule table and the rule id of each
// of its slots (to name the rule a verdict came from). Package rules
// compiles it from a rule set; the sensor takes nothing else from rules.
type Rules struct {
	Table Table
	Slots []string // rule id of each table slot
}
