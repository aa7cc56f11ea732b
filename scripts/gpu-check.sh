#!/usr/bin/env bash
# On a machine with a GPU, LibTorch 2.x from a CUDA build of Python's torch, CMake and Ninja but no package
# registry: configure against that LibTorch with the copies in .deps/ (made here by scripts/gpu-prepare.sh),
# build everything, run the whole test suite (CUDA instances included) and 10_gpus, and print a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${MP_GPU_BUILD_DIR:-build-gpu}
[ -d .deps/include ] || { echo "error: .deps/ is missing; run scripts/gpu-prepare.sh on a machine with the packages" >&2; exit 2; }

prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
args=()
if [ -n "$prefix" ] && [ -d "$prefix/Torch" ]; then args+=("-DCMAKE_PREFIX_PATH=$prefix"); fi
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)

# The carried copies stand in for the packages even where some are installed, so this runs the same
# everywhere; without libdeflate the CRCs are checked with a plain table (slower, same checks).
# GCC, the host compiler nvcc uses by default, compiles the C++ too: one toolchain for both.
cmake -S . -B "$build" "${generator[@]}" "${args[@]}" -DCMAKE_BUILD_TYPE=Release -DMP_PREFER_CLANG=OFF \
  -DMP_DEPS_DIR="$PWD/.deps" -DMP_TESTS=ON -DGOOGLETEST_SOURCE_DIR="$PWD/.deps/googletest" \
  -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON || { echo "error: configure failed" >&2; exit 1; }
cmake --build "$build" --parallel "$(nproc)" || { echo "error: build failed" >&2; exit 1; }

(cd "$build" && ctest --output-on-failure --parallel "$(nproc)") | tee "$build/ctest.log"
ctest_rc=${PIPESTATUS[0]}
"$build"/bin/10_gpus --device auto --max-n 4096 --out-dir "$build/lesson-output/10_gpus" | tee "$build/10_gpus.log"

echo
echo "===== summary ====="
python3 -c 'import torch; print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"); print("torch:", torch.__version__)' 2>/dev/null || true
grep -E "tests passed|tests failed" "$build/ctest.log" | tail -1
echo "skipped: $(grep -c '(Skipped)' "$build/ctest.log" || true)"
sed -n '/matrix products/,/reading 1000/p' "$build/10_gpus.log"
exit "$ctest_rc"
