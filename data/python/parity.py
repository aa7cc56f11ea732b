"""Records values the way the C++ lessons do (common/print.cpp's tensor_record), so that a lesson's
values.json and its Python twin's output can be compared key by key."""
import json
import sys

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


def names(module):
    return [name for name, _ in module.named_parameters()]


class Values:
    """The values.json of a lesson, built in Python."""

    def __init__(self):
        self.values = {}

    def __setitem__(self, key, value):
        if key in self.values:
            raise KeyError(f"key {key!r} recorded twice")
        if isinstance(value, torch.Tensor):
            value = tensor_record(value)
        elif isinstance(value, torch.Size):
            value = list(value)
        self.values[key] = value

    def dump(self):
        json.dump(self.values, sys.stdout, indent=2)
        sys.stdout.write("\n")
