//go:build linux && amd64

package main

import (
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// provenanceBook lets programs a loader program loads from inside the
// kernel inherit its provenance (docs/PROVENANCE.md): every prog_load is
// remembered by prog id; an event with via_loader calls
// provenanceBook.Inherit(ev, v.ID, v.Tag, v.Name) before it is emitted.
var provenanceBook = output.NewProvenanceBook(0)

// tokenCreateEvent turns a token creation the sensor saw into an event.
func tokenCreateEvent(tc *sensor.TokenCreated) *output.Event {
	l := output.Loader{}
	if c := tc.Token.Creator; c != nil {
		uid := c.UID
		l = output.Loader{PID: c.PID, TID: c.PID, Comm: c.Comm, Exe: c.Exe, UID: &uid}
	}
	return output.NewTokenCreate(time.Now(), l, tc.Token)
}

// mapCreateEvent turns a map creation through a token into an event.
func mapCreateEvent(mc *sensor.MapCreated) *output.Event {
	c := mc.Caller
	uid, gid := c.UID, c.GID
	l := output.Loader{PID: c.PID, TID: c.TID, UID: &uid, GID: &gid, Comm: c.Comm, Exe: c.Exe, CgroupID: c.CgroupID,
		Cgroup: loaderCgroups.Path(c.CgroupID), Unknown: []string{"ppid"}}
	m := output.MapCreate{MapID: mc.MapID, Type: mc.MapTypeStr, KeySize: mc.KeySize, ValueSize: mc.ValueSize,
		MaxEntries: mc.MaxEntries, Flags: mc.Flags, Name: mc.Name, Errno: int32(mc.Errno)}
	return output.NewMapCreate(mc.Time, l, m, mc.Provenance)
}
