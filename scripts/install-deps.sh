#!/usr/bin/env bash
# Installs what the suite needs on Debian 12 / Ubuntu, and only what is missing.
# Safe to run again: it asks dpkg first and calls apt-get only for absent packages.
# usage: scripts/install-deps.sh [--list] [lessons|export|test|companion]   (--list: print the set, install nothing)
#   lessons    what building and running the lessons needs (scripts/tour.sh)
#   export     lessons, and Python's PyTorch with a C++ compiler for AOTInductor (lesson 14's packages)
#   test       the default: also the tests, the Python reference, benchmarks and style tools (scripts/test.sh)
#   companion  test, and what scripts/companion.sh needs
# The test sets also make .venv (git-ignored): Debian's Python and PyTorch, plus safetensors from PyPI,
# the one package of the Python reference that Debian does not carry.
set -euo pipefail
cd "$(dirname "$0")/.."

list_only=0
if [ "${1:-}" = --list ]; then list_only=1; shift; fi
set_name=${1:-test}
case $set_name in
  lessons|export|test|companion) ;;
  *) echo "error: unknown set '$set_name'; the sets are: lessons, export, test, companion" >&2; exit 2 ;;
esac

packages=(
  clang                 # the default compiler: LibTorch's headers precompiled once serve every unit
  cmake ninja-build ccache pkg-config
  libtorch-dev          # LibTorch 1.13 (CPU), found by find_package(Torch)
  libopenblas0-openmp   # LibTorch then multiplies through OpenBLAS, not the reference BLAS: 18x at n = 1024
  libfmt-dev libcli11-dev nlohmann-json3-dev libdeflate-dev
  libgloo-dev           # the headers of the Gloo that LibTorch's c10d uses (lesson 13)
)

if [ "$set_name" = export ]; then
  packages+=(
    python3 python3-torch
    g++                # AOTInductor compiles with g++ unless CXX names another compiler
    python3-setuptools # AOTInductor's C++ builder imports torch.utils.cpp_extension, which imports it
  )
fi

if [ "$set_name" = test ] || [ "$set_name" = companion ]; then
  packages+=(
    build-essential git libgtest-dev libbenchmark-dev
    python3 python3-torch # the reference implementation for the parity and interop tests
    python3-setuptools    # torch.utils.benchmark (scripts/bench-vs-python) imports it
    python3-venv          # .venv, which adds safetensors from PyPI to Debian's Python and PyTorch
    python3-matplotlib    # lesson 07's Python twin draws the weight histograms
    libjemalloc-dev libmimalloc-dev  # the allocators scripts/bench-allocators compares with glibc's
    clang-format clang-tidy libclang-rt-dev
  )
fi

if [ "$set_name" = companion ]; then
  # The companion pages: highlighting, charts, and a real browser that checks and photographs them.
  packages+=(python3-pygments python3-websocket chromium fonts-dejavu-core)
fi

if [ "$list_only" = 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

# safetensors for the parity, interop and hostile-file tests, pinned: the writer's bytes are compared
# with its own. Without PyPI the tests that need it are skipped, and say so.
safetensors_version=0.8.0
python_packages() {
  [ "$set_name" = test ] || [ "$set_name" = companion ] || return 0
  if .venv/bin/python -c "import torch, safetensors; assert safetensors.__version__ == '$safetensors_version'" 2>/dev/null; then
    return 0
  fi
  echo "install-deps: making .venv with safetensors $safetensors_version from PyPI"
  if ! { /usr/bin/python3 -m venv --system-site-packages .venv &&
         .venv/bin/pip install -q --disable-pip-version-check "safetensors==$safetensors_version"; }; then
    echo "warning: could not install safetensors from PyPI into .venv; the tests that compare with it will be skipped" >&2
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is already installed"
  python_packages
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: not root and no sudo; install: ${missing[*]}" >&2; exit 2; }
  sudo=sudo
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
python_packages
