package policy

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// MaxEnvelope bounds a signed bundle.
const MaxEnvelope = 16 << 20

// Sentinel errors callers branch on.
var (
	ErrUnsigned     = errors.New("bundle is not signed")
	ErrUnknownKey   = errors.New("bundle signed by a key this agent does not trust")
	ErrBadSignature = errors.New("bundle signature does not verify")
	ErrRollback     = errors.New("bundle is older than the one in force")
)

// File is one rule file of a bundle.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// Bundle is what an agent applies: rule files and a serial that only grows.
type Bundle struct {
	Version int    `json:"version"`
	Serial  int64  `json:"serial"` // publication time in ns; older bundles are refused
	Files   []File `json:"files"`
}

// envelope is the signed form stored in the bucket.
type envelope struct {
	Payload   []byte `json:"payload"` // the Bundle's JSON, exactly the bytes signed
	KeyID     string `json:"key_id"`  // KeyID of the signing key
	Signature []byte `json:"signature"`
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$`)

// ReadDir makes a bundle of the *.yaml / *.yml files of dir.
func ReadDir(dir string) (*Bundle, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Version: 1, Serial: time.Now().UnixNano()}
	for _, e := range ents {
		if !e.Type().IsRegular() || !fileName.MatchString(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		b.Files = append(b.Files, File{Name: e.Name(), Data: data})
	}
	if len(b.Files) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml or *.yml rule files", dir)
	}
	return b, nil
}

// Sign returns the signed envelope of b.
func Sign(b *Bundle, key ed25519.PrivateKey) ([]byte, error) {
	payload, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return json.Marshal(envelope{Payload: payload, KeyID: KeyID(pub), Signature: ed25519.Sign(key, payload)})
}

// Verify checks that env was signed by one of keys and returns its bundle,
// whose file names and sizes are checked too (not yet its rules: that is
// the rules loader's job, on the files written to disk).
func Verify(env []byte, keys []ed25519.PublicKey) (*Bundle, error) {
	if len(env) > MaxEnvelope {
		return nil, fmt.Errorf("bundle of %d bytes: at most %d", len(env), MaxEnvelope)
	}
	var e envelope
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, fmt.Errorf("%w: not a signed bundle (%v)", ErrUnsigned, err)
	}
	if len(e.Signature) == 0 || len(e.Payload) == 0 {
		return nil, ErrUnsigned
	}
	var key ed25519.PublicKey
	for _, k := range keys {
		if KeyID(k) == e.KeyID {
			key = k
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w (key id %q)", ErrUnknownKey, e.KeyID)
	}
	if !ed25519.Verify(key, e.Payload, e.Signature) {
		return nil, ErrBadSignature
	}
	var b Bundle
	if err := json.Unmarshal(e.Payload, &b); err != nil {
		return nil, fmt.Errorf("signed bundle payload: %w", err)
	}
	if b.Version != 1 {
		return nil, fmt.Errorf("bundle version %d: this agent reads version 1", b.Version)
	}
	if len(b.Files) == 0 || len(b.Files) > rules.MaxFiles {
		return nil, fmt.Errorf("bundle has %d files: want 1…%d", len(b.Files), rules.MaxFiles)
	}
	seen := map[string]bool{}
	for _, f := range b.Files {
		if !fileName.MatchString(f.Name) || seen[f.Name] {
			return nil, fmt.Errorf("bundle file name %q: want a unique NAME.yaml without a directory", f.Name)
		}
		seen[f.Name] = true
		if len(f.Data) > rules.MaxFileSize {
			return nil, fmt.Errorf("bundle file %s: %d bytes, at most %d", f.Name, len(f.Data), rules.MaxFileSize)
		}
	}
	sort.Slice(b.Files, func(i, j int) bool { return b.Files[i].Name < b.Files[j].Name })
	return &b, nil
}

// GenerateKey makes a key pair and writes PREFIX.key (PKCS #8 PEM, mode
// 0600) and PREFIX.pub (PKIX PEM).
func GenerateKey(prefix string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(prefix+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(prefix+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

func readPEM(path, want string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != want {
		return nil, fmt.Errorf("%s: no %s PEM block", path, want)
	}
	return blk.Bytes, nil
}

// ReadPrivateKey reads a key written by GenerateKey.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, want an ed25519 key", path, k)
	}
	return ek, nil
}

// ReadPublicKey reads a public key written by GenerateKey.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, want an ed25519 key", path, k)
	}
	return ek, nil
}

// ReadPublicKeys reads every path (--policy-key, repeatable).
func ReadPublicKeys(paths []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, p := range paths {
		k, err := ReadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("--policy-key %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("fleet policy needs at least one --policy-key: without one every bundle is refused")
	}
	return keys, nil
}

// ParseSpec splits nats-kv://BUCKET[/KEY] (KEY defaults to "rules").
func ParseSpec(spec string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(spec, "nats-kv://")
	if !ok {
		return "", "", fmt.Errorf("%q: want nats-kv://BUCKET[/KEY]", spec)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if key == "" {
		key = "rules"
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	if !valid.MatchString(bucket) {
		return "", "", fmt.Errorf("%q: bucket %q: want letters, digits, _ and -", spec, bucket)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_=.-]+$`).MatchString(key) || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") {
		return "", "", fmt.Errorf("%q: key %q: want letters, digits, _ = - and inner dots", spec, key)
	}
	return bucket, key, nil
}
