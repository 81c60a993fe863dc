package sensor

import (
	"fmt"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Verdict is the kernel rule table's judgement of one load.
type Verdict uint32

const (
	VerdictAllow Verdict = Verdict(sentrySentryVerdictSENTRY_VERDICT_ALLOW)
	VerdictAlert Verdict = Verdict(sentrySentryVerdictSENTRY_VERDICT_ALERT)
	VerdictBlock Verdict = Verdict(sentrySentryVerdictSENTRY_VERDICT_BLOCK)
)

func (v Verdict) String() string {
	switch v {
	case VerdictAllow:
		return "allow"
	case VerdictAlert:
		return "alert"
	case VerdictBlock:
		return "block"
	}
	return fmt.Sprintf("verdict(%d)", uint32(v))
}

// MarshalText makes verdicts readable in JSON.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Action is what the kernel side did about a block verdict.
type Action uint32

const (
	ActionNone          Action = Action(sentrySentryActionSENTRY_ACT_NONE)
	ActionKilled        Action = Action(sentrySentryActionSENTRY_ACT_KILLED)
	ActionKillFailed    Action = Action(sentrySentryActionSENTRY_ACT_KILL_FAILED)
	ActionCorrupted     Action = Action(sentrySentryActionSENTRY_ACT_CORRUPTED)
	ActionCorruptFailed Action = Action(sentrySentryActionSENTRY_ACT_CORRUPT_FAILED)
	ActionMonitor       Action = Action(sentrySentryActionSENTRY_ACT_MONITOR)
	ActionSelf          Action = Action(sentrySentryActionSENTRY_ACT_SELF)
	// ActionDenied: an LSM hook refused the load with EPERM before the
	// verifier ran; the program never got an id.
	ActionDenied Action = Action(sentrySentryActionSENTRY_ACT_DENIED)
)

var actionNames = map[Action]string{
	ActionNone:          "none",
	ActionKilled:        "killed",
	ActionKillFailed:    "kill-failed",
	ActionCorrupted:     "corrupted",
	ActionCorruptFailed: "corrupt-failed",
	ActionMonitor:       "monitor-only",
	ActionSelf:          "own-load-spared",
	ActionDenied:        "denied",
}

func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("action(%d)", uint32(a))
}

// MarshalText makes actions readable in JSON.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Result is how the bpf() call ended.
type Result string

const (
	ResultLoaded  Result = "loaded"  // returned a prog fd
	ResultFailed  Result = "failed"  // returned an error
	ResultKilled  Result = "killed"  // the loader had a SIGKILL pending when the call returned
	ResultUnknown Result = "unknown" // the exit record was lost or never came
)

// Outcome is the syscall's result as seen at sys_exit.
type Outcome struct {
	Result Result `json:"result"`
	// KilledByOther: the loader had a SIGKILL pending when the call
	// returned, not sent by this sensor (Result killed): another sensor
	// instance, such as an older pinned one this agent did not take over,
	// or another process. The verdict is still this sensor's own.
	KilledByOther bool `json:"killed_by_other,omitempty"`
	Errno         int  `json:"errno,omitempty"` // positive errno when the call failed
	FD            int  `json:"fd,omitempty"`    // the fd returned in the loader, when loaded
}

// InnerLoad is what the kernel said of a load issued from inside it. Its
// Outcome is the load's own: loaded (with the new program's id, no fd:
// the fd went to the loader program), failed EPERM when the sensor denied
// it, or failed with errno 0 when something after the judgement (the
// verifier, another LSM) refused it.
type InnerLoad struct {
	// The loader program that the caller's BPF_PROG_TEST_RUN ran, as named
	// by the fd in the caller's attr (0: not resolved, or not a syscall
	// program). Another thread of the caller can swap that fd during the
	// run: this names the loader as far as the caller lets it.
	LoaderProgID uint32 `json:"loader_prog_id,omitempty"`
	LoaderTag    string `json:"loader_tag,omitempty"`
}

