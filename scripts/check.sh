#!/usr/bin/env bash
# The hardening checks CI runs after the test suite: the whole suite under AddressSanitizer and
# UndefinedBehaviorSanitizer, a bounded fuzz run of the state-dict reader, the companion pages built and
# checked in a real browser, and the style checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export MP_SKIP_INSTALL=1
echo "== sanitizers"; scripts/test-sanitizers.sh
echo "== fuzzing, ${MP_FUZZ_SECONDS:-60} s"; scripts/fuzz.sh "${MP_FUZZ_SECONDS:-60}"
echo "== companion pages, in headless Chromium"; scripts/install-deps.sh companion; scripts/companion.sh
echo "== style"; scripts/lint.sh
