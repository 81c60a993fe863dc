package vmtest_test

import (
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/vmtest"
	"github.com/ebpf-sentry/ebpf-sentry/vmtest/capabilities"
)

func TestMatrix(t *testing.T) {
	t.Run("every boot has a unique label and a capability expectation list", func(t *testing.T) {
		seen := map[string]bool{}
		for _, k := range vmtest.Matrix {
			if seen[k.Label] {
				t.Errorf("label %s appears twice", k.Label)
			}
			seen[k.Label] = true
			if _, err := capabilities.Lookup(k.Label); err != nil {
				t.Error(err)
			}
		}
		for label := range capabilities.Expectations {
			if !seen[label] {
				t.Errorf("capabilities expects kernel %s, which the matrix never boots", label)
			}
		}
	})
	t.Run("boots sharing an image fetch the same package", func(t *testing.T) {
		byImage := map[string]vmtest.Kernel{}
		for _, k := range vmtest.Matrix {
			if prev, ok := byImage[k.Image]; ok && (prev.Release != k.Release || prev.Package != k.Package) {
				t.Errorf("image %s is %s/%s for %s but %s/%s for %s", k.Image, prev.Release, prev.Package, prev.Label, k.Release, k.Package, k.Label)
			}
			byImage[k.Image] = k
		}
	})
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name    string
		labels  []string
		want    []string
		wantErr string
	}{
		{name: "no labels select the whole matrix", labels: nil, want: labels(vmtest.Matrix)},
		{name: "labels come back in matrix order", labels: []string{"6.12", "5.10"}, want: []string{"5.10", "6.12"}},
		{name: "a repeated label selects its boot once", labels: []string{"6.1", "6.1"}, want: []string{"6.1"}},
		{name: "an unknown label is an error naming it and the known ones", labels: []string{"6.1", "4.19"}, wantErr: "4.19 (known: 5.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vmtest.Select(tt.labels)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Select(%v) error = %v, want one containing %q", tt.labels, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(labels(got), ",") != strings.Join(tt.want, ",") {
				t.Errorf("Select(%v) = %v, want %v", tt.labels, labels(got), tt.want)
			}
		})
	}
}

func labels(ks []vmtest.Kernel) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.Label)
	}
	return out
}
