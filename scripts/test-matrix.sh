#!/usr/bin/env bash
# Builds and tests the whole suite (unit, lesson and parity tests) against each LibTorch a learner may
# have, and prints one table: configuration, LibTorch, compiler, C++ standard, tests, build time.
#   scripts/test-matrix.sh                        debian12
#   scripts/test-matrix.sh debian12 debian13 pip  all three
# debian12 / debian13: Debian's libtorch-dev and python3-torch (1.13 / 2.6), on this machine when it runs
#   that release, else in a bare debootstrap root (scripts/debian-root.sh; needs root).
# pip: the newest torch from PyPI in .venv-pip (made here, git-ignored; a CUDA build, so CUDA sources are
#   compiled with this machine's nvcc), its LibTorch found through torch.utils.cmake_prefix_path and its
#   Python as the parity and interop peer. Tests run on the CPU.
# Each configuration's parity tests compare with that configuration's own Python.
set -uo pipefail
cd "$(dirname "$0")/.."
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(debian12)
host=$(. /etc/os-release 2>/dev/null && echo "debian${VERSION_ID:-}")
rows=()
status=0

# ctest on build dir $1, with a JUnit report the table is read from.
ctest_in() { (cd "$1" && ctest --output-on-failure --parallel "${MP_JOBS:-$(nproc)}" --output-junit ctest-junit.xml > ctest.log 2>&1); }

# One table row from a build folder's mp-config.txt, ctest-junit.xml and build-time.txt.
row() {
  local name=$1 dir=$2
  /usr/bin/env python3 - "$name" "$dir" <<'PY'
import sys, os, re
name, d = sys.argv[1], sys.argv[2]
cfg = {}
try:
    for line in open(os.path.join(d, "mp-config.txt")):
        k, _, v = line.strip().partition("=")
        cfg[k] = v
except OSError:
    pass
tests = "not run"
try:
    head = open(os.path.join(d, "ctest-junit.xml")).read(4000)
    m = {k: int(v) for k, v in re.findall(r'\b(tests|failures|skipped|disabled)="(\d+)"', head)}
    total, failed, skipped = m.get("tests", 0), m.get("failures", 0), m.get("skipped", 0) + m.get("disabled", 0)
    tests = f"{total - failed - skipped} passed, {failed} failed, {skipped} skipped"
except OSError:
    pass
try:
    build = open(os.path.join(d, "build-time.txt")).read().strip() + " s"
except OSError:
    build = "?"
python = cfg.get("python_torch", "")
print(f"| {name} | {cfg.get('libtorch', '?')} | {python or '?'} | {cfg.get('compiler', '?')} | {cfg.get('standard', '?')} | "
      f"{'yes' if cfg.get('cuda') == 'ON' else 'no'} | {tests} | {build} |")
PY
}

# Configure (when new), build with the build time recorded, test. $1: build dir, rest: configure arguments.
build_and_test() {
  local dir=$1; shift
  local generator=()
  command -v ninja >/dev/null && [ ! -f "$dir/CMakeCache.txt" ] && generator=(-G Ninja)
  cmake -S . -B "$dir" "${generator[@]}" -DMP_TESTS=ON "$@" > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; return 1; }
  local start=$SECONDS
  cmake --build "$dir" --parallel "${MP_JOBS:-$(nproc)}" > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; return 1; }
  echo $((SECONDS - start)) > "$dir/build-time.txt"
  local python; python=$(sed -n 's/^python=//p' "$dir/mp-config.txt")
  echo "python_torch=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)" >> "$dir/mp-config.txt"
  ctest_in "$dir"
}

for config in "${configs[@]}"; do
  echo "== $config"
  case $config in
    debian12|debian13)
      if [ "$config" = "$host" ]; then
        scripts/install-deps.sh > /dev/null || { status=1; continue; }
        mkdir -p build-matrix
        build_and_test "build-matrix/$config" || status=1
      else
        suite=$([ "$config" = debian12 ] && echo bookworm || echo trixie)
        # Inside the root, this very script runs the configuration natively.
        scripts/debian-root.sh "$suite" "MP_JOBS=${MP_JOBS:-$(nproc)} scripts/test-matrix.sh $config" || status=1
      fi
      ;;
    pip)
      venv=.venv-pip
      if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, matplotlib, safetensors' 2>/dev/null; then
        echo "test-matrix: installing the newest torch from PyPI into $venv (a few GB, once)"
        python3 -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q torch numpy matplotlib safetensors ||
          { echo "error: pip could not install torch" >&2; status=1; continue; }
      fi
      # The torch package's own folder first: TorchConfig.cmake looks for libtorch.so under the prefixes
      # before its own lib/, and would otherwise find a system LibTorch (Debian's) beside the pip headers.
      prefix=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__) + ";" + torch.utils.cmake_prefix_path)')
      mkdir -p build-matrix
      cuda=()
      command -v nvcc >/dev/null && cuda=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)")
      build_and_test build-matrix/pip -DCMAKE_PREFIX_PATH="$prefix" -DMP_PYTHON="$PWD/$venv/bin/python" "${cuda[@]}" ||
        status=1
      ;;
    *) echo "error: unknown configuration '$config' (debian12, debian13 or pip)" >&2; exit 2 ;;
  esac
  rows+=("$(row "$config" "build-matrix/$config")")
done

echo
echo "| configuration | LibTorch | PyTorch | compiler | C++ | CUDA sources | tests | build |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $status
