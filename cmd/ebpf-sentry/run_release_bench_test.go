//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// BenchmarkReleaseCheck is one check of the followed links (what the
// timer and every attacher exit run), all alive: by_id is
// BPF_LINK_GET_FD_BY_ID and a close per followed link; walk is what run
// does, one BPF_LINK_GET_NEXT_ID walk of the host's links (the followed
// ones and whatever else is loaded) while they are at most four per
// followed link, by id otherwise. links=0 is the check with
// nothing followed, the agent without followed attachments. Real raw tracepoint links on
// sched_process_hang (which fires only on a hung task).
func BenchmarkReleaseCheck(b *testing.B) {
	testutils.RequireRoot(b, "creating links")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_release", Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	var links []link.Link
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	for _, n := range []int{0, 16, 256, 2048} {
		for len(links) < n {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_hang", Program: prog})
			if err != nil {
				b.Fatalf("link %d: %v", len(links), err)
			}
			links = append(links, l)
		}
		for _, how := range []string{"by_id", "walk"} {
			w := &releaseWatch{links: map[uint32]*releasedAttach{}, perfs: map[perfKey]*releasedAttach{}, maxTracked: maxReleaseTracked,
				linkAlive: linkExists, lost: map[string]uint64{}, epfd: -1, wake: -1}
			if how == "walk" {
				w.nextLink = nextLinkID
			}
			for _, l := range links {
				info, err := l.Info()
				if err != nil {
					b.Fatal(err)
				}
				w.links[uint32(info.ID)] = &releasedAttach{ev: sensor.AttachEvent{LinkID: uint32(info.ID)}}
			}
			b.Run(fmt.Sprintf("%s/links=%d", how, n), func(b *testing.B) {
				now := time.Now()
				for b.Loop() {
					if gone := w.check(now); len(gone) != 0 {
						b.Fatalf("%d links reported gone", len(gone))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e9*100, "%cpu@1s")
			})
		}
	}
	// prog_attach: n cgroup attachments of one cgroup_skb program
	// (BPF_PROG_ATTACH), each checked by opening its cgroup by id and
	// BPF_PROG_QUERY; against by_id/links=n above.
	skb, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_release", Type: ebpf.CGroupSKB, AttachType: ebpf.AttachCGroupInetIngress,
		License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer skb.Close()
	skbInfo, err := skb.Info()
	if err != nil {
		b.Fatal(err)
	}
	skbID, _ := skbInfo.ID()
	var cgs []*testutils.Cgroup
	for _, n := range []int{16, 256} {
		for len(cgs) < n {
			cg := testutils.NewCgroup(b, fmt.Sprintf("bench-release-%d", len(cgs)))
			f, err := os.Open(cg.Path)
			if err != nil {
				b.Fatal(err)
			}
			err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: int(f.Fd()), Program: skb, Attach: ebpf.AttachCGroupInetIngress})
			f.Close()
			if err != nil {
				b.Fatalf("cgroup %d: %v", len(cgs), err)
			}
			cgs = append(cgs, cg)
		}
		w := &releaseWatch{links: map[uint32]*releasedAttach{}, perfs: map[perfKey]*releasedAttach{}, attached: map[progAttachKey]*releasedAttach{},
			progAttachState: sensor.ProgAttachState, maxTracked: maxReleaseTracked, lost: map[string]uint64{}, epfd: -1, wake: -1}
		for _, cg := range cgs {
			w.track(&sensor.AttachEvent{Op: sensor.OpProgAttach, ProgID: uint32(skbID), Result: sensor.AttachDone, Caller: &program.Loader{},
				Target: sensor.RawTarget{AttachType: uint32(ebpf.AttachCGroupInetIngress), CgroupIno: cg.ID}}, judged{})
		}
		if w.tracked() != n {
			b.Fatalf("%d followed, want %d", w.tracked(), n)
		}
		b.Run(fmt.Sprintf("prog_attach/cgroups=%d", n), func(b *testing.B) {
			now := time.Now()
			for b.Loop() {
				if gone := w.check(now); len(gone) != 0 || len(w.lost) != 0 {
					b.Fatalf("%d attachments reported gone, losses %v", len(gone), w.lost)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e9*100, "%cpu@1s")
		})
	}
}
