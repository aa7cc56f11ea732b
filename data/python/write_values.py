"""Saves one value of every kind a weights file holds with Python's torch.save, and what it holds as JSON.

usage: write_values.py OUT_DIR
Writes OUT_DIR/values.pt (a dict: tensors of every dtype, a transposed view, a slice with a storage
offset, two views of one storage, a 0-d tensor, a list, a tuple, a nested dict, ints, a float, a string,
None and a bool) and OUT_DIR/values.json, which says for each entry what C++ must read back.
"""
import json
import os
import sys

import torch

# Python's dtype -> LibTorch's name for it (c10::toString).
DTYPES = {torch.float32: "Float", torch.float64: "Double", torch.float16: "Half", torch.bfloat16: "BFloat16",
          torch.int64: "Long", torch.int32: "Int", torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
          torch.bool: "Bool"}


def describe(v):
    if isinstance(v, torch.Tensor):
        return {"dtype": DTYPES[v.dtype], "shape": list(v.shape), "values": v.double().flatten().tolist()}
    if isinstance(v, (list, tuple)):
        return {"list": [describe(x) for x in v]}
    if isinstance(v, dict):
        return {"dict": {k: describe(x) for k, x in v.items()}}
    return {"scalar": v}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    base = torch.arange(10, dtype=torch.float32) / 7
    values = {
        "float": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7,
        "double": torch.tensor([1.5, -2.25], dtype=torch.float64),
        "half": torch.tensor([0.5, -1.0, 65504], dtype=torch.float16),
        "bfloat16": torch.tensor([0.5, 3.0], dtype=torch.bfloat16),
        "int64": torch.tensor([2**40, -3]),
        "int32": torch.tensor([7, -8], dtype=torch.int32),
        "int16": torch.tensor([300, -2], dtype=torch.int16),
        "int8": torch.tensor([-128, 127], dtype=torch.int8),
        "uint8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.25),
        "transposed": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(),
        "slice": base[3:7],
        "shared_whole": base,
        "list": [torch.ones(2), torch.zeros(1)],
        "tuple": (1, 2.5, "three"),
        "nested": {"a": {"b": torch.full((2,), 7.0)}},
        "big_int": 12345678901,
        "negative": -5,
        "text": "hola",
        "none": None,
        "flag": True,
    }
    values["float"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7
    values["py_float"] = 0.1
    torch.save(values, os.path.join(out, "values.pt"))
    with open(os.path.join(out, "values.json"), "w") as f:
        json.dump({k: describe(v) for k, v in values.items()}, f)


if __name__ == "__main__":
    main()
