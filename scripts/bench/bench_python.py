"""The same models as scripts/bench/bench_models.cpp, timed in Python's PyTorch the way its users time
code: torch.utils.benchmark.Timer, single-threaded, warm-up included, median of several blocks.
Prints JSON: {"name/mode": median microseconds per call}.

usage: python3 bench_python.py [--min-run-time SECONDS]
"""
import argparse
import ctypes
import json
import os
import shutil
import sys

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils import benchmark

# The lessons' Python twins keep the notebook's blocks in data/python/notes_models.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "python"))
from notes_models import MLP, FileIoMLP, FixedHiddenMLP, MyLinear, MySequential  # noqa: E402


class ScaledFixedHiddenMLP(nn.Module):
    """FixedHiddenMLP with its loop replaced by one read of the sum and one multiplication by 2^-k."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed

    def hidden(self, X):
        X = self.fixed.linear(X)
        X = F.relu(torch.mm(X, self.fixed.rand_weight) + 1)
        return self.fixed.linear(X)

    @staticmethod
    def halvings(X):
        """How many times the notes' loop halves X, from one read of its absolute sum."""
        with torch.no_grad():
            s, k = X.abs().sum().item(), 0
        while s > 1:
            s, k = s / 2, k + 1
        return k

    def forward(self, X):
        X = self.hidden(X)
        k = self.halvings(X)
        if k > 0:
            X = X * 2.0 ** -k
        return X.sum()


def median_us(fn, X, min_run_time, inference):
    def call():
        if inference:
            with torch.inference_mode():
                return fn(X)
        return fn(X)

    timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=1)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e6


def io_medians(repeats):
    """safetensors' save_file and load_file + load_state_dict of bench_models.cpp's BigModel (10 float32
    tensors of 1000 x 10000, 400 MB), in ms, medians of `repeats`. The save is followed by an fsync of the
    file, as the suite's writer syncs, so that both sides write the same durable bytes."""
    import statistics
    import tempfile
    import time
    from safetensors.torch import load_file, save_file

    model = nn.Module()
    for i in range(10):
        model.register_parameter(f"w{i}", nn.Parameter(torch.rand(1000, 10000)))
    folder = tempfile.mkdtemp(prefix="mp-bench-py-")
    path = os.path.join(folder, "big.safetensors")
    saves, loads = [], []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            save_file(model.state_dict(), path)
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            saves.append((time.perf_counter() - start) * 1e3)
        for _ in range(repeats):
            start = time.perf_counter()
            model.load_state_dict(load_file(path))
            loads.append((time.perf_counter() - start) * 1e3)
    finally:
        shutil.rmtree(folder)
    return {"safetensors/save_ms": statistics.median(saves), "safetensors/load_ms": statistics.median(loads)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-run-time", type=float, default=1.0)
    parser.add_argument("--io", type=int, metavar="REPEATS", help="only the safetensors save and load, medians of REPEATS")
    parser.add_argument("--only", help="time only this entry of the batch grid, e.g. MLPBatch/512/4096")
    parser.add_argument("--malloc-library", help="load the suite's allocator policy (build/lib/libmodelos_malloc.so) first")
    args = parser.parse_args()
    if args.malloc_library:
        ctypes.CDLL(args.malloc_library)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.io:
        json.dump(io_medians(args.io), sys.stdout)
        print()
        return
    if args.only:
        _, batch, hidden = args.only.split("/")
        net = nn.Sequential(nn.Linear(20, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), 10))
        json.dump({args.only: median_us(net, torch.rand(int(batch), 20), args.min_run_time, True)}, sys.stdout)
        print()
        return
    models = {
        "SequentialMLP": (nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)), torch.rand(2, 20)),
        "CustomMLP": (MLP(), torch.rand(2, 20)),
        "MySequential": (MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)), torch.rand(2, 20)),
        "MyLinearNet": (nn.Sequential(MyLinear(64, 8), MyLinear(8, 1)), torch.rand(2, 64)),
    }
    # Lesson 03's model from seed 0, as bench_models.cpp draws it, so that both sides halve as often; and
    # the computed-scale form of its loop, which gives the same bits.
    torch.manual_seed(0)
    fixed = FixedHiddenMLP()
    models["FixedHiddenMLP"] = (fixed, torch.rand(2, 20))
    scaled = ScaledFixedHiddenMLP(fixed)
    models["FixedHiddenMLPScaled"] = (scaled, models["FixedHiddenMLP"][1])
    with torch.no_grad():
        halvings = scaled.halvings(scaled.hidden(models["FixedHiddenMLP"][1]))
    results = {"FixedHiddenMLP/halvings": halvings}
    for name, (net, X) in models.items():
        for inference in (False, True):
            results[f"{name}/{'inference' if inference else 'grad'}"] = median_us(net, X, args.min_run_time, inference)
    for batch in (1, 8, 64, 512, 4096):
        for hidden in (256, 4096):
            net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, 10))
            results[f"MLPBatch/{batch}/{hidden}"] = median_us(net, torch.rand(batch, 20), args.min_run_time, True)
    # Lesson 14's MLP: eager, and compiled by torch.compile (PyTorch 2.x), where Python has it.
    net = FileIoMLP()
    compiled = torch.compile(net) if hasattr(torch, "compile") else None
    for batch in (2, 256):
        X = torch.rand(batch, 20)
        results[f"FileIoMLP/{batch}/eager"] = median_us(net, X, args.min_run_time, True)
        if compiled is not None:
            compiled(X)  # compiles for this shape before the timer starts
            results[f"FileIoMLP/{batch}/compile"] = median_us(compiled, X, args.min_run_time, True)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
