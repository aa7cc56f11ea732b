#!/usr/bin/env bash
# The lesson tour: builds the suite, then runs every lesson in order, or only those named.
#   scripts/tour.sh                 every lesson
#   scripts/tour.sh 03_fixed_hidden_mlp --device cpu    one lesson, with its own options
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

lessons=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  name=$1; shift
  match=(lessons/${name}* lessons/[0-9][0-9]_${name}*)
  for m in "${match[@]}"; do [ -d "$m" ] && lessons+=("$(basename "$m")") && break; done
  if [ ${#lessons[@]} -eq 0 ]; then
    echo "error: no lesson named '$name'; the lessons are: $(ls lessons | tr '\n' ' ')" >&2
    exit 2
  fi
else
  for d in lessons/[0-9][0-9]_*/; do lessons+=("$(basename "$d")"); done
fi

for lesson in "${lessons[@]}"; do
  printf '\n\033[1m##### %s #####\033[0m\n' "$lesson"
  build/bin/"$lesson" "$@"
done
