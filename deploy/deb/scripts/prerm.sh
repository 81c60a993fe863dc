#!/bin/sh
# ebpf-sentry prerm: on removal stop the agent where systemd runs. On
# upgrade the agent keeps running; postinst restarts it on the new binary.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop ebpf-sentry.service >/dev/null || true
fi
exit 0
