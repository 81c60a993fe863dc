package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/agent"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

const chartDir = "ebpf-sentry"

func load(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// render is helm template: values over the chart's defaults, checked
// against values.schema.json, then the templates.
func render(c *chart.Chart, vals map[string]any) (map[string]string, error) {
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: "sentry", Namespace: "kube-system", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(c, rv)
}

// objects are the rendered manifests decoded strictly with the Kubernetes
// API types: a field the type does not have fails the test.
type objects struct {
	ds  *appsv1.DaemonSet
	cm  *corev1.ConfigMap
	sa  *corev1.ServiceAccount
	all []string // kinds in render order
}

func decode(t *testing.T, files map[string]string) objects {
	t.Helper()
	var o objects
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, doc := range strings.Split(files[n], "\n---") {
			if strings.TrimSpace(doc) == "" || strings.HasSuffix(n, ".tpl") || strings.HasSuffix(n, "NOTES.txt") {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v\n%s", n, err, doc)
			}
			var target any
			switch tm.Kind {
			case "DaemonSet":
				o.ds = &appsv1.DaemonSet{}
				target = o.ds
			case "ConfigMap":
				o.cm = &corev1.ConfigMap{}
				target = o.cm
			case "ServiceAccount":
				o.sa = &corev1.ServiceAccount{}
				target = o.sa
			default:
				t.Fatalf("%s: unexpected kind %q", n, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
				t.Fatalf("%s: not a valid %s: %v\n%s", n, tm.Kind, err, doc)
			}
			o.all = append(o.all, tm.Kind)
		}
	}
	if o.ds == nil || o.cm == nil || o.sa == nil {
		t.Fatalf("rendered %v, want a DaemonSet, a ConfigMap and a ServiceAccount", o.all)
	}
	return o
}

// helm lint finds nothing above INFO, with the default values.
func TestChartLints(t *testing.T) {
	l := lint.All(chartDir, nil, "kube-system", false)
	for _, m := range l.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

// The DaemonSet of the default values: the host PID namespace, CAP_BPF and
// CAP_PERFMON only, not privileged, the host's bpffs, tracefs and BTF, the
// rules from the ConfigMap, probes on the metrics port, and the pinned run.
func TestChartRendersTheDaemonSet(t *testing.T) {
	files, err := render(load(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	spec := o.ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID is false: loader pids would be the pod's")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil {
		t.Fatalf("securityContext %+v: want privileged: false with explicit capabilities", sc)
	}
	if add := sc.Capabilities.Add; !slices.Equal(add, []corev1.Capability{"BPF", "PERFMON"}) {
		t.Errorf("capabilities added %v, want exactly BPF and PERFMON", add)
	}
	if drop := sc.Capabilities.Drop; !slices.Equal(drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities dropped %v, want ALL", drop)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	for path, ro := range map[string]bool{"/sys/fs/bpf": false, "/sys/kernel/tracing": false, "/sys/kernel/btf": true} {
		m, ok := mounts[path]
		if !ok || hostPaths[m.Name] != path || m.ReadOnly != ro {
			t.Errorf("%s: mount %+v from host %q, want the host's %s (readOnly %v)", path, m, hostPaths[m.Name], path, ro)
		}
	}
	if len(hostPaths) != 3 {
		t.Errorf("host paths %v: want only bpffs, tracefs and BTF", hostPaths)
	}
	rulesMount := mounts["/etc/ebpf-sentry/rules"]
	var fromCM bool
	for _, v := range spec.Volumes {
		if v.Name == rulesMount.Name && v.ConfigMap != nil && v.ConfigMap.Name == o.cm.Name {
			fromCM = true
		}
	}
	if !fromCM {
		t.Errorf("/etc/ebpf-sentry/rules is not the rules ConfigMap %s", o.cm.Name)
	}
	for _, want := range []string{"run", "--pin", "--rules=/etc/ebpf-sentry/rules", "--mode=enforce", "--metrics-addr=:9464"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--output") }) {
		t.Errorf("args %q: no NATS url given, yet an --output", c.Args)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/metrics" || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe %+v: want GET /metrics on the metrics port", name, p)
		}
	}
	if c.Image != "ghcr.io/ebpf-sentry/ebpf-sentry:0.1.0" {
		t.Errorf("image %q: want the appVersion tag by default", c.Image)
	}
	if o.sa.AutomountServiceAccountToken == nil || *o.sa.AutomountServiceAccountToken {
		t.Error("the service account mounts an API token the agent does not use")
	}
}

// With no rule files in the values, the ConfigMap holds the chart's copy of
// the default rules, which must stay identical to rules/defaults and load.
func TestChartDefaultRulesAreTheAgentDefaults(t *testing.T) {
	files, err := render(load(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cm := decode(t, files).cm
	want, err := filepath.Glob(filepath.Join(agent.RootDir(), "rules/defaults/*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no default rules: %v", err)
	}
	if len(cm.Data) != len(want) {
		t.Errorf("ConfigMap has %d files, rules/defaults %d", len(cm.Data), len(want))
	}
	dir := t.TempDir()
	for _, p := range want {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cm.Data[filepath.Base(p)]
		if !ok || !bytes.Equal(bytes.TrimSpace([]byte(got)), bytes.TrimSpace(b)) {
			t.Errorf("ConfigMap %s differs from rules/defaults (copy it into %s/files/rules)", filepath.Base(p), chartDir)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rules.Load(dir); err != nil {
		t.Errorf("the ConfigMap's rules do not load: %v", err)
	}
}

// Documented values: the NATS url becomes --output, monitor mode, own
// rules, a custom image.
func TestChartRendersDocumentedValues(t *testing.T) {
	vals := map[string]any{
		"image": map[string]any{"repository": "registry.example/sentry", "tag": "1.2.3"},
		"mode":  "monitor",
		"nats":  map[string]any{"url": "nats://nats.nats.svc:4222"},
		"rules": map[string]any{"files": map[string]any{"local.yaml": "- id: local\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n"}},
	}
	files, err := render(load(t), vals)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	c := o.ds.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--output=nats://nats.nats.svc:4222", "--mode=monitor"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	if c.Image != "registry.example/sentry:1.2.3" {
		t.Errorf("image %q", c.Image)
	}
	if _, ok := o.cm.Data["local.yaml"]; !ok || len(o.cm.Data) != 1 {
		t.Errorf("ConfigMap data keys %v, want only local.yaml", keys(o.cm.Data))
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// A broken value is refused before anything renders, with an error that
// names the value.
func TestChartRefusesBrokenValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"an image tag that is a number, not a string", map[string]any{"image": map[string]any{"repository": "r", "tag": 1.5}}, "tag"},
		{"an empty image repository", map[string]any{"image": map[string]any{"repository": ""}}, "repository"},
		{"a mode the agent does not have", map[string]any{"mode": "block"}, "mode"},
		{"a NATS url of another scheme", map[string]any{"nats": map[string]any{"url": "http://nats:4222"}}, "url"},
		{"a misspelt top-level value", map[string]any{"mdoe": "monitor"}, "mdoe"},
		{"a metrics port out of range", map[string]any{"metrics": map[string]any{"port": 70000}}, "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(load(t), tc.vals)
			if err == nil {
				t.Fatal("rendered without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name %q: %v", tc.want, err)
			}
			t.Logf("%v", err)
		})
	}
}
