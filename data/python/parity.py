"""What the lessons' Python twins share with the C++ lessons: the --seed option, and show(label, value),
which prints a value and records it under its label the way common::Lesson::show does (tensors as
common/lesson/print.cpp's tensor_record), so that a lesson's values.json and its twin's can be compared label
by label. With --values PATH the twin writes what it recorded there when it ends."""
import argparse
import atexit
import json
import os

import torch

FULL_TENSOR_LIMIT = 64  # common::kFullTensorLimit

# c10::toString of the scalar types the lessons use.
DTYPE_NAMES = {
    torch.float32: "Float",
    torch.float64: "Double",
    torch.int64: "Long",
    torch.int32: "Int",
    torch.bool: "Bool",
}

_parser = argparse.ArgumentParser()
_parser.add_argument("--seed", type=int, default=0)
_parser.add_argument("--values", help="write the recorded values to this JSON file at exit")
options, _ = _parser.parse_known_args()

recorded = {}


def tensor_record(t):
    if t is None:
        return None
    t = t.detach().cpu()
    record = {"shape": list(t.shape), "dtype": DTYPE_NAMES[t.dtype]}
    flat = t.to(torch.float64).reshape(-1)
    if t.numel() <= FULL_TENSOR_LIMIT:
        record["values"] = flat.tolist()
    else:
        record["sum"] = flat.sum().item()
        record["norm"] = flat.norm().item()
        record["first"] = flat[:8].tolist()
    return record


def show(label, value):
    """Prints "label: value" and records the value under its label, as lesson.show does in C++."""
    if label in recorded:
        raise KeyError(f"{label!r} recorded twice")
    print(f"{label}: {value}")
    if isinstance(value, torch.Tensor):
        value = tensor_record(value)
    elif isinstance(value, torch.Size):
        value = list(value)
    recorded[label] = value


def cpp_only(*labels):
    """Labels the C++ lesson records with no Python counterpart (say why where this is called)."""
    recorded.setdefault("CPP_ONLY", []).extend(labels)


def exact(*labels):
    """Labels whose values must be equal bit for bit, not within parity_check's tolerance (say why where
    this is called)."""
    recorded.setdefault("EXACT", []).extend(labels)


def same_bytes(*files):
    """Files the twin wrote that must hold the same bytes as the C++ lesson's files of the same name."""
    same = recorded.setdefault("SAME_BYTES", {})
    for name in files:
        same[name] = os.path.abspath(name)


def names(module):
    return [name for name, _ in module.named_parameters()]


@atexit.register
def _write_values():
    if options.values:
        with open(options.values, "w") as f:
            json.dump(recorded, f, indent=2)
            f.write("\n")
