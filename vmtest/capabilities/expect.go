package capabilities

import "github.com/ebpf-sentry/ebpf-sentry/internal/kernelcaps"

// The capability names and the expectation lists live in internal/kernelcaps,
// which the sensor's tests share; this suite proves them on each kernel.

// Capability names one thing a kernel lets the sentry do.
type Capability = kernelcaps.Capability

// Expectation is what one booted kernel must show.
type Expectation = kernelcaps.Expectation

// The capabilities (see kernelcaps for what each means).
const (
	BTF               = kernelcaps.BTF
	BPFLSMActive      = kernelcaps.BPFLSMActive
	LSMBpfDeny        = kernelcaps.LSMBpfDeny
	LSMProgLoadDeny   = kernelcaps.LSMProgLoadDeny
	KprobeBpf         = kernelcaps.KprobeBpf
	TracepointBpf     = kernelcaps.TracepointBpf
	TpBTFSysEnter     = kernelcaps.TpBTFSysEnter
	FentrySecurityBpf = kernelcaps.FentrySecurityBpf
	SendSignal        = kernelcaps.SendSignal
	ProbeWriteUser    = kernelcaps.ProbeWriteUser
	Ia32Exec          = kernelcaps.Ia32Exec
	Ia32BpfTracepoint = kernelcaps.Ia32BpfTracepoint
	Ia32BpfTpBTF      = kernelcaps.Ia32BpfTpBTF
	Ia32BpfKprobe     = kernelcaps.Ia32BpfKprobe
)

// Ia32Loader is the 32-bit build of internal/cmd/bpfload that vmtest
// installs in the VM's /bin.
const Ia32Loader = "bpfload32"

// All lists every capability the suite probes, in report order.
var All = kernelcaps.All

// Lookup returns the expectation for a kernel label of the matrix.
func Lookup(label string) (Expectation, error) { return kernelcaps.Lookup(label) }

// Decide says what a kernel with facts f must offer (kernelcaps.Decide).
var Decide = kernelcaps.Decide

// Expectations is keyed by the kernel label of vmtest's matrix.
var Expectations = kernelcaps.Expectations
