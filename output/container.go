package output

import (
	"strings"
)

// Container is what a loader's cgroup v2 path says about the container and
// the Kubernetes pod it runs in. The path is the kernel's (not the loader's
// say), but a process with CAP_SYS_ADMIN can move itself into any cgroup:
// these are attribution hints for operators, not identities rules trust.
type Container struct {
	ID        string `json:"id"`                  // the runtime's 64-hex container id
	Runtime   string `json:"runtime,omitempty"`   // docker | containerd | cri-o | podman, when the path names it
	PodUID    string `json:"pod_uid,omitempty"`   // Kubernetes pod UID (kubepods paths)
	QoS       string `json:"qos,omitempty"`       // guaranteed | burstable | besteffort (kubepods paths)
	Namespace string `json:"namespace,omitempty"` // containerd namespace, where the path carries it
}

// runtimePrefixes map a scope or directory name prefix to its runtime. The
// "-conmon-" scopes of cri-o and podman hold the monitor, not the container.
var runtimePrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", "containerd"},
	{"docker-", "docker"},
	{"crio-", "cri-o"},
	{"libpod-", "podman"},
	{"containerd-", "containerd"},
}

// ContainerFromCgroup reads container and pod metadata from a cgroup v2
// path (the loader's, as in /proc/PID/cgroup), for the layouts of Docker,
// containerd (plain and CRI), CRI-O and Podman under both cgroup drivers
// (cgroupfs: /kubepods/burstable/pod<uid>/<id>; systemd:
// /kubepods.slice/…/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope).
// It returns nil when the path shows no container.
func ContainerFromCgroup(path string) *Container {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var c Container
	kube := false
	for i, p := range parts {
		switch {
		case p == "kubepods" || p == "kubepods.slice":
			kube = true
		case kube && strings.HasPrefix(p, "pod") && c.PodUID == "":
			c.PodUID = podUID(strings.TrimPrefix(p, "pod"))
		case kube && strings.HasPrefix(p, "kubepods-"):
			// kubepods-burstable.slice, kubepods-burstable-pod<uid>.slice,
			// kubepods-pod<uid>.slice (guaranteed).
			rest := strings.TrimSuffix(strings.TrimPrefix(p, "kubepods-"), ".slice")
			if q, ok := strings.CutPrefix(rest, "burstable"); ok {
				c.QoS, rest = "burstable", strings.TrimPrefix(q, "-")
			} else if q, ok := strings.CutPrefix(rest, "besteffort"); ok {
				c.QoS, rest = "besteffort", strings.TrimPrefix(q, "-")
			}
			if u, ok := strings.CutPrefix(rest, "pod"); ok {
				c.PodUID = podUID(u)
			}
		case kube && (p == "burstable" || p == "besteffort") && c.PodUID == "":
			c.QoS = p
		default:
			id, runtime, ok := containerID(p)
			if !ok {
				continue
			}
			c.ID, c.Runtime = id, runtime
			// containerd with the cgroupfs driver: /<namespace>/<id>.
			if runtime == "" && !kube && i == 1 {
				switch parts[0] {
				case "docker":
					c.Runtime = "docker"
				case "libpod_parent":
					c.Runtime = "podman"
				case "system.slice", "machine.slice", "user.slice":
				default:
					c.Runtime, c.Namespace = "containerd", Escape(parts[0])
				}
			}
		}
	}
	if c.ID == "" {
		return nil
	}
	if kube && c.PodUID != "" && c.QoS == "" {
		c.QoS = "guaranteed" // guaranteed pods sit directly under kubepods
	}
	return &c
}

// containerID recognises a container's cgroup: a bare 64-hex id, or a
// runtime-prefixed scope (<runtime>-<id>.scope) or directory.
func containerID(name string) (id, runtime string, ok bool) {
	name = strings.TrimSuffix(name, ".scope")
	if isHexID(name) {
		return name, "", true
	}
	for _, rp := range runtimePrefixes {
		if rest, found := strings.CutPrefix(name, rp.prefix); found && isHexID(rest) {
			return rest, rp.runtime, true
		}
	}
	return "", "", false
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// podUID restores the dashes the systemd driver turns into underscores, and
// accepts only UID-shaped text (so a crafted name cannot inject text).
func podUID(s string) string {
	s = strings.ReplaceAll(s, "_", "-")
	if len(s) != 36 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case (c < '0' || c > '9') && (c < 'a' || c > 'f'):
			return ""
		}
	}
	return s
}
