//go:build linux && amd64

package main

import (
	"github.com/cilium/ebpf"

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

// innerVia names the loader program of a load an LSM hook saw issued from
// inside the kernel: id and tag from the kernel, the name from the loader
// program's own prog_load (or, failing that, from the kernel by id, if the
// program with that id still has that tag).
func innerVia(in *sensor.InnerLoad) output.ViaLoader {
	v := output.ViaLoader{ID: in.LoaderProgID, Tag: in.LoaderTag}
	if v.ID == 0 {
		return v
	}
	if name, ok := provenanceBook.Name(v.ID, v.Tag); ok {
		v.Name = name
		return v
	}
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(v.ID)); err == nil {
		if info, err := p.Info(); err == nil && info.Tag == v.Tag {
			v.Name = info.Name
		}
		p.Close()
	}
	return v
}
