// Package image builds the ebpf-sentry container image without a container
// daemon (go-containerregistry): one layer on an empty base holding the
// static agent, the CA bundle its TLS sinks (webhook, NATS) verify against,
// and an empty /run for its lock file. Nothing else: no shell, no libc, no
// package manager. It is written as an OCI image layout on disk.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths inside the image.
const (
	BinPath = "/usr/bin/ebpf-sentry"
	CAPath  = "/etc/ssl/certs/ca-certificates.crt"
)

// DefaultCA is the host's CA bundle (Debian's ca-certificates).
const DefaultCA = "/etc/ssl/certs/ca-certificates.crt"

// Options say what goes into the image.
type Options struct {
	Binary  string // the static agent
	CA      string // PEM bundle; DefaultCA when empty
	Version string // image version label and layout tag
	Arch    string // amd64 when empty
}

type file struct {
	name string
	mode int64
	body []byte // nil: a directory
}

// Layer returns the image's only layer as a tar stream.
func Layer(o Options) ([]byte, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	ca := o.CA
	if ca == "" {
		ca = DefaultCA
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("image: CA bundle: %w", err)
	}
	entries := []file{
		{"etc/", 0o755, nil},
		{"etc/ssl/", 0o755, nil},
		{"etc/ssl/certs/", 0o755, nil},
		{CAPath[1:], 0o644, pem},
		{"run/", 0o755, nil},
		{"usr/", 0o755, nil},
		{"usr/bin/", 0o755, nil},
		{BinPath[1:], 0o755, bin},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		if e.body == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	data, err := Layer(o)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", o.Arch
	cfg.Config.Entrypoint = []string{BinPath}
	cfg.Config.Cmd = []string{"run", "--pin"}
	cfg.Config.Env = []string{"PATH=/usr/bin"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "ebpf-sentry",
		"org.opencontainers.image.version": o.Version,
	}
	return mutate.ConfigFile(img, cfg)
}

// WriteLayout writes img as an OCI image layout in dir, tagged tag
// (org.opencontainers.image.ref.name), replacing what dir held.
func WriteLayout(dir, tag string, img v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
}

// ReadLayout returns the image tagged tag from the OCI layout in dir.
func ReadLayout(dir, tag string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == tag {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%s: no image tagged %q", dir, tag)
}
