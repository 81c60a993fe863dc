#!/usr/bin/env bash
# Fetches a Debian kernel image for the VM kernel matrix (vmtest) and prints the
# path of its vmlinuz. Only vmlinuz is extracted: cloud kernels boot without
# modules. The machine's apt configuration is never touched: each Debian release
# gets a private apt state under the cache, so bullseye or trixie-backports can
# be read from a bookworm host.
#
#   scripts/kernels.sh LABEL RELEASE META-PACKAGE
#   scripts/kernels.sh 6.1 bookworm linux-image-cloud-amd64
#
# RELEASE is bullseye, bookworm, bookworm-backports, trixie or trixie-backports.
# Old kernel versions disappear from Debian, so a kernel is named through a
# meta-package and its dependencies are followed to the package holding the
# image. A fetched kernel is reused for VMTEST_KERNEL_MAX_AGE_DAYS (default 7)
# days, after which the meta-package is resolved again.
set -euo pipefail

if (($# != 3)); then
	echo "usage: $0 LABEL RELEASE META-PACKAGE" >&2
	exit 2
fi
label=$1 release=$2 meta=$3
default_cache=/var/cache
[[ $(id -u) != 0 ]] && default_cache=$HOME/.cache
cache=${VMTEST_CACHE:-${XDG_CACHE_HOME:-$default_cache}/ebpf-sentry-vmtest}
max_age=${VMTEST_KERNEL_MAX_AGE_DAYS:-7}
out=$cache/kernels/$label
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

case $label in
*/* | .* | '') echo "kernels: bad label '$label'" >&2; exit 2 ;;
esac

if [[ -s $out/vmlinuz && -n $(find "$out/vmlinuz" -mtime "-$max_age" 2>/dev/null) ]]; then
	echo "$out/vmlinuz"
	exit 0
fi

# An expired kernel is still better than none when Debian cannot be reached:
# use it with a warning instead of failing the run.
stale() {
	if [[ -s $out/vmlinuz ]]; then
		echo "kernels: could not refresh $label; using the cached $(tr '\n' ' ' <"$out/package" 2>/dev/null)" >&2
		echo "$out/vmlinuz"
		exit 0
	fi
	exit 1
}

base=${release%-backports}
case $base in
bullseye | bookworm | trixie) ;;
*) echo "kernels: unknown release '$release' (want bullseye, bookworm, trixie, optionally -backports)" >&2; exit 2 ;;
esac

# One apt state per release: its main suite, security and updates, plus
# backports when asked for (backports are only used when named explicitly).
state=$cache/apt/$release
mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/etc/preferences.d" "$state/etc/sources.list.d"
: >"$state/status"
{
	echo "deb [signed-by=$keyring] $mirror $base main"
	echo "deb [signed-by=$keyring] $mirror $base-updates main"
	echo "deb [signed-by=$keyring] $security $base-security main"
	# Archived releases (bullseye) no longer have backports: ask only when needed.
	[[ $release == *-backports ]] && echo "deb [signed-by=$keyring] $mirror $base-backports main"
} >"$state/sources.list.new"
# A changed source list (backports added) invalidates the once-a-day list cache.
if ! cmp -s "$state/sources.list.new" "$state/sources.list"; then
	rm -f "$state/lists/"*Packages*
fi
mv "$state/sources.list.new" "$state/sources.list"
apt_opts=(
	-o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=$state/status"
	-o "Dir::Cache=$state" -o "Dir::Cache::archives=$state/archives"
	-o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=$state/etc/sources.list.d"
	-o "Dir::Etc::Preferences=$state/etc/preferences" -o "Dir::Etc::PreferencesParts=$state/etc/preferences.d"
	-o "APT::Architecture=amd64" -o "APT::Architectures=amd64" -o "Debug::NoLocking=1"
	-o "Acquire::Languages=none" -o "APT::Sandbox::User=root" -o "APT::Get::List-Cleanup=0"
)
# Refresh the package lists at most once a day.
if [[ -z $(find "$state/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1) ]]; then
	echo "kernels: updating package lists for $base" >&2
	apt-get "${apt_opts[@]}" -qq update >&2 || stale
fi

work=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Fetch the newest version of a package that can actually be downloaded: an
# index can name a file the mirror no longer has (seen with bullseye-security).
download() {
	local v
	for v in $(apt-cache "${apt_opts[@]}" madison "$1" | awk '{print $3}'); do
		echo "kernels: downloading $1 $v" >&2
		apt-get "${apt_opts[@]}" -qq download "$1=$v" >&2 && return 0
	done
	echo "kernels: no downloadable version of $1 in $release" >&2
	return 1
}

# Follow the dependency chain meta → linux-image-<ver> → (trixie+) linux-binary-<ver>
# until a package holds a vmlinuz.
pkg=$meta
for _ in 1 2 3 4; do
	download "$pkg" || stale
	deb=$(ls -t ./*.deb | head -1)
	image=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -E '^\./(boot/vmlinuz-|usr/lib/modules/[^/]+/vmlinuz$)' | head -1 || true)
	if [[ -n $image ]]; then
		mkdir -p "$out"
		dpkg-deb --fsys-tarfile "$deb" | tar -xO "$image" >"$out/vmlinuz.new"
		mv "$out/vmlinuz.new" "$out/vmlinuz"
		dpkg-deb -f "$deb" Package Version >"$out/package"
		echo "kernels: $label is $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >&2
		echo "$out/vmlinuz"
		exit 0
	fi
	# The next package is the first dependency that is a kernel image or binary.
	next=$(dpkg-deb -f "$deb" Depends | tr ',|' '\n\n' | sed -E 's/^ *//; s/ .*//' |
		grep -E '^linux-(image|binary)-[0-9]' | head -1 || true)
	if [[ -z $next ]]; then
		echo "kernels: $pkg has no vmlinuz and no kernel dependency" >&2
		exit 1
	fi
	pkg=$next
	rm -f ./*.deb
done
echo "kernels: no vmlinuz found below $meta after 4 packages" >&2
exit 1
