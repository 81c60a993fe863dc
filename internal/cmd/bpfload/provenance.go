package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
)

// Provenance flags: a signed load (6.18+) and a load through a BPF token
// (6.9+). Any of them makes the load pass the full 168-byte attr.
var (
	sigPath     = flag.String("sig", "", "file with a PKCS#7 signature of the instructions: a signed load")
	sigPtr      = flag.Uint64("sig-ptr", 0, "signature pointer to pass instead of the -sig buffer's (a bogus pointer)")
	sigSize     = flag.Int64("sig-size", -1, "signature size to pass instead of the -sig file's length")
	keyringID   = flag.Int("keyring", 0, "keyring_id of a signed load (0..2 system keyrings, -3 session, a serial)")
	certPath    = flag.String("cert", "", "DER X.509 certificate to put in a keyring first (add_key \"asymmetric\")")
	certKeyring = flag.String("cert-keyring", "session", "with -cert: session (a new anonymous session keyring; the load names -3) or serial (a new keyring in it; the load names its serial)")
	tokenFD     = flag.Int("token-fd", -1, "load through this token fd (prog_flags |= BPF_F_TOKEN_FD)")
)

// wantFull reports whether the provenance flags ask for the full attr.
func wantFull() bool {
	return *sigPath != "" || *sigPtr != 0 || *sigSize >= 0 || *tokenFD >= 0 || *certPath != ""
}

// fullAttr builds the full attr from attr and the provenance flags; the
// returned buffer (the signature) must stay alive until the load returns.
// With -cert it locks the calling goroutine to its thread for good: a
// session keyring belongs to the thread's credentials, and the load must run
// on the thread that joined it.
func fullAttr(attr rawbpf.ProgLoadAttr) (*rawbpf.ProgLoadAttrFull, []byte) {
	full := &rawbpf.ProgLoadAttrFull{ProgLoadAttr: attr}
	var sig []byte
	if *sigPath != "" {
		b, err := os.ReadFile(*sigPath)
		if err != nil {
			fatal(fmt.Errorf("-sig: %w", err))
		}
		sig = append(b, 0) // never empty: &sig[0] is valid even for an empty file
		full.Signature = uint64(uintptr(unsafe.Pointer(&sig[0])))
		full.SignatureSize = uint32(len(b))
	}
	if *sigPtr != 0 {
		full.Signature = *sigPtr
	}
	if *sigSize >= 0 {
		full.SignatureSize = uint32(*sigSize)
	}
	full.KeyringID = int32(*keyringID)
	if *certPath != "" {
		runtime.LockOSThread()
		id, err := setupKeyring(*certPath, *certKeyring)
		if err != nil {
			fatal(fmt.Errorf("-cert: %w", err))
		}
		full.KeyringID = id
	}
	if *tokenFD >= 0 {
		full.ProgFlags |= rawbpf.BPFFTokenFD
		full.ProgTokenFD = int32(*tokenFD)
	}
	return full, sig
}

// setupKeyring joins a new anonymous session keyring (so that nothing
// outlives this process) and adds the certificate to it, or to a new
// keyring inside it; it returns the keyring_id to load with.
func setupKeyring(certPath, where string) (int32, error) {
	der, err := os.ReadFile(certPath)
	if err != nil {
		return 0, err
	}
	// A NULL name joins a new anonymous session keyring.
	if _, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 {
		return 0, fmt.Errorf("join a new session keyring: %w", errno)
	}
	dest := unix.KEY_SPEC_SESSION_KEYRING
	id := int32(unix.KEY_SPEC_SESSION_KEYRING)
	switch where {
	case "session":
	case "serial":
		kr, err := unix.AddKey("keyring", "ebpf-sentry-provenance", nil, unix.KEY_SPEC_SESSION_KEYRING)
		if err != nil {
			return 0, fmt.Errorf("add keyring: %w", err)
		}
		dest, id = kr, int32(kr)
	default:
		return 0, fmt.Errorf("-cert-keyring %q: want session or serial", where)
	}
	if _, err := unix.AddKey("asymmetric", "", der, dest); err != nil {
		return 0, fmt.Errorf("add_key asymmetric: %w", err)
	}
	return id, nil
}

var (
	tokenMap    = flag.Bool("token-map", false, "with -token-fd: first create an array map through the token (BPF_MAP_CREATE, map_flags |= BPF_F_TOKEN_FD); prints {\"map_create\":{...}}")
	tokenAttach = flag.Bool("token-attach", false, "after each successful load: BPF_LINK_CREATE of the program (attach type perf_event, target fd 0, which is no perf event: refused); prints {\"attach\":{...}}")
)

// tokenMapCreate creates a one-slot array map named tokmap through the
// token and prints the result.
func tokenMapCreate() {
	if !*tokenMap || *tokenFD < 0 {
		return
	}
	var attr [80]byte // union bpf_attr up to map_token_fd
	le := func(off int, v uint32) {
		attr[off], attr[off+1], attr[off+2], attr[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	le(0, unix.BPF_MAP_TYPE_ARRAY)
	le(4, 4) // key_size
	le(8, 8) // value_size
	le(12, 1)
	le(16, rawbpf.BPFFTokenFD)
	copy(attr[28:44], "tokmap")
	le(76, uint32(*tokenFD))
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	ret := int(fd)
	if errno != 0 {
		ret = -int(errno)
	}
	fmt.Printf("{\"map_create\":{\"pid\":%d,\"ret\":%d}}\n", os.Getpid(), ret)
}

// tokenLinkCreate tries to attach the program fd; the attach is refused
// (target fd 0 is no perf event) after the sensor saw it at entry.
func tokenLinkCreate(progFD int) {
	if !*tokenAttach {
		return
	}
	attr := struct{ progFD, targetFD, attachType, flags uint32 }{uint32(progFD), 0, 41 /* BPF_PERF_EVENT */, 0}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	fmt.Printf("{\"attach\":{\"pid\":%d,\"errno\":%d}}\n", os.Getpid(), int(errno))
}
