//go:build linux

package main

import (
	"fmt"
	"sort"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// diffAgainstLoaded compares l with the programs loaded now (a scan).
func diffAgainstLoaded(l *allowlist.List) (loadedDiff, error) {
	inv, err := inventory.Scan(&inventory.Options{})
	if err != nil {
		return loadedDiff{}, fmt.Errorf("scan: %w", err)
	}
	return diffLoaded(l, inv), nil
}

func diffLoaded(l *allowlist.List, inv *inventory.Inventory) loadedDiff {
	var d loadedDiff
	tags := map[string]bool{}
	for _, e := range l.Entries {
		if e.Tag == "" {
			d.NoTag = append(d.NoTag, e)
			continue
		}
		tags[e.Tag] = true
	}
	running := map[string]bool{}
	for _, p := range inv.Programs {
		running[p.Tag] = true
		if !tags[p.Tag] {
			d.NotListed = append(d.NotListed, loadedProg{ID: p.ID, Name: output.Escape(p.Name), Type: output.ProgTypeName(p.Type), Tag: output.Escape(p.Tag)})
		}
	}
	for _, e := range l.Entries {
		if e.Tag != "" && !running[e.Tag] {
			d.NotLoaded = append(d.NotLoaded, e)
		}
	}
	sort.Slice(d.NotListed, func(i, j int) bool { return d.NotListed[i].ID < d.NotListed[j].ID })
	return d
}
