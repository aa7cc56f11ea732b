"""Runs a lesson binary and its Python twin with the same seed and compares what they report.

usage: parity_check.py LESSON_BINARY PYTHON_SCRIPT WORK_DIR [--seed N]

Shapes, names, integers and booleans must be equal; floats equal within a relative tolerance of 1e-6
(bit-identical is expected on the CPU with the same LibTorch version; the slack is for BLAS builds).
Keys the Python script lists in EXACT (parity.exact) must be equal bit for bit, and files it lists in SAME_BYTES
(parity.same_bytes) must hold the same bytes as the lesson's files of the same name. Keys that only one side
reports are errors, except the C++-only keys the Python script lists in
CPP_ONLY. Exit status: 0 equal, 1 different, 77 when python3-torch is missing (ctest: skipped).
"""
import json
import math
import os
import re
import subprocess
import sys

RTOL = 1e-6
ATOL = 1e-7  # for values that are zero up to rounding in both


def compare(key, cpp, py, problems):
    if isinstance(py, bool) or isinstance(cpp, bool) or isinstance(py, str) or py is None or cpp is None:
        if cpp != py:
            problems.append(f"{key}: C++ {cpp!r}, Python {py!r}")
    elif isinstance(py, int) and isinstance(cpp, int):
        if cpp != py:
            problems.append(f"{key}: C++ {cpp}, Python {py}")
    elif isinstance(py, (int, float)) and isinstance(cpp, (int, float)):
        if not math.isclose(cpp, py, rel_tol=RTOL, abs_tol=ATOL):
            problems.append(f"{key}: C++ {cpp!r}, Python {py!r} (rtol {RTOL})")
    elif isinstance(py, list) and isinstance(cpp, list):
        if len(cpp) != len(py):
            problems.append(f"{key}: C++ has {len(cpp)} entries, Python {len(py)}")
        else:
            for i, (c, p) in enumerate(zip(cpp, py)):
                compare(f"{key}[{i}]", c, p, problems)
    elif isinstance(py, dict) and isinstance(cpp, dict):
        if sorted(cpp) != sorted(py):
            problems.append(f"{key}: C++ fields {sorted(cpp)}, Python fields {sorted(py)}")
        for field in py:
            if field in cpp:
                compare(f"{key}.{field}", cpp[field], py[field], problems)
    else:
        problems.append(f"{key}: C++ {cpp!r}, Python {py!r}")


def main():
    binary, script, work = sys.argv[1:4]
    extra = sys.argv[4:]
    if os.environ.get("MP_PYTHON_CANNOT_LOAD"):
        print("skipped: " + os.environ["MP_PYTHON_CANNOT_LOAD"])
        return 77
    try:
        import torch  # noqa: F401
    except ImportError:
        print("skipped: python3-torch is missing (scripts/install-deps.sh installs it)")
        return 77
    os.makedirs(work, exist_ok=True)
    run = subprocess.run([binary, "--device", "cpu", "--out-dir", work, *extra], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{binary} failed with status {run.returncode}:\n{run.stderr}")
        return 1
    with open(os.path.join(work, "values.json")) as f:
        cpp = json.load(f)
    py_values = os.path.join(work, "python-values.json")
    py_run = subprocess.run([sys.executable, script, *extra, "--values", py_values], capture_output=True, text=True)
    if py_run.returncode != 0:
        missing = re.search(r"ModuleNotFoundError: No module named '([^']+)'", py_run.stderr)
        if missing:
            print(f"skipped: {sys.executable} has no {missing.group(1)} (scripts/install-deps.sh puts it in .venv)")
            return 77
        print(f"{script} failed with status {py_run.returncode}:\n{py_run.stderr}")
        return 1
    with open(py_values) as f:
        py = json.load(f)
    cpp_only = set(py.pop("CPP_ONLY", []))
    exact = set(py.pop("EXACT", []))
    same_bytes = py.pop("SAME_BYTES", {})

    problems = []
    for key in py:
        if key not in cpp:
            problems.append(f"{key}: reported by Python only")
        else:
            compare(key, cpp[key], py[key], problems)
            if key in exact and cpp[key] != py[key]:
                problems.append(f"{key}: not bit for bit: C++ {cpp[key]!r}, Python {py[key]!r}")
    for key in cpp:
        if key not in py and key not in cpp_only:
            problems.append(f"{key}: reported by C++ only (add it to the Python script, or to CPP_ONLY with a reason)")
    for name, twin_file in same_bytes.items():
        with open(os.path.join(work, name), "rb") as f, open(twin_file, "rb") as g:
            ours, theirs = f.read(), g.read()
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            problems.append(f"{name}: the files differ from byte {at} ({len(ours)} bytes in C++, {len(theirs)} in Python)")
    compared = len([k for k in py if k in cpp]) + len(same_bytes)
    if problems:
        print(f"{len(problems)} difference(s) between {os.path.basename(binary)} and {os.path.basename(script)}:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"{compared} values equal in C++ and Python ({len(cpp_only)} C++-only keys: {sorted(cpp_only)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
