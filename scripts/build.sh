#!/usr/bin/env bash
# Installs missing dependencies, then configures (once) and builds the whole suite, tests included, into
# build/. Extra arguments go to the configure step, e.g. -DMP_USE_PCH=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MP_SKIP_INSTALL:-0}" != 1 ]; then
  scripts/install-deps.sh
fi

build_dir=${MP_BUILD_DIR:-build}
cache=$build_dir/CMakeCache.txt
# A folder that scripts/tour.sh configured before GoogleTest was installed has no tests: configure it again.
if [ ! -f "$cache" ] || [ $# -gt 0 ] ||
   { grep -q '^MP_TESTS:STRING=AUTO$' "$cache" && grep -q '^MP_TESTS_BUILT:INTERNAL=OFF$' "$cache"; }; then
  generator=()
  if [ ! -f "$cache" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DMP_TESTS=ON "$@"
fi
# LibTorch translation units take about 1.5 GiB of memory each: one job per core is safe on 2 cores.
cmake --build "$build_dir" --parallel "${MP_JOBS:-$(nproc)}"
