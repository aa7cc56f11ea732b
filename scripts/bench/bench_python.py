"""The same models as scripts/bench/bench_models.cpp, timed in Python's PyTorch the way its users time
code: torch.utils.benchmark.Timer, single-threaded, warm-up included, median of several blocks.
Prints JSON: {"name/mode": median microseconds per call}.

usage: python3 bench_python.py [--min-run-time SECONDS]
"""
import argparse
import json
import sys

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils import benchmark


class MLP(nn.Module):  # lesson 01's block
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


class MySequential(nn.Module):  # lesson 02
    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            self._modules[str(idx)] = module

    def forward(self, X):
        for block in self._modules.values():
            X = block(X)
        return X


class FixedHiddenMLP(nn.Module):  # lesson 03
    def __init__(self):
        super().__init__()
        self.rand_weight = torch.rand((20, 20), requires_grad=False)
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


class MyLinear(nn.Module):  # lesson 05, computing with the parameters themselves
    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units,))

    def forward(self, X):
        return F.relu(torch.matmul(X, self.weight) + self.bias)


def median_us(fn, X, min_run_time, inference):
    def call():
        if inference:
            with torch.inference_mode():
                return fn(X)
        return fn(X)

    timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=1)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {
        "SequentialMLP": (nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)), torch.rand(2, 20)),
        "CustomMLP": (MLP(), torch.rand(2, 20)),
        "MySequential": (MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)), torch.rand(2, 20)),
        "MyLinearNet": (nn.Sequential(MyLinear(64, 8), MyLinear(8, 1)), torch.rand(2, 64)),
        "FixedHiddenMLP": (FixedHiddenMLP(), torch.rand(2, 20)),
    }
    results = {}
    for name, (net, X) in models.items():
        for inference in (False, True):
            results[f"{name}/{'inference' if inference else 'grad'}"] = median_us(net, X, args.min_run_time, inference)
    for batch in (1, 8, 64, 512, 4096):
        for hidden in (256, 4096):
            net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, 10))
            results[f"MLPBatch/{batch}/{hidden}"] = median_us(net, torch.rand(batch, 20), args.min_run_time, True)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
