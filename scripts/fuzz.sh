#!/usr/bin/env bash
# Fuzzes the state-dict reader with libFuzzer (clang, AddressSanitizer) for a bounded time.
#   scripts/fuzz.sh            60 seconds, as CI does
#   scripts/fuzz.sh 3600       an hour, by hand
# New interesting inputs go to build-fuzz/corpus (not committed); a crashing input is written to
# build-fuzz/crash-* and the script fails. Keep such an input in tests/fuzz/regressions/ once fixed:
# the test suite replays every file there and in tests/fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ "${MP_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
cmake --preset fuzz >/dev/null
cmake --build build-fuzz --target fuzz_load_state_dict --parallel "${MP_JOBS:-$(nproc)}"
mkdir -p build-fuzz/corpus
export ASAN_OPTIONS="detect_leaks=0:suppressions=$PWD/tests/sanitizers/asan.supp"
cd build-fuzz
rc=0
./bin/fuzz_load_state_dict -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
  -artifact_prefix="$PWD/" corpus ../tests/fuzz/corpus ../tests/fuzz/regressions > fuzz.log 2>&1 || rc=$?
grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY" fuzz.log || true
if [ "$rc" -ne 0 ]; then
  echo "error: the fuzzer stopped with status $rc (a crash, or it could not run); see build-fuzz/fuzz.log and build-fuzz/crash-*" >&2
  exit 1
fi
