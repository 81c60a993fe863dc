#!/bin/sh
# ebpf-sentry postrm: on removal the pinned kernel side would keep
# enforcing the rules of an uninstalled agent: unpin it. Purge forgets the
# unit's enablement state too.
set -e
unit=ebpf-sentry.service
case "$1" in
remove)
	rm -rf /sys/fs/bpf/ebpf-sentry
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
	fi
	if [ -x /usr/bin/deb-systemd-helper ]; then
		deb-systemd-helper mask "$unit" >/dev/null || true
	fi
	;;
purge)
	if [ -x /usr/bin/deb-systemd-helper ]; then
		deb-systemd-helper purge "$unit" >/dev/null || true
		deb-systemd-helper unmask "$unit" >/dev/null || true
	fi
	rm -rf /var/lib/ebpf-sentry /var/log/ebpf-sentry
	;;
esac
exit 0
