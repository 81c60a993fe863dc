package bpfsign

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestSignatureVerifiesAndBindsTheInstructions(t *testing.T) {
	s, err := NewSigner("ebpf-sentry provenance test")
	if err != nil {
		t.Fatal(err)
	}
	insns := []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}
	sig, err := s.Sign(insns)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(sig, insns, s.Cert); err != nil {
		t.Fatalf("own signature does not verify: %v", err)
	}
	other := bytes.Clone(insns)
	other[4] = 1
	if err := Verify(sig, other, s.Cert); err == nil {
		t.Fatal("signature verifies over other instructions")
	}
	s2, err := NewSigner("another")
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(sig, insns, s2.Cert); err == nil {
		t.Fatal("signature verifies with another certificate")
	}
	if _, err := s.Sign(nil); err != ErrEmpty {
		t.Fatalf("signing nothing: %v, want ErrEmpty", err)
	}
}

// openssl, where installed, is an independent reader of the format: it must
// accept the message as a detached signature by the certificate.
func TestOpenSSLAcceptsTheSignature(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: the format is checked by the kernel in the sensor's signed-load tests")
	}
	s, err := NewSigner("ebpf-sentry openssl check")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xb7, 0, 0, 0, 0, 0, 0, 0}, 3)
	sig, err := s.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, err := exec.Command(openssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", write("sig", sig),
		"-content", write("data", data), "-certfile", write("cert", s.CertDER), "-certfileform", "DER",
		"-nointern", "-noverify", "-out", "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl refuses the signature: %v\n%s", err, out)
	}
}
