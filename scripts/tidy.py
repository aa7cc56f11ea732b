#!/usr/bin/env python3
"""Runs clang-tidy on translation units, in parallel, and remembers the clean ones.

A unit is tidied again only when something clang-tidy reads has changed: its preprocessed text (the
source and every header it includes, the project's and LibTorch's), its compile command, the
clang-tidy version or .clang-tidy. The key leaves out where the checkout lives, so a fresh clone of the
same tree reuses what an earlier one found clean. Only clean units are remembered: a unit with problems
is tidied, and reported, every time.

    scripts/tidy.py BUILD_DIR UNIT...
"""
import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys


def main():
    build, units = sys.argv[1], sys.argv[2:]
    root = os.getcwd()
    # As root, beside the Debian roots' cache (scripts/debian-root.sh), so that any checkout on the machine
    # shares it whatever its HOME; otherwise the user's own cache.
    cache = os.environ.get("MP_TIDY_CACHE") or (
        "/var/cache/modelos-personalizados/clang-tidy" if os.geteuid() == 0 else os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelos-personalizados", "clang-tidy"))
    os.makedirs(cache, exist_ok=True)
    commands = {os.path.relpath(e["file"], root): e for e in json.load(open(os.path.join(build, "compile_commands.json")))}
    common = hashlib.sha256()
    common.update(subprocess.run(["clang-tidy", "--version"], capture_output=True, check=True).stdout)
    common.update(open(".clang-tidy", "rb").read())

    def key(unit):
        entry = commands[unit]
        argv = shlex.split(entry["command"])
        # The same command, preprocessing only: -o and its operand go, -E -P come in.
        pre, skip = [], False
        for arg in argv:
            if skip:
                skip = False
            elif arg == "-o":
                skip = True
            elif arg != "-c":
                pre.append(arg)
        text = subprocess.run(pre + ["-E", "-P"], cwd=entry["directory"], capture_output=True, check=True).stdout
        h = common.copy()
        h.update(entry["command"].replace(root, "@").encode())
        h.update(text.replace(root.encode(), b"@"))
        return h.hexdigest()

    def tidy(unit):
        try:
            k = key(unit)
        except subprocess.CalledProcessError as e:
            return unit, False, e.stderr.decode(errors="replace")
        marker = os.path.join(cache, k)
        if os.path.exists(marker):
            return unit, True, None
        run = subprocess.run(["clang-tidy", "--quiet", "-p", build, unit], capture_output=True)
        if run.returncode == 0:
            open(marker, "w").close()
            return unit, True, ""
        return unit, False, run.stdout.decode(errors="replace")

    jobs = int(os.environ.get("MP_JOBS") or os.cpu_count() or 1)
    failed, reused = [], 0
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for unit, clean, report in pool.map(tidy, units):
            if clean:
                reused += report is None
            else:
                failed.append(unit)
                sys.stdout.write(report)
    if failed:
        print(f"error: clang-tidy reported problems in: {' '.join(failed)}", file=sys.stderr)
        return 1
    print(f"lint: clang-tidy: {len(units)} translation units clean ({reused} unchanged since a clean run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
