package vmtest

import (
	"fmt"
	"strings"
)

// Kernel is one boot of the matrix: a Debian kernel image and the command line
// it is booted with. Several boots can share an image.
type Kernel struct {
	// Label names the boot; tests see it as EBPF_SENTRY_KERNEL and look up
	// what the kernel must show by it.
	Label string
	// Image names the cached vmlinuz; boots of the same package share it.
	Image string
	// Release is the Debian release holding Package (see scripts/kernels.sh).
	Release string
	// Package is the meta-package resolved to the newest image of Release.
	Package string
	// Cmdline holds extra kernel parameters for this boot.
	Cmdline []string
}

// Matrix is every boot of the kernel matrix, oldest kernel first.
var Matrix = []Kernel{
	{Label: "5.10", Image: "5.10", Release: "bullseye", Package: "linux-image-cloud-amd64"},
	// bpf is not in 5.10's CONFIG_LSM; naming it on the command line is how
	// users of 5.10 get the BPF LSM.
	{Label: "5.10-lsm", Image: "5.10", Release: "bullseye", Package: "linux-image-cloud-amd64",
		Cmdline: []string{"lsm=lockdown,capability,yama,apparmor,bpf"}},
	{Label: "6.1", Image: "6.1", Release: "bookworm", Package: "linux-image-cloud-amd64"},
	{Label: "6.12", Image: "6.12", Release: "bookworm", Package: "linux-image-6.12-cloud-amd64"},
	{Label: "6.12-lockdown", Image: "6.12", Release: "bookworm", Package: "linux-image-6.12-cloud-amd64",
		Cmdline: []string{"lockdown=integrity"}},
	{Label: "trixie-bpo", Image: "trixie-bpo", Release: "trixie-backports", Package: "linux-image-cloud-amd64"},
}

// Select returns the boots named by labels, in matrix order, or the whole
// matrix when labels is empty. An unknown label is an error naming the known ones.
func Select(labels []string) ([]Kernel, error) {
	if len(labels) == 0 {
		return Matrix, nil
	}
	want := make(map[string]bool, len(labels))
	for _, l := range labels {
		want[l] = true
	}
	var out []Kernel
	for _, k := range Matrix {
		if want[k.Label] {
			out = append(out, k)
			delete(want, k.Label)
		}
	}
	if len(want) > 0 {
		var unknown, known []string
		for l := range want {
			unknown = append(unknown, l)
		}
		for _, k := range Matrix {
			known = append(known, k.Label)
		}
		return nil, fmt.Errorf("unknown kernel label(s) %s (known: %s)", strings.Join(sorted(unknown), ", "), strings.Join(known, ", "))
	}
	return out, nil
}

// DefaultPackages are the suites `make vmtest` runs in every VM: what each
// kernel offers, and the sensor's hooks and enforcers on it.
var DefaultPackages = []string{"./vmtest/capabilities", "./sensor", "./cmd/ebpf-sentry", "./inventory"}

// DefaultHelpers are the programs those suites run inside the VM: the
// test loader and attacher, and the agent itself for the command's
// end-to-end tests.
var DefaultHelpers = []string{"./internal/cmd/bpfload", "./internal/cmd/bpfattach", "./internal/cmd/bpftoken", "./cmd/ebpf-sentry@native"}

// DefaultPackageRun limits the sensor suite to the tests whose outcome
// depends on the kernel (each sensor start costs seconds under TCG; the
// rest of the suite runs on the host): the plan agrees with the kernel's
// capability list, the LSM hook denies race-free (skipped where the list
// says the hook is absent), the kill and corrupt enforcers act, and a
// mismatched hook and enforcer are refused, the kprobe hook reports
// what the tracepoint does, the bounded walk (the only one on 5.10)
// captures and counts what the bpf_loop walk does, and loads whose
// instruction pages a loader serves late (userfaultfd) are reported,
// blocked on request, and judged on their own facts by lsm-bpf, and
// 32-bit loaders are judged with every hook, and a pinned sensor keeps
// enforcing without its agent; another process's write of the sensor's
// config is killed or refused, and the agent's start time is learnt from
// the exit hook; attaches are reported with their targets and blocked
// (killed, or denied by the LSM gates), a cgroup attach too, and
// kprobe_multi links name their symbols (kprobes: the VMs have them); the completing load of a profile
// split across a loader group is denied by each LSM hook; lock mode blocks
// what is not on the allowlist on every hook (the whole VM locked, the
// agent spared); signed loads (6.18+) and loads through a BPF token made in
// a user namespace (6.9+) name their provenance.
//
// Of the command's suite, doctor's signing and token lines against the
// kernel's version, and the light skeleton's payload stopped by run
// (syscall programs: 5.14+)
// (whatever the hook: denied at the inner load by an LSM hook, or killed
// at the end of the loader's BPF_PROG_TEST_RUN); of the inventory's, a
// program hidden from GET_NEXT_ID with bpf_probe_write_user found by the
// cross-view (where lockdown forbids the helper: the hider refused).
var DefaultPackageRun = map[string]string{
	"./inventory":       "^TestCrossViewFindsAProgramHiddenFromGetNextID$",
	"./cmd/ebpf-sentry": "^(TestRunStopsTheLightSkeletonsPayload|TestDoctorReportsSigningAndTokens)$",
	"./sensor":          "^(TestProbeKernelAgreesWithTheKernelsExpectations|TestPinnedSensorKeepsEnforcing|TestIA32LoadersAreJudged|TestBoundedWalkReportsWhatTheLoopWalkReports|TestStalledInstructionPagesAreReportedAndBlocked|TestLSMProgLoad.*|TestLSMBpf.*|TestLSMInnerLoadsCarryTheirOwnOutcome|TestMismatchedHookAndEnforcerAreRefused|TestCorruptEnforcer.*|TestKprobeHookSeesWhatTheTracepointSees|TestJudgedCopyDiffersWhenTheLoaderRacesTheCheck|TestKernelTagIsTheTagOfTheJudgedInstructions|TestVerdictsAndEnforcement|TestMapWriteByAnotherProcessIsStopped|TestSentrysProgramsAndAgentAreGuarded|TestSensorLearnsTheAgentsStartInNanoseconds|TestAttachIsReportedAndBlockedByTarget|TestIoctlAttachIsReportedByTheExitAloneInMonitorMode|TestLSMGroupSplitProfileIsDenied|TestGroupJoinsEveryMapALoadReferences|TestGroupMapReferencesPastTheCapAreCounted|TestLockBlocksWhatIsNotOnTheAllowlist|TestLockSparesTheAgentsOwnLoadsByIdentity|TestSignedLoadsCarryProvenance|TestSignedPolicyIsEnforcedInTheKernel|TestBogusSignaturesAndTokensGetAClearOutcome|TestTokenLoadsNameTheTokensOrigin|TestTokenMapsAttachesAndRefusalsNameTheToken)$",
}
