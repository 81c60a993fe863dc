//go:build linux

package target

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// XDP set with `ip link` and a tc bpf filter added with `tc filter`
// (netlink, no bpf() attach) on a veth in a private network namespace are
// found by the netlink dump, with the namespace, the interface and the
// programs' ids; removing them removes them from the dump.
func TestNetlinkDumpFindsLegacyXDPAndTC(t *testing.T) {
	testutils.RequireRoot(t, "making a network namespace and attaching XDP/tc programs")
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("iproute2's %s: %v", tool, err)
		}
	}
	obj := testutils.Testdata("netcount.bpf.o")
	ns := fmt.Sprintf("sentry-attach2-nl-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+ns, &st); err != nil {
		t.Fatal(err)
	}
	ino := uint32(st.Ino)
	run("ip", "-n", ns, "link", "add", "nl0", "type", "veth", "peer", "name", "nl0p")
	run("ip", "-n", ns, "link", "set", "dev", "nl0", "xdpgeneric", "obj", obj, "sec", "xdp")
	run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "nl0", "clsact")
	run("ip", "netns", "exec", ns, "tc", "filter", "add", "dev", "nl0", "ingress", "bpf", "da", "obj", obj, "sec", "tc")

	find := func(all []NetlinkAttach) map[string]NetlinkAttach {
		got := map[string]NetlinkAttach{}
		for _, a := range all {
			if a.NetNS == ino {
				got[a.Hook] = a
			}
		}
		return got
	}
	all, err := NetlinkAttachments()
	if err != nil {
		t.Logf("dump errors (other namespaces): %v", err)
	}
	got := find(all)
	for hook, typ := range map[string]ebpf.ProgramType{"xdp": ebpf.XDP, "tc_ingress": ebpf.SchedCLS} {
		a, ok := got[hook]
		if !ok {
			t.Fatalf("no %s attachment in netns %d: %+v", hook, ino, all)
		}
		if a.Interface != "nl0" || a.ProgID == 0 {
			t.Errorf("%s: %+v, want nl0 with a program id", hook, a)
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(a.ProgID))
		if err != nil {
			t.Fatalf("%s: prog %d: %v", hook, a.ProgID, err)
		}
		info, err := p.Info()
		p.Close()
		if err != nil || info.Type != typ {
			t.Errorf("%s: prog %d is %v (%v), want %v", hook, a.ProgID, info.Type, err, typ)
		}
	}
	if _, ok := got["tc_egress"]; ok {
		t.Errorf("a tc_egress filter that was never added: %+v", got["tc_egress"])
	}
	run("ip", "-n", ns, "link", "set", "dev", "nl0", "xdpgeneric", "off")
	run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "nl0", "clsact")
	all, _ = NetlinkAttachments()
	if got := find(all); len(got) != 0 {
		t.Errorf("after removal the dump still lists %+v", got)
	}
}

// Interfaces lists each namespace's interfaces from inside it: two
// namespaces with an interface of the same name and index are two
// entries, told apart by namespace inode (what the attach table keys by).
func TestInterfacesAreListedPerNetworkNamespace(t *testing.T) {
	testutils.RequireRoot(t, "making network namespaces")
	a, b := testutils.NewNetns(t, "sentry-attach3-if"), testutils.NewNetns(t, "sentry-attach3-if")
	a.AddVeth(t, "sentry3", 9)
	b.AddVeth(t, "sentry3", 9)
	ifs, err := Interfaces()
	if err != nil {
		t.Logf("some namespaces not listed: %v", err) // other tests' namespaces may vanish meanwhile
	}
	found := map[uint32]bool{}
	for _, ifc := range ifs {
		if ifc.Name == "sentry3" && ifc.Ifindex == 9 {
			found[ifc.NetNS] = true
		}
	}
	if !found[a.Ino] || !found[b.Ino] || len(found) != 2 {
		t.Errorf("sentry3 (ifindex 9) listed in namespaces %v, want exactly %d and %d", found, a.Ino, b.Ino)
	}
}
