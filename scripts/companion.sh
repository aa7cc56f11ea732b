#!/usr/bin/env bash
# The companion pages: every lesson's cells in Python and C++ side by side, both run with the same seed,
# their outputs beneath them and their recorded values compared. Then a real browser (headless Chromium)
# opens every page, fails on any console error, broken image or missing cell, and takes screenshots.
#   scripts/companion.sh            builds, writes build/companion/index.html, checks it in the browser
#   scripts/companion.sh --seed 3   the same with another seed
# Open build/companion/index.html in a browser to read it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MP_SKIP_INSTALL:-0}" != 1 ]; then
  scripts/install-deps.sh companion
fi
MP_SKIP_INSTALL=1 scripts/build.sh
out=${MP_BUILD_DIR:-build}/companion
rm -rf "$out"
# Debian's python3, which has python3-torch, matplotlib, Pygments and websocket; through .venv (made by
# scripts/install-deps.sh, Debian's packages and safetensors) when it is there, for lesson 09's last cell.
python=/usr/bin/python3
[ -x .venv/bin/python3 ] && python=.venv/bin/python3
status=0
"$python" scripts/companion/build_pages.py . "${MP_BUILD_DIR:-build}" "$out" "$@" || status=1
"$python" scripts/companion/browser_check.py . "$out" || status=1
echo "companion: open $out/index.html"
exit $status
