#!/usr/bin/env bash
# Runs a command on the suite in a bare Debian root (debootstrap, minbase) of another release, as a
# learner's fresh machine would: a copy of this working tree, the packages scripts/install-deps.sh
# installs, nothing from this machine. Needs root (chroot, mounts).
#   scripts/debian-root.sh trixie 'scripts/build.sh && cd build && ctest'
# The bare root is cached as a tarball, and so is the root with the packages installed (keyed by
# the packages of install-deps.sh's test set), under $MP_ROOT_CACHE (default /var/cache/modelos-personalizados): the first run takes
# minutes, the next ones seconds before the command starts. The text files of the root's build-matrix/
# (tables, logs, test reports; no object files) are copied back into this tree's build-matrix/.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:?usage: scripts/debian-root.sh SUITE COMMAND}
command=${2:?usage: scripts/debian-root.sh SUITE COMMAND}
[ "$(id -u)" -eq 0 ] || { echo "error: a Debian root needs root (chroot and mounts); run as root" >&2; exit 2; }
cache=${MP_ROOT_CACHE:-/var/cache/modelos-personalizados}
mkdir -p "$cache"
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

root=${MP_ROOT_DIR:-/var/tmp/modelos-personalizados-root-$suite}
cleanup() { for m in dev/pts dev sys proc; do umount -l "$root/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup
rm -rf "$root"
mkdir -p "$root"

bare=$cache/$suite-minbase.tar
# Keyed by the packages the root gets (the test set), so that a change elsewhere in the script keeps the cache.
deps_key=$(scripts/install-deps.sh --list test | sort -u | sha256sum | cut -c1-12)
with_deps=$cache/$suite-deps-$deps_key.tar
if [ -f "$with_deps" ]; then
  tar -C "$root" -xf "$with_deps"
else
  if [ ! -f "$bare" ]; then
    echo "debian-root: debootstrap $suite (once; cached in $bare)"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" > "$cache/debootstrap-$suite.log" 2>&1 ||
      { echo "error: debootstrap failed, see $cache/debootstrap-$suite.log" >&2; exit 2; }
    tar -C "$root" -cf "$bare" .
  else
    tar -C "$root" -xf "$bare"
  fi
fi
# The root reaches the network as this machine does: its resolver, and the certificate authorities it
# trusts (a proxy's own, for pip's HTTPS to PyPI; PIP_CERT and the like name this file).
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"

# The working tree as git sees it (tracked and untracked, not ignored): what a clone would hold.
mkdir -p "$root/root/project"
git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -C "$root/root/project" -xf -
if [ ! -f "$with_deps" ]; then
  echo "debian-root: installing the suite's packages in $suite (once; cached in $with_deps)"
  chroot "$root" bash -c 'cd /root/project && scripts/install-deps.sh' > "$cache/install-$suite.log" 2>&1 ||
    { echo "error: scripts/install-deps.sh failed in $suite, see $cache/install-$suite.log" >&2; exit 2; }
  cleanup
  (cd "$root" && tar --exclude=./root/project --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -cf "$with_deps.part" . &&
    mv "$with_deps.part" "$with_deps")
  mount -t proc proc "$root/proc"; mount --rbind /sys "$root/sys"; mount --rbind /dev "$root/dev"
fi
rc=0
chroot "$root" bash -lc "cd /root/project && $command" < /dev/null || rc=$?
# Results come back without object files: the small text files of build-matrix/ (scripts/test-matrix.sh).
if [ -d "$root/root/project/build-matrix" ]; then
  mkdir -p build-matrix
  (cd "$root/root/project/build-matrix" && find . -maxdepth 2 -type f \( -name '*.txt' -o -name '*.xml' -o -name '*.log' \) \
    -print0 | tar --null -T - -cf -) | tar -C build-matrix -xf -
fi
exit "$rc"
