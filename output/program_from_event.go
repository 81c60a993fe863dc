package output

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// ProgramFromEvent rebuilds the program of a saved prog_load event from
// its raw instructions, so that it can be analysed, judged and shown again
// (the console's program pages, inspect --event). Names in an event are
// already escaped; they stay so.
func ProgramFromEvent(ev *Event) (*program.Program, error) {
	if ev == nil || ev.Prog == nil {
		return nil, errors.New("the event carries no program (only prog_load events do)")
	}
	if ev.Instructions == nil || ev.Instructions.Raw == nil {
		return nil, errors.New("this event carries no raw instructions: run the sensor with --event-insns auto (the default), raw or both to keep them")
	}
	raw, err := base64.StdEncoding.DecodeString(ev.Instructions.Raw.Base64)
	if err != nil {
		return nil, fmt.Errorf("event instructions: %w", err)
	}
	p := &program.Program{Source: program.SourceSensor, Name: ev.Prog.Name, Type: ev.Prog.Type.ID,
		ExpectedAttachType: ev.Prog.ExpectedAttachType.ID, AttachTo: ev.Prog.AttachTo, License: ev.Prog.License,
		Insns: raw, InsnCnt: ev.Prog.InsnCnt, Truncated: ev.Prog.CaptureTruncated}
	if l := ev.Loader; l != nil {
		p.Loader = &program.Loader{PID: l.PID, TID: l.TID, PPID: l.PPID, Comm: l.Comm, Exe: l.Exe, Unknown: l.Unknown}
		if l.UID != nil {
			p.Loader.UID = *l.UID
		}
		if l.GID != nil {
			p.Loader.GID = *l.GID
		}
	}
	return p, nil
}
