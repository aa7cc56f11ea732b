#!/usr/bin/env bash
# The whole suite, lessons included, built with AddressSanitizer and UndefinedBehaviorSanitizer
# (CMakePresets.json: "sanitizers"), halting on the first report. LibTorch itself is not instrumented;
# tests/sanitizers/ holds the few exact suppressions it needs, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${MP_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
cmake --preset sanitizers >/dev/null
cmake --build build-sanitizers --parallel "${MP_JOBS:-$(nproc)}"
supp=$PWD/tests/sanitizers
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:suppressions=$supp/asan.supp"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
cd build-sanitizers
ctest --output-on-failure --parallel "${MP_JOBS:-$(nproc)}" "$@"
