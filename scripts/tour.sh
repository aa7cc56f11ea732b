#!/usr/bin/env bash
# The lesson tour: installs what the lessons need (not what the tests need), then builds each lesson and
# runs it as soon as it is built, in order, so that the first lesson's output comes before the others
# compile. The tests are left to scripts/test.sh.
#   scripts/tour.sh                    every lesson
#   scripts/tour.sh 03 --device cpu    one lesson (03 or 03_fixed_hidden_mlp), with its own options
set -euo pipefail
cd "$(dirname "$0")/.."

lessons=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  name=$1; shift
  match=(lessons/"$name"* lessons/[0-9][0-9]_"$name"*)
  for m in "${match[@]}"; do [ -d "$m" ] && lessons+=("$(basename "$m")") && break; done
  if [ ${#lessons[@]} -eq 0 ]; then
    all=(lessons/[0-9][0-9]_*/); all=("${all[@]#lessons/}")
    echo "error: no lesson named '$name'; the lessons are: ${all[*]%/}" >&2
    exit 2
  fi
else
  for d in lessons/[0-9][0-9]_*/; do lessons+=("$(basename "$d")"); done
fi

if [ "${MP_SKIP_INSTALL:-0}" != 1 ]; then
  scripts/install-deps.sh lessons
fi

build_dir=${MP_BUILD_DIR:-build}
# CMake lists the lessons this configuration builds, and why it skips any: configure when that list is
# missing or older than a build file or the lessons folder (a lesson added). A folder scripts/build.sh made
# is used as it is.
list=$build_dir/mp-lessons.txt
if [ ! -f "$build_dir/CMakeCache.txt" ] || [ ! -f "$list" ] ||
  [ -n "$(find CMakeLists.txt cmake lessons -maxdepth 2 \( -name CMakeLists.txt -o -name '*.cmake' -o -type d \) \
    -newer "$list" -print -quit)" ]; then
  generator=()
  if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
fi

total=${#lessons[@]}
args=("$@")
build_and_run() {
  printf '[%d/%d] building %s\n' "$i" "$total" "$1"
  # Only this lesson and what it links (the precompiled header, the common library) are built.
  cmake --build "$build_dir" --target "$1" --parallel "${MP_JOBS:-$(nproc)}"
  printf '\n\033[1m##### %s #####\033[0m\n' "$1"
  "$build_dir/bin/$1" "${args[@]}"
}
skipped() {
  reason=$(sed -n "s/^skipped $1 //p" "$list")
  printf '[%d/%d] skipped %s: %s\n' "$i" "$total" "$1" "${reason:-not in this build (see $list)}"
}
i=0
for lesson in "${lessons[@]}"; do
  i=$((i + 1))
  if grep -qx "built $lesson" "$list"; then
    build_and_run "$lesson"
  elif set=$(sed -n "s/^installable $lesson //p" "$list") && [ -n "$set" ] && [ "${MP_SKIP_INSTALL:-0}" != 1 ]; then
    # A lesson that needs more than the others (lesson 14: Python's PyTorch, to make its packages) gets it
    # now, after the lessons before it have run.
    printf '[%d/%d] installing what %s needs (scripts/install-deps.sh %s)\n' "$i" "$total" "$lesson" "$set"
    scripts/install-deps.sh "$set"
    cmake -S . -B "$build_dir" >/dev/null
    if grep -qx "built $lesson" "$list"; then build_and_run "$lesson"; else skipped "$lesson"; fi
  else
    skipped "$lesson"
  fi
done
