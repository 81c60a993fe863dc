package policy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// signedName is the envelope kept beside a cached bundle's rule files (not a
// .yaml file, so the rules loader does not read it).
const signedName = "bundle.signed"

// Follower applies the bundles published under one key of a KV bucket to a
// rules.Store, and caches each one that took effect in CacheDir:
//
//	CacheDir/b-<serial>/   the bundle's rule files and bundle.signed
//	CacheDir/current       symlink to the bundle in force
type Follower struct {
	Store    *rules.Store
	Keys     []ed25519.PublicKey
	CacheDir string
	serial   int64
}

// Boot opens the cached bundle in cacheDir, checking its signature and that
// its files are the signed ones, and returns its directory for
// rules.NewStore. It returns "" and no error when there is no cache yet.
func Boot(cacheDir string, keys []ed25519.PublicKey) (dir string, serial int64, err error) {
	target, err := os.Readlink(filepath.Join(cacheDir, "current"))
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("policy cache: %w", err)
	}
	dir = filepath.Join(cacheDir, filepath.Base(target))
	env, err := os.ReadFile(filepath.Join(dir, signedName))
	if err != nil {
		return "", 0, fmt.Errorf("policy cache: %w", err)
	}
	b, err := Verify(env, keys)
	if err != nil {
		return "", 0, fmt.Errorf("policy cache %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, fmt.Errorf("policy cache: %w", err)
	}
	if len(ents) != len(b.Files)+1 {
		return "", 0, fmt.Errorf("policy cache %s: %d files, the signed bundle has %d", dir, len(ents)-1, len(b.Files))
	}
	for _, f := range b.Files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil || !bytes.Equal(data, f.Data) {
			return "", 0, fmt.Errorf("policy cache %s: %s differs from the signed bundle", dir, f.Name)
		}
	}
	return dir, b.Serial, nil
}

// NewFollower boots from the cache when there is one (else from the embedded
// default rules) and returns a follower for the resulting store.
func NewFollower(cacheDir string, keys []ed25519.PublicKey) (*Follower, error) {
	if len(keys) == 0 {
		return nil, errors.New("fleet policy needs at least one public key")
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("policy cache: %w", err)
	}
	dir, serial, err := Boot(cacheDir, keys)
	if err != nil {
		return nil, err
	}
	store, err := rules.NewStore(dir) // "" : the embedded defaults until a bundle arrives
	if err != nil {
		return nil, fmt.Errorf("policy cache: %w", err)
	}
	return &Follower{Store: store, Keys: keys, CacheDir: cacheDir, serial: serial}, nil
}

// Apply verifies env and, if it is newer than the bundle in force, writes it
// to the cache, loads it (rules validation exactly as for files) and makes
// it current. It reports whether the rules changed; on error the rules in
// force stay.
func (f *Follower) Apply(env []byte) (bool, error) {
	b, err := Verify(env, f.Keys)
	if err != nil {
		return false, err
	}
	if b.Serial < f.serial {
		return false, fmt.Errorf("%w (serial %d < %d)", ErrRollback, b.Serial, f.serial)
	}
	if b.Serial == f.serial {
		return false, nil // the bundle in force, seen again (e.g. at reconnect)
	}
	name := fmt.Sprintf("b-%d", b.Serial)
	dir := filepath.Join(f.CacheDir, name)
	tmp, err := os.MkdirTemp(f.CacheDir, ".tmp-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	for _, file := range b.Files {
		if err := os.WriteFile(filepath.Join(tmp, file.Name), file.Data, 0o600); err != nil {
			return false, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, signedName), env, 0o600); err != nil {
		return false, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return false, err
	}
	if err := f.Store.Switch(dir); err != nil {
		os.RemoveAll(dir)
		return false, err
	}
	link := filepath.Join(f.CacheDir, ".current.tmp")
	os.Remove(link)
	if err := os.Symlink(name, link); err != nil {
		return true, fmt.Errorf("policy cache: %w", err)
	}
	if err := os.Rename(link, filepath.Join(f.CacheDir, "current")); err != nil {
		return true, fmt.Errorf("policy cache: %w", err)
	}
	f.serial = b.Serial
	// Older bundles are no longer needed.
	ents, _ := os.ReadDir(f.CacheDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "b-") && e.Name() != name {
			os.RemoveAll(filepath.Join(f.CacheDir, e.Name()))
		}
	}
	return true, nil
}

// Follow watches key in kv and applies every bundle put there, reporting
// each attempt (a rejected bundle carries Err; the old rules stay). It
// returns when ctx ends or the watch fails.
func (f *Follower) Follow(ctx context.Context, kv jetstream.KeyValue, key string, report func(rules.ReloadEvent)) error {
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %s/%s: %w", kv.Bucket(), key, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch %s/%s ended", kv.Bucket(), key)
			}
			if e == nil {
				continue // the initial values are all delivered
			}
			reason := fmt.Sprintf("fleet policy %s/%s revision %d", kv.Bucket(), key, e.Revision())
			if e.Operation() != jetstream.KeyValuePut {
				report(rules.ReloadEvent{Set: f.Store.Set(), Err: fmt.Errorf("bundle deleted from the bucket: keeping the rules in force"), Reason: reason})
				continue
			}
			changed, err := f.Apply(e.Value())
			if err != nil {
				err = fmt.Errorf("%s rejected (keeping the %d rules in force): %w", reason, len(f.Store.Set().Rules), err)
			}
			if changed || err != nil {
				report(rules.ReloadEvent{Set: f.Store.Set(), Err: err, Reason: reason})
			}
		}
	}
}

// Publish signs b with key and puts it under key name in bucket (created
// with replicas copies if absent). It returns the KV revision.
func Publish(ctx context.Context, js jetstream.JetStream, bucket, name string, replicas int, b *Bundle, key ed25519.PrivateKey) (uint64, error) {
	env, err := Sign(b, key)
	if err != nil {
		return 0, err
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 5, Replicas: max(replicas, 1)})
	}
	if err != nil {
		return 0, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	return kv.Put(ctx, name, env)
}
