package policy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

func TestMain(m *testing.M) { natstest.Main(m) }

// cluster is the 3-node JetStream cluster the tests share.
func cluster(t *testing.T) *natstest.Cluster {
	t.Helper()
	return natstest.Shared(t)
}

// ruleFile is a valid rule file whose one rule has the given id.
func ruleFile(id string) File {
	return File{Name: id + ".yaml", Data: []byte(fmt.Sprintf(`- id: %s
  description: test rule
  severity: high
  action: block
  match:
    helpers_any: [bpf_override_return]
`, id))}
}

func bundle(serial int64, files ...File) *Bundle {
	return &Bundle{Version: 1, Serial: serial, Files: files}
}

func key(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func ruleIDs(s *rules.Set) string {
	var ids []string
	for _, r := range s.Rules {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, ",")
}

func TestVerifyAcceptsOnlyBundlesSignedByATrustedKey(t *testing.T) {
	pub, priv := key(t)
	_, other := key(t)
	good, err := Sign(bundle(1, ruleFile("a")), priv)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Verify(good, []ed25519.PublicKey{pub}); err != nil || len(b.Files) != 1 {
		t.Fatalf("a bundle signed by the trusted key: %v", err)
	}
	byOther, _ := Sign(bundle(1, ruleFile("a")), other)
	tampered2, _ := Sign(bundle(1, ruleFile("a")), priv)
	// Flip one byte of the payload, keeping valid JSON and base64.
	tampered2 = []byte(strings.Replace(string(tampered2), `"payload":"ey`, `"payload":"ex`, 1))
	badName, _ := Sign(bundle(1, File{Name: "../x.yaml", Data: []byte("[]")}), priv)
	tests := []struct {
		name string
		env  []byte
		want error
	}{
		{"plain rule YAML", ruleFile("a").Data, ErrUnsigned},
		{"a bundle signed by another key", byOther, ErrUnknownKey},
		{"a payload changed after signing", tampered2, ErrBadSignature},
		{"an envelope without signature", []byte(`{"payload":"e30=","key_id":"x"}`), ErrUnsigned},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := Verify(tt.env, []ed25519.PublicKey{pub}); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Verify(badName, []ed25519.PublicKey{pub}); err == nil {
		t.Error("a file name with a directory was accepted")
	}
}

// agent is one host following the bucket: the same Follower `run` uses.
type agent struct {
	f      *Follower
	mu     sync.Mutex
	events []rules.ReloadEvent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, url string, cache string, keys []ed25519.PublicKey) *agent {
	t.Helper()
	f, err := NewFollower(cache, keys)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	var kv jetstream.KeyValue
	for {
		kv, err = js.KeyValue(ctx, "POLICY")
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	a := &agent{f: f, cancel: cancel, done: make(chan error, 1)}
	go func() {
		a.done <- f.Follow(ctx, kv, "rules", func(ev rules.ReloadEvent) {
			a.mu.Lock()
			a.events = append(a.events, ev)
			a.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-a.done })
	return a
}

// waitEvents waits until the agent reported n attempts and returns them.
func (a *agent) waitEvents(t *testing.T, n int) []rules.ReloadEvent {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		a.mu.Lock()
		evs := append([]rules.ReloadEvent(nil), a.events...)
		a.mu.Unlock()
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent reported %d attempts, want %d", len(evs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSignedBundleTakesEffectOnEveryAgentAndOthersOnNone(t *testing.T) {
	c := cluster(t)
	pub, priv := key(t)
	_, rogue := key(t)
	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := Publish(ctx, js, "POLICY", "rules", 3, bundle(100, ruleFile("first")), priv); err != nil {
		t.Fatal(err)
	}
	caches := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var agents []*agent
	for i, u := range c.URLs() {
		agents = append(agents, startAgent(t, u, caches[i], []ed25519.PublicKey{pub}))
	}
	for i, a := range agents {
		evs := a.waitEvents(t, 1)
		if evs[0].Err != nil || ruleIDs(a.f.Store.Set()) != "first" {
			t.Fatalf("agent %d: %v, rules %s", i, evs[0].Err, ruleIDs(a.f.Store.Set()))
		}
	}
	put := func(env []byte) {
		t.Helper()
		kv, err := js.KeyValue(ctx, "POLICY")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "rules", env); err != nil {
			t.Fatal(err)
		}
	}
	rogueEnv, _ := Sign(bundle(200, ruleFile("allow-everything")), rogue)
	badRules, _ := Sign(bundle(300, File{Name: "bad.yaml", Data: []byte("- id: x\n  action: maybe\n")}), priv)
	oldEnv, _ := Sign(bundle(50, ruleFile("old")), priv)
	steps := []struct {
		name string
		env  []byte
		want error // nil: must take effect
		ids  string
	}{
		{"an unsigned bundle", ruleFile("unsigned").Data, ErrUnsigned, "first"},
		{"a bundle signed by an unknown key", rogueEnv, ErrUnknownKey, "first"},
		{"a signed bundle with an invalid rule", badRules, nil, "first"},
		{"a replayed older signed bundle", oldEnv, ErrRollback, "first"},
	}
	for n, st := range steps {
		put(st.env)
		for i, a := range agents {
			evs := a.waitEvents(t, 2+n)
			ev := evs[1+n]
			if ev.Err == nil {
				t.Errorf("%s: agent %d applied it", st.name, i)
			} else if st.want != nil && !errors.Is(ev.Err, st.want) {
				t.Errorf("%s: agent %d: %v, want %v", st.name, i, ev.Err, st.want)
			}
			if got := ruleIDs(a.f.Store.Set()); got != st.ids {
				t.Errorf("%s: agent %d enforces %s, want %s", st.name, i, got, st.ids)
			}
		}
	}
	if _, err := Publish(ctx, js, "POLICY", "rules", 3, bundle(400, ruleFile("second"), ruleFile("third")), priv); err != nil {
		t.Fatal(err)
	}
	for i, a := range agents {
		evs := a.waitEvents(t, 2+len(steps))
		if ev := evs[1+len(steps)]; ev.Err != nil || ruleIDs(a.f.Store.Set()) != "second,third" {
			t.Errorf("agent %d after the second signed bundle: %v, rules %s", i, ev.Err, ruleIDs(a.f.Store.Set()))
		}
	}

	// Boot without the bus: the cache alone gives the last good rules.
	f, err := NewFollower(caches[0], []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleIDs(f.Store.Set()); got != "second,third" {
		t.Errorf("booted from the cache with %s, want second,third", got)
	}
	// A cache edited on disk is refused rather than trusted.
	os.WriteFile(filepath.Join(caches[1], "current", "second.yaml"), ruleFile("edited").Data, 0o600)
	if _, err := NewFollower(caches[1], []ed25519.PublicKey{pub}); err == nil {
		t.Error("a cache whose files differ from the signed bundle was used")
	}
}
