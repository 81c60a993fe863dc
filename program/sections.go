package program

import (
	"sort"
	"strings"
)

// secType is what a section name tells the loader about its programs.
type secType struct {
	progType, attachType, flags uint32
	attachTo                    string
}

const (
	flagSleepable = 1 << 4 // BPF_F_SLEEPABLE
	flagXDPFrags  = 1 << 5 // BPF_F_XDP_HAS_FRAGS
)

// secDefs maps a section name (exact, or followed by "/target") to program
// type, expected attach type and flags, as libbpf names them; written from
// libbpf's documented section names.
var secDefs = []struct {
	name, prog, attach string
	flags              uint32
	target             bool // the part after "/" is the attach target
}{
	{"socket", "socket_filter", "", 0, false},
	{"sk_reuseport/migrate", "sk_reuseport", "sk_reuseport_select_or_migrate", 0, false},
	{"sk_reuseport", "sk_reuseport", "sk_reuseport_select", 0, false},
	{"kprobe", "kprobe", "", 0, true},
	{"kretprobe", "kprobe", "", 0, true},
	{"uprobe", "kprobe", "", 0, true},
	{"uretprobe", "kprobe", "", 0, true},
	{"uprobe.s", "kprobe", "", flagSleepable, true},
	{"uretprobe.s", "kprobe", "", flagSleepable, true},
	{"kprobe.multi", "kprobe", "trace_kprobe_multi", 0, true},
	{"kretprobe.multi", "kprobe", "trace_kprobe_multi", 0, true},
	{"kprobe.session", "kprobe", "trace_kprobe_session", 0, true},
	{"uprobe.multi", "kprobe", "trace_uprobe_multi", 0, true},
	{"uretprobe.multi", "kprobe", "trace_uprobe_multi", 0, true},
	{"uprobe.multi.s", "kprobe", "trace_uprobe_multi", flagSleepable, true},
	{"uretprobe.multi.s", "kprobe", "trace_uprobe_multi", flagSleepable, true},
	{"ksyscall", "kprobe", "", 0, true},
	{"kretsyscall", "kprobe", "", 0, true},
	{"usdt", "kprobe", "", 0, true},
	{"usdt.s", "kprobe", "", flagSleepable, true},
	{"tc/ingress", "sched_cls", "tcx_ingress", 0, false},
	{"tc/egress", "sched_cls", "tcx_egress", 0, false},
	{"tcx/ingress", "sched_cls", "tcx_ingress", 0, false},
	{"tcx/egress", "sched_cls", "tcx_egress", 0, false},
	{"netkit/primary", "sched_cls", "netkit_primary", 0, false},
	{"netkit/peer", "sched_cls", "netkit_peer", 0, false},
	{"tc", "sched_cls", "", 0, false},
	{"classifier", "sched_cls", "", 0, false},
	{"action", "sched_act", "", 0, false},
	{"tracepoint", "tracepoint", "", 0, true},
	{"tp", "tracepoint", "", 0, true},
	{"raw_tracepoint", "raw_tracepoint", "", 0, true},
	{"raw_tp", "raw_tracepoint", "", 0, true},
	{"raw_tracepoint.w", "raw_tracepoint_writable", "", 0, true},
	{"raw_tp.w", "raw_tracepoint_writable", "", 0, true},
	{"tp_btf", "tracing", "trace_raw_tp", 0, true},
	{"fentry", "tracing", "trace_fentry", 0, true},
	{"fmod_ret", "tracing", "modify_return", 0, true},
	{"fexit", "tracing", "trace_fexit", 0, true},
	{"fentry.s", "tracing", "trace_fentry", flagSleepable, true},
	{"fmod_ret.s", "tracing", "modify_return", flagSleepable, true},
	{"fexit.s", "tracing", "trace_fexit", flagSleepable, true},
	{"freplace", "ext", "", 0, true},
	{"lsm", "lsm", "lsm_mac", 0, true},
	{"lsm.s", "lsm", "lsm_mac", flagSleepable, true},
	{"lsm_cgroup", "lsm", "lsm_cgroup", 0, true},
	{"iter", "tracing", "trace_iter", 0, true},
	{"iter.s", "tracing", "trace_iter", flagSleepable, true},
	{"syscall", "syscall", "", flagSleepable, false},
	{"xdp.frags/devmap", "xdp", "xdp_devmap", flagXDPFrags, false},
	{"xdp/devmap", "xdp", "xdp_devmap", 0, false},
	{"xdp.frags/cpumap", "xdp", "xdp_cpumap", flagXDPFrags, false},
	{"xdp/cpumap", "xdp", "xdp_cpumap", 0, false},
	{"xdp.frags", "xdp", "xdp", flagXDPFrags, false},
	{"xdp", "xdp", "xdp", 0, false},
	{"perf_event", "perf_event", "", 0, false},
	{"lwt_in", "lwt_in", "", 0, false},
	{"lwt_out", "lwt_out", "", 0, false},
	{"lwt_xmit", "lwt_xmit", "", 0, false},
	{"lwt_seg6local", "lwt_seg6local", "", 0, false},
	{"sockops", "sock_ops", "cgroup_sock_ops", 0, false},
	{"sk_skb/stream_parser", "sk_skb", "sk_skb_stream_parser", 0, false},
	{"sk_skb/stream_verdict", "sk_skb", "sk_skb_stream_verdict", 0, false},
	{"sk_skb/verdict", "sk_skb", "sk_skb_verdict", 0, false},
	{"sk_skb", "sk_skb", "", 0, false},
	{"sk_msg", "sk_msg", "sk_msg_verdict", 0, false},
	{"lirc_mode2", "lirc_mode2", "lirc_mode2", 0, false},
	{"flow_dissector", "flow_dissector", "flow_dissector", 0, false},
	{"cgroup_skb/ingress", "cgroup_skb", "cgroup_inet_ingress", 0, false},
	{"cgroup_skb/egress", "cgroup_skb", "cgroup_inet_egress", 0, false},
	{"cgroup/skb", "cgroup_skb", "", 0, false},
	{"cgroup/sock_create", "cgroup_sock", "cgroup_inet_sock_create", 0, false},
	{"cgroup/sock_release", "cgroup_sock", "cgroup_inet_sock_release", 0, false},
	{"cgroup/sock", "cgroup_sock", "cgroup_inet_sock_create", 0, false},
	{"cgroup/post_bind4", "cgroup_sock", "cgroup_inet4_post_bind", 0, false},
	{"cgroup/post_bind6", "cgroup_sock", "cgroup_inet6_post_bind", 0, false},
	{"cgroup/bind4", "cgroup_sock_addr", "cgroup_inet4_bind", 0, false},
	{"cgroup/bind6", "cgroup_sock_addr", "cgroup_inet6_bind", 0, false},
	{"cgroup/connect4", "cgroup_sock_addr", "cgroup_inet4_connect", 0, false},
	{"cgroup/connect6", "cgroup_sock_addr", "cgroup_inet6_connect", 0, false},
	{"cgroup/connect_unix", "cgroup_sock_addr", "cgroup_unix_connect", 0, false},
	{"cgroup/sendmsg4", "cgroup_sock_addr", "cgroup_udp4_sendmsg", 0, false},
	{"cgroup/sendmsg6", "cgroup_sock_addr", "cgroup_udp6_sendmsg", 0, false},
	{"cgroup/sendmsg_unix", "cgroup_sock_addr", "cgroup_unix_sendmsg", 0, false},
	{"cgroup/recvmsg4", "cgroup_sock_addr", "cgroup_udp4_recvmsg", 0, false},
	{"cgroup/recvmsg6", "cgroup_sock_addr", "cgroup_udp6_recvmsg", 0, false},
	{"cgroup/recvmsg_unix", "cgroup_sock_addr", "cgroup_unix_recvmsg", 0, false},
	{"cgroup/getpeername4", "cgroup_sock_addr", "cgroup_inet4_getpeername", 0, false},
	{"cgroup/getpeername6", "cgroup_sock_addr", "cgroup_inet6_getpeername", 0, false},
	{"cgroup/getpeername_unix", "cgroup_sock_addr", "cgroup_unix_getpeername", 0, false},
	{"cgroup/getsockname4", "cgroup_sock_addr", "cgroup_inet4_getsockname", 0, false},
	{"cgroup/getsockname6", "cgroup_sock_addr", "cgroup_inet6_getsockname", 0, false},
	{"cgroup/getsockname_unix", "cgroup_sock_addr", "cgroup_unix_getsockname", 0, false},
	{"cgroup/sysctl", "cgroup_sysctl", "cgroup_sysctl", 0, false},
	{"cgroup/getsockopt", "cgroup_sockopt", "cgroup_getsockopt", 0, false},
	{"cgroup/setsockopt", "cgroup_sockopt", "cgroup_setsockopt", 0, false},
	{"cgroup/dev", "cgroup_device", "cgroup_device", 0, false},
	{"struct_ops", "struct_ops", "", 0, false},
	{"struct_ops.s", "struct_ops", "", flagSleepable, false},
	{"sk_lookup", "sk_lookup", "sk_lookup", 0, false},
	{"netfilter", "netfilter", "netfilter", 0, false},
}

func init() {
	// Longest name first, so "kprobe.multi" wins over "kprobe".
	sort.SliceStable(secDefs, func(i, j int) bool { return len(secDefs[i].name) > len(secDefs[j].name) })
}

// sectionType returns what section name says about its programs, and false
// for a name no loader knows.
func sectionType(section string) (secType, bool) {
	for _, d := range secDefs {
		rest, ok := strings.CutPrefix(section, d.name)
		if !ok || rest != "" && rest[0] != '/' {
			continue
		}
		st := secType{flags: d.flags}
		st.progType, _ = ProgTypes.Value(d.prog)
		if d.attach != "" {
			st.attachType, _ = AttachTypes.Value(d.attach)
		}
		if d.target && rest != "" {
			st.attachTo = rest[1:]
		}
		return st, true
	}
	return secType{}, false
}
