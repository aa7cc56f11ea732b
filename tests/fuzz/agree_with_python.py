#!/usr/bin/env python3
"""Whenever the suite's reader loads a file, Python's torch.load(weights_only=True) of the same bytes must
load it too and give equal values: the reader reads a file as PyTorch does, or refuses it.

usage: agree_with_python.py [--pickles] WEIGHTS_AGREE WORK_DIR INPUT_DIR...

WEIGHTS_AGREE (tests/fuzz/weights_agree.cpp) reads each input as the suite does and writes what it read in
torch.save's format; this script loads that and the input's own bytes in Python and compares them: the same
structure, keys in the same order, tensors of the same dtype, shape and values (NaN equal to NaN). A
TorchScript archive (LibTorch's torch::save) is compared with torch.jit.load's state_dict(): it has no code,
or the suite would have refused it. A refusal by the suite is allowed whatever Python does; a load by the
suite that Python refuses, or reads otherwise, fails the run. Exit 77 when this Python has no torch.
"""
import math
import os
import re
import subprocess
import sys
import warnings

# Inputs larger than this (sparse files that claim gigabytes) are not copied into memory to be replayed.
MAX_BYTES = 256 << 20


def raw_storage(torch, t):
    whole = torch.empty(0, dtype=t.dtype).set_(t.storage())
    if whole.is_complex():
        whole = torch.view_as_real(whole).flatten()
    return whole.view(torch.uint8)


def same(a, b, where="value", seen=None):
    """None when a (Python's) and b (the suite's, round-tripped) are equal, else where they differ. A pair of
    containers is compared once: shared values (2^60 paths through a few KB) cost what they hold."""
    import torch
    seen = set() if seen is None else seen
    if isinstance(a, (dict, list, tuple)):
        if (id(a), id(b)) in seen:
            return None
        seen.add((id(a), id(b)))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{where}: {type(a).__name__} against {type(b).__name__}"
        if a.dtype != b.dtype or a.shape != b.shape or a.stride() != b.stride() or a.storage_offset() != b.storage_offset():
            return (f"{where}: {a.dtype}{list(a.shape)} stride {a.stride()} offset {a.storage_offset()} against "
                    f"{b.dtype}{list(b.shape)} stride {b.stride()} offset {b.storage_offset()}")
        # The storages, byte for byte: a view is never materialized (a stride-0 view may span terabytes),
        # and NaNs compare by their bits.
        equal = torch.equal(raw_storage(torch, a), raw_storage(torch, b))
        return None if equal else f"{where}: tensor values differ"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a.keys()) != list(b.keys()):
            return f"{where}: keys {list(a.keys())[:5]} against {list(b.keys())[:5]}"
        for k in a:
            d = same(a[k], b[k], f"{where}[{k!r}]", seen)
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return f"{where}: {type(a).__name__} of {len(a)} against {type(b).__name__} of {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{where}[{i}]", seen)
            if d:
                return d
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    if type(a) is not type(b) or a != b:
        return f"{where}: {a!r:.60} against {b!r:.60}"
    return None


def python_reading(torch, path):
    """What PyTorch reads from the file: torch.load(weights_only=True), or a TorchScript archive's state."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        torchscript = any(n.endswith("/constants.pkl") for n in z.namelist())
    if torchscript:
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    return load_weights(torch, path)


def on_cpu(storage, location):
    """The suite reads a storage tagged for CUDA into memory, as map_location="cpu" would; any tag that
    torch.load does not know is left to its own restore, which refuses it."""
    index = re.fullmatch(r"cuda:(0|[1-9][0-9]{0,2})", location)
    if location in ("cpu", "cuda") or (index and int(index.group(1)) < 128):
        return storage
    return None


def load_weights(torch, path):
    try:
        return torch.load(path, weights_only=True, map_location=on_cpu)
    except Exception as e:  # noqa: BLE001
        # PyTorch 1.13's weights-only unpickler lacks BINFLOAT ("Unsupported operand 71"), which 2.x reads:
        # a float refuses the whole file there. The suite's allow-list has already shown that the file names
        # nothing but OrderedDict, the tensor rebuilders and storages, so the full unpickler runs nothing else.
        if "Unsupported operand 71" not in str(e):
            raise
        return torch.load(path, map_location=on_cpu)


def main():
    try:
        import torch
    except ImportError:
        print("skipped: this python3 has no torch")
        return 77
    warnings.filterwarnings("ignore")
    args = sys.argv[1:]
    pickles = args[:1] == ["--pickles"]
    if pickles:
        args = args[1:]
    tool, work = args[0], args[1]
    os.makedirs(work, exist_ok=True)
    inputs = []
    for d in args[2:]:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isfile(path) and not name.endswith((".json", ".md", ".py")):
                inputs.append(path)
    counts = {"loaded by both, equal": 0, "refused by the suite": 0, "too large to replay": 0}
    replayed = [p for p in inputs if os.path.getsize(p) <= MAX_BYTES]
    counts["too large to replay"] = len(inputs) - len(replayed)
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    run = subprocess.run([tool] + (["--pickles"] if pickles else []) + [work] + replayed, capture_output=True,
                         encoding="utf-8", errors="replace", timeout=600)
    if run.returncode != 0:
        print(f"error: weights_agree ended with status {run.returncode}: {run.stderr.strip()[-500:]}")
        return 1
    failures = []
    for line in run.stdout.splitlines():
        index, outcome = line.split(" ", 2)[:2]
        path = replayed[int(index)]
        if outcome == "refused":
            counts["refused by the suite"] += 1
            continue
        same_bytes, resaved = os.path.join(work, f"{index}.in"), os.path.join(work, f"{index}.out")
        try:
            theirs = python_reading(torch, same_bytes)
        except Exception as e:  # noqa: BLE001 - any refusal by Python is the finding
            failures.append(f"{path}: the suite loads it, Python refuses it: {type(e).__name__}: {str(e)[-200:]}")
            continue
        difference = same(theirs, load_weights(torch, resaved))
        if difference:
            failures.append(f"{path}: read otherwise by the suite: {difference}")
        else:
            counts["loaded by both, equal"] += 1
    for what, n in counts.items():
        print(f"{n:5d} {what}")
    for f in failures:
        print("FAIL", f)
    print(f"{counts['loaded by both, equal'] + counts['refused by the suite']} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
