package main

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rtnl"
)

// createNetkit makes a netkit pair (name and its kernel-named peer) in the
// thread's network namespace with one RTM_NEWLINK (iproute2 before 6.7
// cannot: it does not know the kind).
func createNetkit(name string) error {
	body := rtnl.IfInfo(0, 0, 0)
	body = append(body, rtnl.Attr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
	body = append(body, rtnl.Attr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, rtnl.Attr(unix.IFLA_INFO_KIND, []byte("netkit\x00")))...)
	if err := rtnl.NewLink(body, unix.NLM_F_CREATE|unix.NLM_F_EXCL); err != nil {
		return fmt.Errorf("netkit %s: %w", name, err)
	}
	return nil
}
