#!/usr/bin/env bash
# Measures what a learner waits for: a clean build of everything with and without the shared precompiled
# header (ccache off, so nothing is reused), and the rebuild and rerun after touching one lesson.
# Takes about 15 minutes on 2 cores. Prints a table; the build folders are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${MP_JOBS:-$(nproc)}
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)

seconds() { local start; start=$(date +%s.%N); "$@" >/dev/null; awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; }

clean_build() {  # $1: folder, rest: cmake options
  local dir=$1; shift
  rm -rf "$dir"
  cmake -S . -B "$dir" "${generator[@]}" -DMP_USE_CCACHE=OFF "$@" >/dev/null
  seconds cmake --build "$dir" --parallel "$jobs"
}

with_pch=$(clean_build build-time-pch -DMP_USE_PCH=ON)
without_pch=$(clean_build build-time-nopch -DMP_USE_PCH=OFF)
touch lessons/05_my_linear/main.cpp
rebuild=$(seconds bash -c "cmake --build build-time-pch --target 05_my_linear && build-time-pch/bin/05_my_linear --out-dir build-time-pch/out")
rm -rf build-time-pch build-time-nopch

printf '\nBuild times on %s cores (%s), ccache off\n' "$jobs" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
printf '%-52s %8.1f s\n' "clean build, shared precompiled header" "$with_pch"
printf '%-52s %8.1f s\n' "clean build, no precompiled header" "$without_pch"
printf '%-52s %8.2fx\n' "speed-up from the precompiled header" "$(awk -v a="$without_pch" -v b="$with_pch" 'BEGIN { print a / b }')"
printf '%-52s %8.1f s\n' "touch 05_my_linear/main.cpp, rebuild it and run it" "$rebuild"
