#!/usr/bin/env bash
# Measures what a learner waits for: a clean build of everything with and without the shared precompiled
# header (ccache off, so nothing is reused), and the rebuild and rerun after touching one lesson. The
# default compiler (clang when installed) is measured both ways; GCC, when installed, with the header,
# to show why clang is the default. Takes about 12 minutes on 2 cores. Prints a table; the build folders
# are removed afterwards. scripts/build-time.sh --against REV compares a learner's two waits with REV's.
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

rebuild_one_lesson() {  # $1: a built folder, in the checkout whose lesson 05 is touched
  touch "$1/../lessons/05_my_linear/main.cpp"
  seconds bash -c "cmake --build '$1' --target 05_my_linear && '$1/bin/05_my_linear' --out-dir '$1/out'"
}

compiler_of() { sed -n 's/^set(CMAKE_CXX_COMPILER "\(.*\)")$/\1/p' "$1"/CMakeFiles/*/CMakeCXXCompiler.cmake; }

# --against REV: the two waits a learner meets, for REV and for this checkout's HEAD, each in a worktree of
# its own, ccache off: lesson 01's first line after scripts/tour.sh 01 on an empty build folder, and the
# rebuild and rerun of lesson 05 after a touch (median of 5, the two commits alternated).
if [ "${1:-}" = --against ]; then
  export CCACHE_DISABLE=1 MP_SKIP_INSTALL=1
  declare -A tree first
  for rev in "$2" HEAD; do
    tree[$rev]=$(mktemp -d)
    git worktree add -f --detach "${tree[$rev]}" "$rev" >/dev/null 2>&1
    start=$(date +%s.%N)
    first[$rev]=$(cd "${tree[$rev]}" && scripts/tour.sh 01 2>&1 | while IFS= read -r line; do
      if [[ "$line" == 01_blocks:* ]]; then awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; fi
    done | head -1)
  done
  declare -A times
  for _ in 1 2 3 4 5; do
    for rev in "$2" HEAD; do times[$rev]+="$(rebuild_one_lesson "${tree[$rev]}/build") "; done
  done
  for rev in "$2" HEAD; do
    median=$(printf '%s\n' ${times[$rev]} | sort -n | sed -n 3p)
    printf '%-12s lesson 01 first line %6.1f s   touch 05, rebuild and rerun (median of 5) %5.2f s\n' \
      "$(git rev-parse --short "$rev")" "${first[$rev]}" "$median"
    git worktree remove --force "${tree[$rev]}"
  done
  exit 0
fi

trap 'rm -rf build-time-pch build-time-nopch build-time-gcc' EXIT
with_pch=$(clean_build build-time-pch -DMP_USE_PCH=ON)
rebuild=$(rebuild_one_lesson build-time-pch)
compiler=$(compiler_of build-time-pch)
without_pch=$(clean_build build-time-nopch -DMP_USE_PCH=OFF)
gcc_pch=""
if command -v g++ >/dev/null && [ "$(basename "$compiler")" != g++ ] && [ "$(basename "$compiler")" != c++ ]; then
  gcc_pch=$(clean_build build-time-gcc -DMP_USE_PCH=ON -DCMAKE_CXX_COMPILER=g++)
  gcc_rebuild=$(rebuild_one_lesson build-time-gcc)
fi

printf '\nBuild times on %s cores (%s), ccache off, default compiler %s\n' "$jobs" \
  "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$("$compiler" --version | head -1)"
printf '%-58s %8.1f s\n' "clean build, shared precompiled header" "$with_pch"
printf '%-58s %8.1f s\n' "clean build, no precompiled header" "$without_pch"
printf '%-58s %8.2fx\n' "speed-up from the precompiled header" "$(awk -v a="$without_pch" -v b="$with_pch" 'BEGIN { print a / b }')"
printf '%-58s %8.1f s\n' "touch 05_my_linear/main.cpp, rebuild it and run it" "$rebuild"
if [ -n "$gcc_pch" ]; then
  printf '%-58s %8.1f s\n' "GCC: clean build, shared precompiled header" "$gcc_pch"
  printf '%-58s %8.1f s\n' "GCC: touch 05_my_linear/main.cpp, rebuild it and run it" "$gcc_rebuild"
fi
