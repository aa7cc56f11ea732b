#!/bin/sh
# A real full disk: runs a lesson once into a small private tmpfs, fills the tmpfs, runs it again, and
# reports what the second run did. Run as root inside `unshare -m`, so the mount is seen by nobody else
# and disappears with the process.
# usage: unshare -m sh full_disk.sh MOUNT_POINT BINARY "FIRST RUN ARGS" "SECOND RUN ARGS"
# Prints: exit=N, then "files: same" or "files: changed", then tmp=N (temporary files left), then the
# second run's stderr after a line "stderr:". Exit status 77 when the tmpfs cannot be mounted.
set -u
mnt=$1 binary=$2 first=$3 second=$4
mount -t tmpfs -o size=16m tmpfs "$mnt" || exit 77
out="$mnt/out"
# shellcheck disable=SC2086  # the argument strings are split on purpose
"$binary" --out-dir "$out" $first > /dev/null 2> "$mnt/first.err" || { echo "first run failed:"; cat "$mnt/first.err"; exit 3; }
before=$(cd "$out" && find . -type f | sort | xargs sha256sum)
dd if=/dev/zero of="$mnt/filler" bs=4096 > /dev/null 2>&1
# stderr goes to a file outside the full tmpfs.
err=$(mktemp)
# shellcheck disable=SC2086
"$binary" --out-dir "$out" $second > /dev/null 2> "$err"
echo "exit=$?"
after=$(cd "$out" && find . -type f | sort | xargs sha256sum)
[ "$before" = "$after" ] && echo "files: same" || echo "files: changed"
echo "tmp=$(find "$out" -name '.*.tmp-*' | wc -l)"
echo "stderr:"
cat "$err"
rm -f "$err"
