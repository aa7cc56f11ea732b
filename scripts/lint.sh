#!/usr/bin/env bash
# Style checks: clang-format must change nothing, and clang-tidy (.clang-tidy) must report nothing in the
# project's own code. Uses the compile commands of a configure without the precompiled header (clang-tidy
# cannot read GCC's), so nothing is built.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${MP_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
mapfile -t sources < <(git ls-files '*.cpp' '*.h' '*.cu')
clang-format --dry-run --Werror "${sources[@]}"
echo "lint: clang-format: ${#sources[@]} files formatted"

cmake -S . -B build-lint -G Ninja -DMP_USE_PCH=OFF -DMP_USE_CCACHE=OFF -DMP_TESTS=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
# The translation units this configuration compiles: a source only another LibTorch builds (the stable-ABI
# operator needs PyTorch 2.9) has no compile command here, and clang-tidy could not read it.
mapfile -t units < <(git ls-files '*.cpp' | grep -v '^tests/fuzz/' | /usr/bin/env python3 -c '
import json, os, sys
built = {os.path.relpath(e["file"]) for e in json.load(open("build-lint/compile_commands.json"))}
sys.stdout.write("".join(line for line in sys.stdin if line.strip() in built))')
scripts/tidy.py build-lint "${units[@]}"
