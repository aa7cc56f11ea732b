#!/usr/bin/env python3
"""Whenever the suite's reader loads a file, Python's torch.load(weights_only=True) of the same bytes must
load it too and give equal values: the reader reads a file as PyTorch does, or refuses it.

usage: agree_with_python.py [--pickles] WEIGHTS_AGREE WORK_DIR INPUT_DIR...
       agree_with_python.py --safetensors WEIGHTS_AGREE WORK_DIR INPUT_DIR...

WEIGHTS_AGREE (tests/fuzz/weights_agree.cpp) reads each input as the suite does and writes what it read in
torch.save's format; this script loads that and the input's own bytes in Python and compares them: the same
structure, keys in the same order, tensors of the same dtype, shape and values (NaN equal to NaN). A
TorchScript archive (LibTorch's torch::save) is compared with torch.jit.load's state_dict(): it has no code,
or the suite would have refused it. A refusal by the suite is allowed whatever Python does; a load by the
suite that Python refuses, or reads otherwise, fails the run. Exit 77 when this Python has no torch.

With --safetensors the inputs are the files under the INPUT_DIRs, their folders included, whose names end in
.safetensors or .index.json or have no extension (a fuzz corpus's hash names); an .index.json is a sharded
checkpoint, read by read_index's rules. WEIGHTS_AGREE --safetensors WORK_DIR INPUT... writes WORK_DIR/k.out
with the suite's own safetensors writer for each input it loads. Here the verdict must be the same both ways:
the suite loads a file exactly when safetensors.torch.load_file does, and then the two read the same names,
each of the same dtype, shape and bytes (NaN payloads included), and the same __metadata__. Refusals are
allowed where Python loads only for the reasons docs/RELIABILITY.md gives: the suite's memory budget, a
number past 1e308 (where serde_json's rounding and a correctly rounded parse disagree), sizes whose strides
LibTorch cannot hold, the half-byte F4 (which newer PyTorch reads as float4_e2m1fn_x2), and an index that is not RFC 8259 JSON (Python's json also reads NaN, Infinity and lone
surrogates). Exit 77 when this Python has no torch or no safetensors.
"""
import json
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


def tensor_bytes(torch, t):
    """The bytes of a tensor's elements in order, as a uint8 tensor: bool and NaN payloads kept as they are."""
    flat = t.detach().contiguous().reshape(-1)
    try:
        return flat.view(torch.uint8)
    except RuntimeError:  # a PyTorch whose view(dtype) does not take this dtype: the storage's own bytes
        storage = flat.untyped_storage() if hasattr(flat, "untyped_storage") else flat.storage().untyped()
        start = flat.storage_offset() * flat.element_size()
        raw = bytes(storage)[start:start + flat.numel() * flat.element_size()]
        return torch.tensor(list(raw), dtype=torch.uint8)


class IndexRefused(ValueError):
    """A sharded checkpoint that its index's rules refuse."""


def read_index(path):
    """The tensors of a sharded checkpoint, read from its NAME.index.json as the suite's rules say: each shard
    that weight_map names is a plain file name in the index's folder (no "../x", "/abs/x" or "sub/x") that
    exists and that safetensors.torch.load_file loads, and holds exactly the tensors that weight_map assigns
    to it: a name held by no shard, by another shard than its own, by two shards, or by a shard while
    weight_map does not name it, refuses the whole checkpoint. Raises IndexRefused (or load_file's or json's
    error) when the checkpoint is refused."""
    from safetensors.torch import load_file
    with open(path, "rb") as f:
        index = json.loads(f.read().decode("utf-8"))
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise IndexRefused("the index has no weight_map object of names to shard file names")
    folder = os.path.dirname(path)
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        if shard in ("", ".", "..") or "/" in shard or "\\" in shard or os.path.isabs(shard):
            raise IndexRefused(f"shard {shard!r} is not a file name in the index's folder")
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path):
            raise IndexRefused(f"shard {shard!r} is missing")
        held = load_file(shard_path)
        for name in held:
            if name not in weight_map:
                raise IndexRefused(f"shard {shard!r} holds {name!r}, which weight_map does not name")
            if weight_map[name] != shard:
                raise IndexRefused(f"shard {shard!r} holds {name!r}, which weight_map puts in {weight_map[name]!r}")
        tensors.update(held)
    for name, shard in weight_map.items():
        if name not in tensors:
            raise IndexRefused(f"{name!r} is not in its shard {shard!r}")
    return tensors


def python_safetensors(path):
    """What Python reads: (tensors, metadata) from safetensors.torch.load_file and safe_open(...).metadata(),
    or from read_index (no metadata) for an .index.json. Raises whatever Python raises on refusing it."""
    if path.endswith(".index.json"):
        return read_index(path), None
    from safetensors import safe_open
    from safetensors.torch import load_file
    tensors = load_file(path)
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    return tensors, metadata


