#!/usr/bin/env bash
# Postern's two set-up commands (CONTRACT.md), for a fresh Debian 12 machine:
#   ./postern.sh demo [DIR]     install, build, run the demo server in the foreground
#   ./postern.sh test [--sanitize] [PYTEST ARGS...]
#                               install, build, run every test; the last line is
#                               pytest's summary. --sanitize builds and tests with
#                               AddressSanitizer + UndefinedBehaviorSanitizer.
# Other helpers: ./postern.sh build | deps | fuzz [SECONDS]
#                ./postern.sh deb     build the Debian package (../postern_VERSION_ARCH.deb)
set -euo pipefail
cd "$(dirname "$0")"

BUILD_PACKAGES=(
	build-essential meson ninja-build pkg-config openssl
	libevent-dev libssl-dev liblmdb-dev lmdb-utils libsasl2-dev libsasl2-modules
	libinih-dev libcrypt-dev libidn2-dev libunbound-dev zlib1g-dev
	libcurl4-openssl-dev dns-root-data libsystemd-dev scdoc libseccomp-dev
)
TEST_PACKAGES=(
	python3 python3-pytest python3-pytest-xdist clang
	swaks libnet-ssleay-perl msmtp curl isync offlineimap3 fetchmail getmail6
	python3-aiosmtpd python3-dnslib prometheus
	python3-dkim opendkim-tools iproute2 nsd ldnsutils
	libclang-rt-14-dev procps git systemd strace mandoc
	debhelper dpkg-dev adduser
	testssl.sh python3-cryptography
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

install_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "postern.sh: installing ${missing[*]}" >&2
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@"
	fi
	ninja -C "$dir"
}

# The demo runs as the unprivileged user `postern` when started as root.
ensure_service_user() {
	if [ "$(id -u)" -eq 0 ] && ! getent passwd postern >/dev/null; then
		adduser --system --group --no-create-home --home /nonexistent postern >/dev/null ||
			useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postern
	fi
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
deps)
	install_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	;;
build)
	install_packages "${BUILD_PACKAGES[@]}"
	build build
	;;
demo)
	install_packages "${BUILD_PACKAGES[@]}"
	build build
	ensure_service_user
	exec build/postern serve --demo "$@"
	;;
test)
	install_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	builddir=build
	if [ "${1:-}" = "--sanitize" ]; then
		shift
		builddir=build-sanitize
		build "$builddir" -Dsanitize=true -Db_lundef=false
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	else
		build "$builddir"
	fi
	meson test -C "$builddir" --print-errorlogs --suite unit
	# the fuzz targets must keep building; each replays its seed corpus
	CC=clang build build-fuzz -Dfuzz=true
	for target in build-fuzz/tests/fuzz/fuzz-*; do
		[ -f "$target" ] && [ -x "$target" ] || continue
		name=${target##*/fuzz-}
		mkdir -p "tests/fuzz/corpus/$name"
		"$target" -runs=0 "tests/fuzz/corpus/$name" 2>&1 | tail -1
	done
	export POSTERN_BIN="$PWD/$builddir/postern"
	# one test process per core: most of a test's time is spent waiting
	exec /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider \
		-n "$(nproc)" --dist loadgroup "$@"
	;;
deb)
	install_packages "${BUILD_PACKAGES[@]}" debhelper dpkg-dev
	DEB_BUILD_OPTIONS="nocheck noautodbgsym ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b
	ls -1 "$(cd .. && pwd)"/postern_*.deb
	;;
fuzz)
	install_packages "${BUILD_PACKAGES[@]}" clang
	seconds=${1:-60}
	CC=clang build build-fuzz -Dfuzz=true
	exec tests/fuzz/run "$seconds"
	;;
*)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	[ "$cmd" = help ] || exit 2
	;;
esac
