package output

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// appendEvent appends the JSON of ev exactly as encoding/json (HTML
// escaping off) writes it, without the reflection: the event's encoding
// was 13 % of the agent's CPU per 10-instruction load. It covers the
// sections a prog_load carries; for any other section set it returns false
// and the caller encodes with encoding/json. TestAppendEventMatchesJSON
// and FuzzAppendEventMatchesJSON hold the two byte for byte, and
// TestAppendEventKnowsEveryField fails when a field is added to a type it
// encodes.
func appendEvent(b []byte, ev *Event) ([]byte, bool) {
	if ev.Sensor != nil || ev.Rules != nil || ev.Loss != nil || ev.Tamper != nil || ev.Resident != nil ||
		ev.Hidden != nil || ev.Fleet != nil || ev.Heartbeat != nil || ev.Cbpf != nil || ev.Attach != nil ||
		ev.ProgArray != nil || ev.Map != nil || !fastProvenance(ev.Provenance) || !fastTime(ev.Time) {
		return b, false
	}
	b = append(b, `{"schema_version":`...)
	b = appendJSONString(b, ev.SchemaVersion)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, string(ev.Event))
	b = append(b, `,"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, `,"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","host":`...)
	b = appendJSONString(b, ev.Host)
	if ev.PrevHash != "" {
		b = append(b, `,"prev_hash":`...)
		b = appendJSONString(b, ev.PrevHash)
	}
	if ev.Loader != nil {
		b = appendLoader(append(b, `,"loader":`...), ev.Loader)
	}
	if ev.Prog != nil {
		b = appendProg(append(b, `,"prog":`...), ev.Prog)
	}
	if ev.Outcome != nil {
		b = appendOutcome(append(b, `,"outcome":`...), ev.Outcome)
	}
	if ev.Analysis != nil {
		b = appendAnalysis(append(b, `,"analysis":`...), ev.Analysis)
	}
	if ev.Verdict != nil {
		b = appendVerdict(append(b, `,"verdict":`...), ev.Verdict)
	}
	if ev.Instructions != nil {
		b = appendInstructions(append(b, `,"instructions":`...), ev.Instructions)
	}
	if ev.ViaLoader != nil {
		b = appendViaLoader(append(b, `,"via_loader":`...), ev.ViaLoader)
	}
	if ev.Provenance != nil {
		b = appendProvenance(append(b, `,"provenance":`...), ev.Provenance)
	}
	return append(b, '}'), true
}

// fastTime reports whether t encodes as time.RFC3339Nano: Time.MarshalJSON
// refuses years outside [0, 9999] and zone offsets of a day or more (the
// caller then lets encoding/json return that error).
func fastTime(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*60*60 && off < 24*60*60
}

// fastProvenance: appendProvenance covers every provenance but one with a
// resolved token (a rare load through a BPF token).
func fastProvenance(p *program.Provenance) bool {
	for ; p != nil; p = p.Inherited.From {
		if p.Token != nil {
			return false
		}
		if p.Inherited == nil {
			return true
		}
	}
	return true
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

func appendInt(b []byte, v int64) []byte   { return strconv.AppendInt(b, v, 10) }
func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

// appendStrings is a []string field: null when nil, as encoding/json.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

func appendInts(b []byte, vs []int) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendInt(b, int64(v))
	}
	return append(b, ']')
}

func appendLoader(b []byte, l *Loader) []byte {
	b = appendUint(append(b, `{"pid":`...), uint64(l.PID))
	b = appendUint(append(b, `,"tid":`...), uint64(l.TID))
	b = appendUint(append(b, `,"ppid":`...), uint64(l.PPID))
	if l.UID != nil {
		b = appendUint(append(b, `,"uid":`...), uint64(*l.UID))
	}
	if l.GID != nil {
		b = appendUint(append(b, `,"gid":`...), uint64(*l.GID))
	}
	b = appendJSONString(append(b, `,"comm":`...), l.Comm)
	if l.Exe != "" {
		b = appendJSONString(append(b, `,"exe":`...), l.Exe)
	}
	if l.ExeInode != 0 {
		b = appendUint(append(b, `,"exe_inode":`...), l.ExeInode)
	}
	if l.ExeDev != 0 {
		b = appendUint(append(b, `,"exe_dev":`...), uint64(l.ExeDev))
	}
	if l.ExeSHA256 != "" {
		b = appendJSONString(append(b, `,"exe_sha256":`...), l.ExeSHA256)
	}
	if l.CgroupID != 0 {
		b = appendUint(append(b, `,"cgroup_id":`...), l.CgroupID)
	}
	if l.Cgroup != "" {
		b = appendJSONString(append(b, `,"cgroup":`...), l.Cgroup)
	}
	if len(l.Unknown) > 0 {
		b = appendStrings(append(b, `,"unknown":`...), l.Unknown)
	}
	if c := l.Container; c != nil {
		b = appendJSONString(append(b, `,"container":{"id":`...), c.ID)
		if c.Runtime != "" {
			b = appendJSONString(append(b, `,"runtime":`...), c.Runtime)
		}
		if c.PodUID != "" {
			b = appendJSONString(append(b, `,"pod_uid":`...), c.PodUID)
		}
		if c.QoS != "" {
			b = appendJSONString(append(b, `,"qos":`...), c.QoS)
		}
		if c.Namespace != "" {
			b = appendJSONString(append(b, `,"namespace":`...), c.Namespace)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendEnum(b []byte, e Enum) []byte {
	b = appendUint(append(b, `{"id":`...), uint64(e.ID))
	if e.Name != "" {
		b = appendJSONString(append(b, `,"name":`...), e.Name)
	}
	return append(b, '}')
}

func appendProg(b []byte, p *Prog) []byte {
	b = appendJSONString(append(b, `{"name":`...), p.Name)
	b = appendEnum(append(b, `,"type":`...), p.Type)
	b = appendEnum(append(b, `,"expected_attach_type":`...), p.ExpectedAttachType)
	if p.AttachTo != "" {
		b = appendJSONString(append(b, `,"attach_to":`...), p.AttachTo)
	}
	if p.AttachBTFID != 0 {
		b = appendUint(append(b, `,"attach_btf_id":`...), uint64(p.AttachBTFID))
	}
	if p.License != "" {
		b = appendJSONString(append(b, `,"license":`...), p.License)
	}
	b = appendBool(append(b, `,"gpl_compatible":`...), p.GPLCompatible)
	if p.Flags != 0 {
		b = appendUint(append(b, `,"flags":`...), uint64(p.Flags))
	}
	b = appendUint(append(b, `,"insn_cnt":`...), uint64(p.InsnCnt))
	b = appendInt(append(b, `,"captured_slots":`...), int64(p.CapturedSlots))
	if p.CaptureTruncated {
		b = append(b, `,"capture_truncated":true`...)
	}
	if p.SHA256 != "" {
		b = appendJSONString(append(b, `,"sha256":`...), p.SHA256)
	}
	if p.InsnHash != "" {
		b = appendJSONString(append(b, `,"insn_hash":`...), p.InsnHash)
	}
	if k := p.Kernel; k != nil {
		b = appendUint(append(b, `,"kernel":{"id":`...), uint64(k.ID))
		b = append(appendJSONString(append(b, `,"tag":`...), k.Tag), '}')
	}
	if p.Source != "" {
		b = appendJSONString(append(b, `,"source":`...), p.Source)
	}
	if p.Origin != "" {
		b = appendJSONString(append(b, `,"origin":`...), p.Origin)
	}
	return append(b, '}')
}

func appendOutcome(b []byte, o *Outcome) []byte {
	b = appendJSONString(append(b, `{"result":`...), string(o.Result))
	if o.Errno != 0 {
		b = appendInt(append(b, `,"errno":`...), int64(o.Errno))
	}
	if o.Error != "" {
		b = appendJSONString(append(b, `,"error":`...), o.Error)
	}
	if o.JudgedCopyDiffers {
		b = append(b, `,"judged_copy_differs":true`...)
	}
	if o.KilledByOther {
		b = append(b, `,"killed_by_other":true`...)
	}
	if o.RefusedBeforeHook {
		b = append(b, `,"refused_before_hook":true`...)
	}
	if o.Retry != 0 {
		b = appendUint(append(b, `,"retry":`...), uint64(o.Retry))
	}
	if o.RetryOf != 0 {
		b = appendUint(append(b, `,"retry_of":`...), o.RetryOf)
	}
	return append(b, '}')
}

func appendAnalysis(b []byte, a *Analysis) []byte {
	b = append(b, `{"helpers":`...)
	if a.Helpers == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, h := range a.Helpers {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendInt(append(b, `{"id":`...), int64(h.ID))
			if h.Name != "" {
				b = appendJSONString(append(b, `,"name":`...), h.Name)
			}
			b = append(appendInt(append(b, `,"count":`...), int64(h.Count)), '}')
		}
		b = append(b, ']')
	}
	if len(a.Kfuncs) > 0 {
		b = append(b, `,"kfuncs":[`...)
		for i, k := range a.Kfuncs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendInt(append(b, `{"btf_id":`...), int64(k.BTFID))
			if k.Name != "" {
				b = appendJSONString(append(b, `,"name":`...), k.Name)
			}
			b = append(appendInt(append(b, `,"count":`...), int64(k.Count)), '}')
		}
		b = append(b, ']')
	}
	if len(a.Maps) > 0 {
		b = append(b, `,"maps":[`...)
		for i, m := range a.Maps {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if m.Name != "" {
				b = append(appendJSONString(append(b, `"name":`...), m.Name), ',')
			}
			if m.Type != "" {
				b = append(appendJSONString(append(b, `"type":`...), m.Type), ',')
			}
			if m.FD != 0 {
				b = append(appendInt(append(b, `"fd":`...), int64(m.FD)), ',')
			}
			b = append(appendInt(append(b, `"uses":`...), int64(m.Uses)), '}')
		}
		b = append(b, ']')
	}
	if len(a.Strings) > 0 {
		b = append(b, `,"strings":[`...)
		for i, s := range a.Strings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendInt(append(b, `{"insn":`...), int64(s.Insn))
			b = appendJSONString(append(b, `,"text":`...), s.Text)
			b = append(appendJSONString(append(b, `,"kind":`...), s.Kind), '}')
		}
		b = append(b, ']')
	}
	if len(a.Subprogs) > 0 {
		b = appendInts(append(b, `,"subprogs":`...), a.Subprogs)
	}
	if len(a.TailCalls) > 0 {
		b = appendInts(append(b, `,"tail_calls":`...), a.TailCalls)
	}
	if len(a.Problems) > 0 {
		b = appendStrings(append(b, `,"problems":`...), a.Problems)
	}
	return append(b, '}')
}

func appendVerdict(b []byte, v *Verdict) []byte {
	b = appendJSONString(append(b, `{"action":`...), v.Action)
	if v.EnforcedBy != "" {
		b = appendJSONString(append(b, `,"enforced_by":`...), v.EnforcedBy)
	}
	b = append(b, `,"rules":`...)
	if v.Rules == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range v.Rules {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(append(b, `{"id":`...), r.ID)
			b = appendJSONString(append(b, `,"action":`...), r.Action)
			if r.Severity != "" {
				b = appendJSONString(append(b, `,"severity":`...), r.Severity)
			}
			if len(r.Tags) > 0 {
				b = appendStrings(append(b, `,"tags":`...), r.Tags)
			}
			if r.Why != "" {
				b = appendJSONString(append(b, `,"why":`...), r.Why)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendInstructions(b []byte, in *Instructions) []byte {
	b = appendBool(append(b, `{"truncated":`...), in.Truncated)
	if t := in.Text; t != nil {
		b = appendStrings(append(b, `,"text":{"lines":`...), t.Lines)
		b = appendInt(append(b, `,"shown":`...), int64(t.Shown))
		b = append(appendInt(append(b, `,"total":`...), int64(t.Total)), '}')
	}
	if r := in.Raw; r != nil {
		b = appendJSONString(append(b, `,"raw":{"base64":`...), r.Base64)
		b = appendInt(append(b, `,"shown_slots":`...), int64(r.Shown))
		b = append(appendInt(append(b, `,"total_slots":`...), int64(r.Total)), '}')
	}
	return append(b, '}')
}

func appendViaLoader(b []byte, v *ViaLoader) []byte {
	b = appendUint(append(b, `{"id":`...), uint64(v.ID))
	b = appendJSONString(append(b, `,"tag":`...), v.Tag)
	b = appendJSONString(append(b, `,"name":`...), v.Name)
	if a := v.Response; a != nil {
		b = appendJSONString(append(b, `,"response":{"action":`...), a.Action)
		if len(a.Done) > 0 {
			b = appendStrings(append(b, `,"done":`...), a.Done)
		}
		if len(a.Failed) > 0 {
			b = appendStrings(append(b, `,"failed":`...), a.Failed)
		}
		if len(a.Survives) > 0 {
			b = appendStrings(append(b, `,"survives":`...), a.Survives)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendProvenance encodes a provenance without a token (fastProvenance).
func appendProvenance(b []byte, p *program.Provenance) []byte {
	b = appendBool(append(b, `{"signed":`...), p.Signed)
	if p.SignaturePtr != 0 {
		b = appendUint(append(b, `,"signature_ptr":`...), p.SignaturePtr)
	}
	if p.SignatureSize != 0 {
		b = appendUint(append(b, `,"signature_size":`...), uint64(p.SignatureSize))
	}
	b = appendInt(append(b, `,"keyring_id":`...), int64(p.KeyringID))
	if p.Keyring != "" {
		b = appendJSONString(append(b, `,"keyring":`...), p.Keyring)
	}
	if p.Verification != "" {
		b = appendJSONString(append(b, `,"verification":`...), p.Verification)
	}
	if p.VerifyErrno != 0 {
		b = appendInt(append(b, `,"verify_errno":`...), int64(p.VerifyErrno))
	}
	if p.ViaToken {
		b = append(b, `,"via_token":true`...)
	}
	if p.TokenFD != 0 {
		b = appendInt(append(b, `,"token_fd":`...), int64(p.TokenFD))
	}
	if in := p.Inherited; in != nil {
		b = appendUint(append(b, `,"inherited":{"loader_id":`...), uint64(in.LoaderID))
		if in.LoaderTag != "" {
			b = appendJSONString(append(b, `,"loader_tag":`...), in.LoaderTag)
		}
		if in.LoaderName != "" {
			b = appendJSONString(append(b, `,"loader_name":`...), in.LoaderName)
		}
		if in.From != nil {
			b = appendProvenance(append(b, `,"from":`...), in.From)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

const jsonHex = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping
// off: '"', '\\' and control bytes escaped (\b \f \n \r \t short, the rest
// \u00XX), invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and
// \u2029, everything else as is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
