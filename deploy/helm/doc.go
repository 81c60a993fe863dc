// Package helm holds the tests of the ebpf-sentry Helm chart
// (ebpf-sentry/ in this directory): lint, render, and strict decoding of
// the rendered manifests with the Kubernetes API types.
package helm
