#!/bin/sh
# ebpf-sentry postinst: enable the unit (unless the admin disabled it) and,
# where systemd runs, start it or restart it on upgrade. The running pinned
# sensor keeps enforcing until the new one replaces its pins.
set -e
unit=ebpf-sentry.service
case "$1" in
configure | abort-upgrade | abort-deconfigure | abort-remove)
	if [ -x /usr/bin/deb-systemd-helper ]; then
		deb-systemd-helper unmask "$unit" >/dev/null || true
		# was-enabled is true for a new install: enable it then; on upgrade
		# keep whatever the admin chose.
		if deb-systemd-helper --quiet was-enabled "$unit"; then
			deb-systemd-helper enable "$unit" >/dev/null || true
		else
			deb-systemd-helper update-state "$unit" >/dev/null || true
		fi
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			deb-systemd-invoke try-restart "$unit" >/dev/null || true
			deb-systemd-invoke start "$unit" >/dev/null || true
		else
			deb-systemd-invoke start "$unit" >/dev/null || true
		fi
	fi
	;;
esac
exit 0
