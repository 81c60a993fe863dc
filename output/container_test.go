package output

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
)

const (
	cid  = "3f5c2a8b9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809112"
	pod  = "8d6e2f5b-7a1c-4e3d-9b2a-1c0d9e8f7a6b"
	podU = "8d6e2f5b_7a1c_4e3d_9b2a_1c0d9e8f7a6b"
)

func TestContainerFromCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		want       *Container
	}{
		{"a process on the host has no container", "/user.slice/user-1000.slice/session-3.scope", nil},
		{"a system service has no container", "/system.slice/ssh.service", nil},
		{"the root cgroup has no container", "/", nil},
		{"docker with the systemd driver", "/system.slice/docker-" + cid + ".scope",
			&Container{ID: cid, Runtime: "docker"}},
		{"docker with the cgroupfs driver", "/docker/" + cid,
			&Container{ID: cid, Runtime: "docker"}},
		{"a burstable pod under containerd, systemd driver",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podU + ".slice/cri-containerd-" + cid + ".scope",
			&Container{ID: cid, Runtime: "containerd", PodUID: pod, QoS: "burstable"}},
		{"a besteffort pod under CRI-O, systemd driver",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podU + ".slice/crio-" + cid + ".scope",
			&Container{ID: cid, Runtime: "cri-o", PodUID: pod, QoS: "besteffort"}},
		{"a guaranteed pod, systemd driver",
			"/kubepods.slice/kubepods-pod" + podU + ".slice/cri-containerd-" + cid + ".scope",
			&Container{ID: cid, Runtime: "containerd", PodUID: pod, QoS: "guaranteed"}},
		{"a burstable pod, cgroupfs driver (runtime not in the path)",
			"/kubepods/burstable/pod" + pod + "/" + cid,
			&Container{ID: cid, PodUID: pod, QoS: "burstable"}},
		{"a guaranteed pod, cgroupfs driver",
			"/kubepods/pod" + pod + "/" + cid,
			&Container{ID: cid, PodUID: pod, QoS: "guaranteed"}},
		{"CRI-O's conmon scope is not the container",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podU + ".slice/crio-conmon-" + cid + ".scope", nil},
		{"rootful podman", "/machine.slice/libpod-" + cid + ".scope",
			&Container{ID: cid, Runtime: "podman"}},
		{"rootless podman inside the user's manager",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope",
			&Container{ID: cid, Runtime: "podman"}},
		{"a process nested below a podman container's cgroup",
			"/machine.slice/libpod-" + cid + ".scope/container",
			&Container{ID: cid, Runtime: "podman"}},
		{"podman with the cgroupfs driver", "/libpod_parent/libpod-" + cid,
			&Container{ID: cid, Runtime: "podman"}},
		{"containerd's default namespace (ctr, nerdctl), cgroupfs driver", "/default/" + cid,
			&Container{ID: cid, Runtime: "containerd", Namespace: "default"}},
		{"containerd's k8s.io namespace without kubepods", "/k8s.io/" + cid,
			&Container{ID: cid, Runtime: "containerd", Namespace: "k8s.io"}},
		{"an id that is not 64 hex digits is not a container", "/docker/" + cid[:63] + "g", nil},
		{"a pod UID of the wrong shape is dropped, the container kept",
			"/kubepods/burstable/podnot-a-uid/" + cid,
			&Container{ID: cid, QoS: "burstable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ContainerFromCgroup(tc.path); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ContainerFromCgroup(%q)\n got  %+v\n want %+v", tc.path, got, tc.want)
			}
		})
	}
}

// A prog_load from a pod's container carries the container and pod in its
// loader section, and in ECS's container.* and orchestrator.*.
func TestProgLoadCarriesTheLoadersContainer(t *testing.T) {
	path := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podU + ".slice/cri-containerd-" + cid + ".scope"
	ev := NewProgLoad(ProgLoad{Program: sampleProgram(4), Cgroup: path}, InsnOptions{})
	want := &Container{ID: cid, Runtime: "containerd", PodUID: pod, QoS: "burstable"}
	if ev.Loader == nil || ev.Loader.Cgroup != path || !reflect.DeepEqual(ev.Loader.Container, want) {
		t.Fatalf("loader %+v, want cgroup %q and container %+v", ev.Loader, path, want)
	}
	e := ToECS(ev)
	if e.Container == nil || e.Container.ID != cid || e.Container.Runtime != "containerd" {
		t.Errorf("ECS container %+v", e.Container)
	}
	if e.Orchestrator == nil || e.Orchestrator.Resource.ID != pod || e.Orchestrator.Resource.Type != "pod" {
		t.Errorf("ECS orchestrator %+v", e.Orchestrator)
	}
	if ev := NewProgLoad(ProgLoad{Program: sampleProgram(4), Cgroup: "/system.slice/ssh.service"}, InsnOptions{}); ev.Loader.Container != nil {
		t.Errorf("a host service got a container: %+v", ev.Loader.Container)
	}
}

// Whatever the path, the result names a 64-hex id and a UID-shaped pod, and
// the namespace carries no control characters (it is escaped).
func FuzzContainerFromCgroup(f *testing.F) {
	f.Add("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podU + ".slice/cri-containerd-" + cid + ".scope")
	f.Add("/kubepods/pod" + pod + "/" + cid)
	f.Add("/ns\x1b/" + cid)
	f.Add("/machine.slice/libpod-conmon-" + cid + ".scope")
	f.Fuzz(func(t *testing.T, path string) {
		c := ContainerFromCgroup(path)
		if c == nil {
			return
		}
		if !isHexID(c.ID) || (c.PodUID != "" && podUID(c.PodUID) != c.PodUID) || strings.ContainsFunc(c.Namespace, unicode.IsControl) {
			t.Fatalf("%q: %+v", path, c)
		}
	})
}
