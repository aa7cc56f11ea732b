#!/usr/bin/env bash
# Fuzzes the weights readers with libFuzzer (clang, AddressSanitizer) for a bounded time, through three
# targets: fuzz_load_state_dict takes whole files (zip structure, CRCs, then the pickle), fuzz_pickle
# takes data.pkl alone and wraps it in a valid archive, so mutations reach the pickle machine, and
# fuzz_safetensors takes safetensors files (the header's JSON and the layout it describes).
#   scripts/fuzz.sh            60 seconds per target, as CI does
#   scripts/fuzz.sh 3600       an hour per target, by hand
# New interesting inputs go to build-fuzz/corpus-TARGET (not committed); a crashing input is written to
# build-fuzz/crash-* and the script fails. Keep such an input in tests/fuzz/regressions/ once fixed (a
# data.pkl as NAME.pkl): the test suite replays every file there and in the committed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ "${MP_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
cmake --preset fuzz >/dev/null
cmake --build build-fuzz --target fuzz_load_state_dict fuzz_pickle fuzz_safetensors weights_agree --parallel "${MP_JOBS:-$(nproc)}"
export ASAN_OPTIONS="detect_leaks=0:suppressions=$PWD/tests/sanitizers/asan.supp"
cd build-fuzz
status=0
for target in fuzz_load_state_dict fuzz_pickle fuzz_safetensors; do
  seeds=../tests/fuzz/corpus
  dict=../tests/fuzz/zip.dict
  if [ "$target" = fuzz_pickle ]; then
    seeds=../tests/fuzz/corpus_pickle
    dict=../tests/fuzz/pickle.dict
  elif [ "$target" = fuzz_safetensors ]; then
    seeds=../tests/fuzz/corpus_safetensors
    dict=../tests/fuzz/safetensors.dict
  fi
  mkdir -p "corpus-$target"
  echo "-- $target, $seconds s"
  rc=0
  # -rss_limit_mb: the reader's limits keep every input far below it; an input that reaches it is a bug.
  "./bin/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$PWD/" "corpus-$target" "$seeds" ../tests/fuzz/regressions > "$target.log" 2>&1 || rc=$?
  grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY" \
    "$target.log" || true
  if [ "$rc" -ne 0 ]; then
    echo "error: $target stopped with status $rc (a crash, or it could not run); see build-fuzz/$target.log and build-fuzz/crash-*" >&2
    status=1
  fi
done
# The property beside the fuzzing: every input the fuzzer kept that the reader loads, Python's
# torch.load(weights_only=True) loads too, with equal values (tests/fuzz/agree_with_python.py); for
# safetensors, both ways: the reader loads exactly what Python's safetensors loads, with equal values.
python=$(sed -n 's/^MP_PYTHON:FILEPATH=//p' CMakeCache.txt)
echo "-- the kept inputs the reader loads, against Python's torch.load"
for target in fuzz_load_state_dict fuzz_pickle fuzz_safetensors; do
  flag=()
  [ "$target" = fuzz_pickle ] && flag=(--pickles)
  [ "$target" = fuzz_safetensors ] && flag=(--safetensors)
  rc=0
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_odr_violation=0" "${python:-python3}" ../tests/fuzz/agree_with_python.py \
    "${flag[@]}" ./bin/weights_agree "agree-$target" "corpus-$target" > "agree-$target.log" 2>&1 || rc=$?
  tail -4 "agree-$target.log"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "error: $target kept an input that the reader and Python read differently; see build-fuzz/agree-$target.log" >&2
    status=1
  fi
done
exit "$status"
