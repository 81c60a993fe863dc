package output

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
)

// writeCert makes a certificate signed by parent (self-signed when nil) and
// writes cert and key as PEM files named base.pem and base-key.pem in dir.
func writeCert(t *testing.T, dir, base string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, base+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, base+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestNATSSinkOverMutualTLSWithAnNKey(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sentry test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(dir, "agent.nk")
	os.WriteFile(seedFile, seed, 0o600)
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(dir, "other.nk")
	os.WriteFile(otherFile, otherSeed, 0o600)

	extra := fmt.Sprintf(`tls {
  cert_file: %q
  key_file: %q
  ca_file: %q
  verify: true
}
authorization {
  users = [ { nkey: %q } ]
}
`, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"), pub)
	srv := natstest.NewServer(t, "tls1", filepath.Join(dir, "srv"), extra)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c := &natstest.Cluster{Servers: []*natstest.Server{srv}}
	if err := c.WaitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	tlsOpts := func(nkey string) func(*NATSOptions) {
		return func(o *NATSOptions) {
			o.Replicas = 1
			o.CAFile, o.CertFile, o.KeyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
			o.NKeyFile = nkey
		}
	}
	run := func(nkey, instance string) (*NATSSink, *Pipeline) {
		return emitTenToNATS(t, srv.URL(), "TLS", "host-tls", instance, tlsOpts(nkey))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sink, p := run(seedFile, "good")
	p.drain(ctx)
	waitSpoolEmpty(t, sink, time.Minute)
	p.Close(ctx)

	// An unknown nkey is refused by the server: its events stay spooled.
	bad, pb := run(otherFile, "bad")
	pb.drain(ctx)
	if got := bad.Spooled(); got != 10 {
		t.Errorf("a sink with an unknown nkey has %d events spooled, want all 10", got)
	}
	pb.Close(ctx)

	nk, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := streamEvents(t, []string{srv.URL()}, "TLS", 10, nk,
		nats.RootCAs(filepath.Join(dir, "ca.pem")), nats.ClientCert(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")))
	if len(ids) != 10 {
		t.Fatalf("stream holds %d events, want 10", len(ids))
	}
	for i, id := range ids {
		if want := fmt.Sprintf("good-%d", i+1); id != want {
			t.Errorf("message %d is %s, want %s", i, id, want)
		}
	}
}

// TestNATSSinkAuthenticatesWithACredsFile runs a server in operator mode
// (accounts and users are JWTs the operator's and the account's keys
// sign): a sink with a credentials file (user JWT and seed) of a trusted
// account delivers, one whose user an unknown account signed delivers
// nothing and keeps its events in the spool.
func TestNATSSinkAuthenticatesWithACredsFile(t *testing.T) {
	dir := t.TempDir()
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, _ := nkeys.CreateAccount()
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		j, err := ac.Encode(op)
		if err != nil {
			t.Fatal(err)
		}
		return kp, pub, j
	}
	_, sysPub, sysJWT := account("SYS", false)
	agents, agentsPub, agentsJWT := account("AGENTS", true)
	creds := func(acc nkeys.KeyPair, file string) string {
		u, _ := nkeys.CreateUser()
		upub, _ := u.PublicKey()
		useed, _ := u.Seed()
		uc := jwt.NewUserClaims(upub)
		uj, err := uc.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(uj, useed)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := creds(agents, "agent.creds")
	stranger, _ := nkeys.CreateAccount()
	bad := creds(stranger, "stranger.creds")

	extra := fmt.Sprintf(`operator: %q
system_account: %s
resolver: MEMORY
resolver_preload: {
  %s: %q
  %s: %q
}
`, opJWT, sysPub, sysPub, sysJWT, agentsPub, agentsJWT)
	srv := natstest.NewServer(t, "creds1", filepath.Join(dir, "srv"), extra)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := (&natstest.Cluster{Servers: []*natstest.Server{srv}}).WaitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	run := func(creds, instance string) (*NATSSink, *Pipeline) {
		return emitTenToNATS(t, srv.URL(), "CREDS", "host-creds", instance, func(o *NATSOptions) { o.Replicas, o.CredsFile = 1, creds })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sink, p := run(good, "good")
	p.drain(ctx)
	waitSpoolEmpty(t, sink, time.Minute)
	p.Close(ctx)

	strangerSink, ps := run(bad, "bad")
	ps.drain(ctx)
	if got := strangerSink.Spooled(); got != 10 {
		t.Errorf("a sink whose user an unknown account signed has %d events spooled, want all 10", got)
	}
	ps.Close(ctx)

	ids, _ := streamEvents(t, []string{srv.URL()}, "CREDS", 10, nats.UserCredentials(good))
	if len(ids) != 10 {
		t.Fatalf("stream holds %d events, want 10", len(ids))
	}
	for i, id := range ids {
		if want := fmt.Sprintf("good-%d", i+1); id != want {
			t.Errorf("message %d is %s, want %s", i, id, want)
		}
	}
}

// emitTenToNATS starts a NATS sink on one server with opts and a pipeline
// that emits ten events into it; the caller drains and closes.
func emitTenToNATS(t *testing.T, url, stream, host, instance string, opts func(*NATSOptions)) (*NATSSink, *Pipeline) {
	t.Helper()
	sink := newTestNATSSink(t, []string{url}, stream, opts)
	p := NewPipeline(Config{Host: host, Instance: instance, LossInterval: -1})
	p.Add(sink, QueueOptions{})
	for i := 0; i < 10; i++ {
		p.Emit(natsEvent())
	}
	return sink, p
}
