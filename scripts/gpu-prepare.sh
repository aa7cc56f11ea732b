#!/usr/bin/env bash
# Run here, on a machine with the packages: gathers header-only copies of fmt, CLI11 and nlohmann/json and
# GoogleTest's source into .deps/ (git-ignored), for a machine that has LibTorch but no package registry.
# scripts/gpu-check.sh builds with them there.
set -euo pipefail
cd "$(dirname "$0")/.."
MP_SKIP_INSTALL=${MP_SKIP_INSTALL:-0}
[ "$MP_SKIP_INSTALL" = 1 ] || scripts/install-deps.sh

rm -rf .deps
mkdir -p .deps/include
cp -r /usr/include/fmt .deps/include/
cp -r /usr/include/CLI .deps/include/
cp -r /usr/include/nlohmann .deps/include/
cp -r /usr/src/googletest .deps/googletest
# Header-only fmt needs the implementation header beside format.h.
test -f .deps/include/fmt/format-inl.h || { echo "error: fmt/format-inl.h missing from libfmt-dev" >&2; exit 2; }
echo "gpu-prepare: .deps/ holds $(du -sh .deps | cut -f1) of carried dependencies"