def safetensors_differences(torch, theirs, ours):
    """The ways two readings (tensors, metadata) differ: names, then per name dtype, shape and bytes, then
    metadata (a dict, or None when absent); [] when they are the same."""
    (a, meta_a), (b, meta_b) = theirs, ours
    found = []
    if set(a) != set(b):
        found.append(f"names only Python reads {sorted(set(a) - set(b))[:5]!r:.200}, "
                     f"only the suite reads {sorted(set(b) - set(a))[:5]!r:.200}")
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.dtype != y.dtype or list(x.shape) != list(y.shape):
            found.append(f"{name!r:.80}: {x.dtype}{list(x.shape)} against {y.dtype}{list(y.shape)}")
        elif not torch.equal(tensor_bytes(torch, x), tensor_bytes(torch, y)):
            found.append(f"{name!r:.80}: values differ")
    if meta_a != meta_b:
        found.append(f"metadata {meta_a!r:.200} against {meta_b!r:.200}")
    return found


# The suite's refusals of files Python's safetensors reads, each a rule of docs/RELIABILITY.md.
DOCUMENTED_REFUSALS = ("budget", "a number too large to read alike", "number overflow parsing",
                       "whose strides LibTorch cannot hold", "whose elements are smaller than a byte")


def report(counts, failures, passing):
    """Prints each count, each failure, and how many passed (the counts named in `passing`)."""
    for what, n in counts.items():
        print(f"{n:5d} {what}")
    for f in failures:
        print("FAIL", f)
    print(f"{sum(counts[k] for k in passing)} passed, {len(failures)} failed")


def suite_verdicts(tool, work, paths):
    """Runs WEIGHTS_AGREE --safetensors on paths: {k: (loaded|refused, message)}, or None when it failed."""
    run = subprocess.run([tool, "--safetensors", work] + paths, capture_output=True, encoding="utf-8",
                         errors="replace", timeout=600)
    if run.returncode != 0:
        print(f"error: weights_agree ended with status {run.returncode}: {run.stderr.strip()[-500:]}")
        return None
    verdicts = {}
    for line in run.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1] in ("loaded", "refused"):
            verdicts[int(parts[0])] = (parts[1], parts[2] if len(parts) > 2 else "")
    return verdicts


def safetensors_inputs(dirs):
    """Every .safetensors, .index.json or extension-less file under the folders, in a stable order."""
    inputs = []
    for d in dirs:
        for root, folders, names in os.walk(d):
            folders.sort()
            for name in sorted(names):
                path = os.path.join(root, name)
                if os.path.isfile(path) and (name.endswith((".safetensors", ".index.json")) or "." not in name):
                    inputs.append(path)
    return inputs


def main_safetensors(args):
    try:
        import torch
        import safetensors  # noqa: F401
    except ImportError as e:
        print(f"skipped: this python3 has no {e.name}")
        return 77
    warnings.filterwarnings("ignore")
    tool, work = args[0], args[1]
    missing = [d for d in args[2:] if not os.path.isdir(d)]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}")
        return 1
    os.makedirs(work, exist_ok=True)
    inputs = safetensors_inputs(args[2:])
    replayed = [p for p in inputs if os.path.getsize(p) <= MAX_BYTES]
    counts = {"loaded by both, equal": 0, "refused by both": 0, "refused for a documented reason": 0,
              "too large to replay": len(inputs) - len(replayed)}
    for name in os.listdir(work):
        path = os.path.join(work, name)
        if os.path.isfile(path):
            os.remove(path)
    verdicts = suite_verdicts(tool, work, replayed)
    if verdicts is None:
        return 1
    failures = []
    for k, path in enumerate(replayed):
        if k not in verdicts:
            failures.append(f"{path}: weights_agree printed no verdict")
            continue
        outcome, message = verdicts[k]
        try:
            theirs = python_safetensors(path)
            refusal = None
        except Exception as e:  # noqa: BLE001 - any refusal by Python is a verdict
            theirs, refusal = None, f"{type(e).__name__}: {str(e)[-200:]}"
        if outcome == "refused":
            if refusal is not None:
                counts["refused by both"] += 1
            elif any(reason in message for reason in DOCUMENTED_REFUSALS) or (
                    path.endswith(".index.json") and "not a valid safetensors index: it is not valid JSON" in message):
                counts["refused for a documented reason"] += 1
            else:
                failures.append(f"{path}: Python loads it, the suite refuses it: {message[-300:]}")
            continue
        if refusal is not None:
            failures.append(f"{path}: the suite loads it, Python refuses it: {refusal}")
            continue
        try:
            ours = python_safetensors(os.path.join(work, f"{k}.out"))
        except Exception as e:  # noqa: BLE001
            failures.append(f"{path}: Python cannot read the suite's {k}.out: {type(e).__name__}: {str(e)[-200:]}")
            continue
        differences = safetensors_differences(torch, theirs, ours)
        if differences:
            failures.append(f"{path}: read otherwise by the suite: " + "; ".join(differences[:5]))
        else:
            counts["loaded by both, equal"] += 1
    report(counts, failures, ("loaded by both, equal", "refused by both", "refused for a documented reason"))
    return 1 if failures else 0


def main():
    try:
        import torch
    except ImportError:
        print("skipped: this python3 has no torch")
        return 77
    warnings.filterwarnings("ignore")
    args = sys.argv[1:]
    if args[:1] == ["--safetensors"]:
        return main_safetensors(args[1:])
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
    report(counts, failures, ("loaded by both, equal", "refused by the suite"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
