#!/usr/bin/env bash
# The whole test suite: builds, then runs every ctest test (unit tests, lesson runs, parity with Python).
# Extra arguments go to ctest, e.g. scripts/test.sh -L parity
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure --parallel "${MP_JOBS:-$(nproc)}" "$@"
