#!/usr/bin/env bash
# Installs what building, regenerating and testing ebpf-sentry needs on Debian.
# Idempotent and quick when everything is already there.
set -euo pipefail
pkgs=(clang-19 llvm-19 libbpf-dev bpftool rsyslog qemu-system-x86 make tcpdump time)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