// Event is one captured BPF_PROG_LOAD.
type Event struct {
	LoadID  uint64           `json:"load_id"`
	Time    time.Time        `json:"time"`
	Program *program.Program `json:"prog"`

	Verdict Verdict `json:"verdict"`
	Action  Action  `json:"action"`
	// RuleIndex is the kernel table slot that decided: the first block
	// rule, else the first match; -1 when none (or block_unreadable).
	RuleIndex int      `json:"rule_index"`
	RuleID    string   `json:"rule_id,omitempty"`
	Matched   []uint64 `json:"matched,omitempty"` // bitmap of matching slots: bit i%64 of word i/64
	// Unjudged names the kernel-side failure (a loss reason) that kept
	// the load from being judged; the verdict then comes from OnError.
	Unjudged string `json:"unjudged,omitempty"`
	// Lock is what lock mode made of the load (off: empty); a blocking
	// value with RuleID RuleLock means the allowlist alone blocked it.
	Lock       Lock `json:"lock,omitempty"`
	generation uint32

	// Helpers is the kernel's histogram over all instructions, by helper id.
	Helpers     map[uint32]uint32 `json:"helpers,omitempty"`
	HelperOther uint32            `json:"helper_other,omitempty"` // calls of helper ids ≥ 256
	CallsHelper uint32            `json:"calls_helper"`
	CallsSub    uint32            `json:"calls_sub"`
	CallsKfunc  uint32            `json:"calls_kfunc"`
	InsnHash    uint64            `json:"insn_hash"`
	WalkTime    time.Duration     `json:"walk_ns"`

	Outcome Outcome `json:"outcome"`
	// Inner: the load came from inside the kernel (a syscall program's
	// bpf_sys_bpf while its caller, Program.Loader, was in
	// BPF_PROG_TEST_RUN), as an LSM hook saw it; nil for a bpf() call.
	Inner *InnerLoad `json:"inner,omitempty"`

	// Capture completeness: a load is always reported, and says what is missing.
	ChunksExpected uint32 `json:"chunks_expected"`
	ChunksReceived uint32 `json:"chunks_received"`
	ReadErrors     uint32 `json:"read_errors,omitempty"`
	// GroupRefsOver is the part of ReadErrors that is map references past
	// the group judge's cap (64): the load's group could not be followed.
	GroupRefsOver uint32   `json:"group_refs_over,omitempty"`
	Missing       []string `json:"missing,omitempty"` // "header", "verdict", "exit", "chunks"
	HashMismatch  bool     `json:"hash_mismatch,omitempty"`
	// Recovered: the kernel did not write every chunk (no room in the
	// ring) and the instructions were read from the loader's memory,
	// checked against the kernel's insn_hash and, when loaded, its tag
	// (recover.go).
	Recovered bool `json:"recovered,omitempty"`

	// JudgedCopyDiffers: the program the kernel loaded (its tag) is not
	// the one judged. On the syscall hooks the loader rewrote its
	// instructions after the sensor read them (time-of-check to time-of-use);
	// the verdict does not describe the running program: alert on it.
	JudgedCopyDiffers bool `json:"judged_copy_differs,omitempty"`

	// Retry is how many attempts of the same program by the same thread
	// failed with EAGAIN (a pending signal ended verification) right before
	// this one: 0 for a first attempt. RetryOf is the previous attempt's
	// LoadID.
	Retry   uint32 `json:"retry,omitempty"`
	RetryOf uint64 `json:"retry_of,omitempty"`
	// Unprivileged: the loader lacks CAP_BPF and CAP_SYS_ADMIN for a
	// program type that needs one, so the kernel refuses the load; the
	// sensor reported the attempt without reading its instructions.
	Unprivileged bool `json:"unprivileged,omitempty"`
	// RefusedBeforeHook: on the lsm/bpf_prog_load hook, the kernel refused
	// this load before the hook ran (a token that does not delegate it,
	// missing capabilities, a bad attr or signature); it was judged from
	// the loader's attr at the syscall's exit, for the report only.
	RefusedBeforeHook bool `json:"refused_before_hook,omitempty"`
	// RateLimited: the loader was over its capture rate (Config.LoaderRate);
	// the kernel judged the load in full, its instructions were not copied.
	RateLimited bool `json:"rate_limited,omitempty"`
}

// Complete reports whether every record of the load arrived intact.
func (e *Event) Complete() bool {
	return len(e.Missing) == 0 && e.ReadErrors == 0 && !e.HashMismatch
}
