//go:build linux && amd64

package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
	"github.com/ebpf-sentry/ebpf-sentry/target"
)

// maxFuncsPerGlob bounds the BTF functions one attach_to glob puts into
// the kernel attach table.
const maxFuncsPerGlob = 4096

// attachBlocks resolves the block rules that judge only the target (one
// of attach_to, attach_binary, attach_symbol, attach_interface,
// attach_cgroup, and nothing else) into kernel attach-table keys: the
// kernel then blocks those attaches at entry. Other rules judge attaches
// in user space (alert only). skipped says why a block rule is not in the
// table.
func attachBlocks(res *target.Resolver, set *rules.Set) (entries []sensor.AttachBlock, ids []string, skipped []string) {
	if set == nil {
		return nil, nil, nil
	}
	for _, r := range set.Rules {
		if r.Action != rules.ActionBlock {
			continue
		}
		m := r.Match
		if len(m.AttachTo)+len(m.AttachBinary)+len(m.AttachSymbol)+len(m.AttachInterface)+len(m.AttachCgroup) == 0 {
			continue
		}
		if !rules.KernelAttachBlock(r) {
			skipped = append(skipped, r.ID+": judges more than the target (alerted at attach, not blocked)")
			continue
		}
		rule := int32(len(ids))
		before := len(entries)
		add := func(k sensor.AttachKeyKind, v uint64) {
			entries = append(entries, sensor.AttachBlock{Kind: k, Value: v, Rule: rule})
		}
		match := func(gs []rules.Glob) func(string) bool {
			return func(s string) bool {
				for _, g := range gs {
					if g.Match(s) {
						return true
					}
				}
				return false
			}
		}
		literals := func(gs []rules.Glob) (out []string) {
			for _, g := range gs {
				if !strings.ContainsAny(g.Pattern, "*?[") {
					out = append(out, g.Pattern)
				}
			}
			return out
		}
		switch {
		case len(m.AttachTo) > 0:
			for _, id := range res.TracepointIDs(match(m.AttachTo)) {
				add(sensor.KeyTracepointID, id)
			}
			if ids, err := res.FuncBTFIDs(match(m.AttachTo), maxFuncsPerGlob); err == nil {
				for _, id := range ids {
					add(sensor.KeyBTFID, uint64(id))
				}
			}
			for _, s := range literals(m.AttachTo) {
				add(sensor.KeyName, sensor.NameHash(s))
			}
		case len(m.AttachBinary) > 0:
			lits := literals(m.AttachBinary)
			if len(lits) < len(m.AttachBinary) {
				skipped = append(skipped, r.ID+": attach_binary globs with wildcards are matched in user space only")
			}
			for _, s := range lits {
				add(sensor.KeyName, sensor.NameHash(s))
			}
		case len(m.AttachSymbol) > 0:
			// kprobe functions (the kernel sees the name); a uprobe's
			// symbol is an offset there, judged in user space.
			for _, s := range literals(m.AttachSymbol) {
				add(sensor.KeyName, sensor.NameHash(s))
			}
		case len(m.AttachInterface) > 0:
			// an ifindex names an interface only in its network
			// namespace: key each by (namespace, index)
			ifs, err := target.Interfaces()
			if err != nil {
				skipped = append(skipped, r.ID+": some network namespaces not listed: "+err.Error())
			}
			for _, ifc := range ifs {
				if match(m.AttachInterface)(ifc.Name) {
					add(sensor.KeyIfindex, sensor.IfindexKey(ifc.NetNS, ifc.Ifindex))
				}
			}
		case len(m.AttachCgroup) > 0:
			root := "/sys/fs/cgroup"
			filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				rel := strings.TrimPrefix(path, root)
				if rel == "" {
					rel = "/"
				}
				if match(m.AttachCgroup)(rel) {
					if fi, err := d.Info(); err == nil {
						if st, ok := fi.Sys().(*syscall.Stat_t); ok {
							add(sensor.KeyCgroup, st.Ino)
						}
					}
				}
				return nil
			})
		}
		if len(entries) == before {
			skipped = append(skipped, r.ID+": no target on this host matches it now")
		}
		ids = append(ids, r.ID)
	}
	return entries, ids, skipped
}

// setKernelTable fills the sensor's attach table from the rule set.
func (j *attachJudge) setKernelTable(s *sensor.Sensor, set *rules.Set) error {
	entries, ids, skipped := attachBlocks(j.res, set)
	for _, why := range skipped {
		slog.Debug("attach table", "skipped", why)
	}
	if err := s.SetAttachBlocks(entries, ids); err != nil {
		return fmt.Errorf("attach table: %w", err)
	}
	return nil
}
