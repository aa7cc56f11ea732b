#!/usr/bin/env python3
"""Files that Python's safetensors writes are read by the suite with the same values, and written again by
the suite's writer with the same bytes.

usage: safetensors_interop.py WEIGHTS_AGREE WORK_DIR

Writes into WORK_DIR/python/, with safetensors.torch.save_file: every dtype this PyTorch has among float64,
float32, float16, bfloat16, int64, int32, int16, int8, uint8, bool, complex64 and (where it has them)
uint16, uint32, uint64, float8_e5m2, float8_e4m3fn, with seeded random values and random bit patterns (NaN
payloads, infinities, -0.0 and subnormals among them), 0-dim and empty tensors; metadata absent, empty, with
one key and with two; names in Spanish and Chinese and names with quotes, backslashes and control
characters; 300 tensors in one file; and a checkpoint in three shards with its model.safetensors.index.json
as transformers writes it. WEIGHTS_AGREE --safetensors WORK_DIR/suite INPUT... reads each as the suite does
and writes it again with the suite's writer as WORK_DIR/suite/k.out. Every input must load; k.out must hold
what Python wrote, bit for bit, with the same metadata; and where the metadata has at most one key, so
that Python's own order is not random, k.out must be the input's bytes exactly. With two keys the headers
must parse to the same JSON (entries in the same order, the metadata as a map) and the files must have the
same length and the same data. Exit 0 when all holds, 1 with the list of what does not, 77 when this Python
has no torch or no safetensors.
"""
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz"))

DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
          "complex64", "uint16", "uint32", "uint64", "float8_e5m2", "float8_e4m3fn")


def random_bits(torch, dtype, shape):
    """A tensor of the dtype whose bytes are random: any bit pattern, NaN payloads included."""
    numel = 1
    for n in shape:
        numel *= n
    size = torch.empty(0, dtype=dtype).element_size()
    return torch.randint(0, 256, (numel * size,), dtype=torch.uint8).view(dtype).reshape(shape)


def values(torch, dtype, shape):
    """Values of the dtype as a model would hold them; floats with NaN, +-inf, -0.0 and a subnormal."""
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype.is_complex:
        t = torch.complex(torch.randn(shape), torch.randn(shape)).to(dtype)
        if t.numel():
            t.view(-1)[0] = complex(float("nan"), float("inf"))
        return t
    if dtype.is_floating_point:
        if torch.empty(0, dtype=dtype).element_size() == 1:  # float8: every bit pattern is some value
            return random_bits(torch, dtype, shape)
        t = (torch.randn(shape, dtype=torch.float64) * 100).to(dtype)
        specials = [float("nan"), float("inf"), float("-inf"), -0.0, torch.finfo(dtype).tiny / 2]
        n = min(len(specials), t.numel())
        t.view(-1)[:n] = torch.tensor(specials[:n], dtype=torch.float64).to(dtype)
        return t
    return random_bits(torch, dtype, shape)


def python_files(torch):
    """{file name: (tensors, metadata)} for every single file."""
    dtypes = [getattr(torch, name) for name in DTYPES if hasattr(torch, name)]
    files = {}
    for dtype in dtypes:
        name = str(dtype).replace("torch.", "")
        tensors = {"values": values(torch, dtype, [4, 5]), "scalar": values(torch, dtype, [1]).reshape([]),
                   "empty": torch.empty([0], dtype=dtype), "empty_rows": torch.empty([0, 3], dtype=dtype)}
        if dtype != torch.bool:
            tensors["bits"] = random_bits(torch, dtype, [3, 7])
        files[f"dtype_{name}.safetensors"] = (tensors, None)
    every = {str(d).replace("torch.", ""): values(torch, d, [2, 3]) for d in dtypes}
    files["every_dtype.safetensors"] = (every, None)
    files["every_dtype_metadata.safetensors"] = (every, {"format": "pt"})
    files["empty_tensors.safetensors"] = ({"a": torch.empty([0]), "b": torch.empty([0, 3], dtype=torch.int64)}, None)
    files["empty_after_data.safetensors"] = ({"a": torch.ones([3]), "b": torch.empty([0, 3]), "c": torch.empty([0])},
                                             None)
    files["scalars.safetensors"] = ({"f": torch.tensor(2.5), "i": torch.tensor(7), "b": torch.tensor(True),
                                     "h": torch.tensor(-1.5, dtype=torch.float16)}, None)
    files["no_tensors.safetensors"] = ({}, None)
    files["no_tensors_metadata.safetensors"] = ({}, {"a": "b"})
    small = {"weight": torch.randn([3, 4]), "bias": torch.randn([3])}
    files["metadata_none.safetensors"] = (small, None)
    files["metadata_empty.safetensors"] = (small, {})
    files["metadata_one.safetensors"] = (small, {"format": "pt"})
    files["metadata_escapes.safetensors"] = (small, {'clé "x" \\ \n\t\x01': "valor ✓ \u2028 / \x1f \x7f 😀"})
    files["metadata_two.safetensors"] = (small, {"format": "pt", "nota": "ñandú 层"})
    names = ["capa.peso", "ñandú", "层.权重", 'a "quoted" \\ back\nslash', "B", "Z", "_", "a", "a.b", "a10",
             "a9", "aa", "é", "", "\x01control", "del\x7f", "emoji 😀", "/slash"]
    files["unicode_names.safetensors"] = ({n: torch.full([2], float(i)) for i, n in enumerate(names)}, None)
    files["unicode_names_metadata.safetensors"] = ({n: torch.tensor([i]) for i, n in enumerate(names)}, {"ñ": "层"})
    many = {}
    for i in range(300):
        dtype = dtypes[i % len(dtypes)]
        many[f"layers.{i}.weight"] = values(torch, dtype, [i % 5, 3] if i % 7 else [])
    files["many.safetensors"] = (many, None)
    return files


def sharded(torch, folder):
    """Writes a checkpoint in three shards and its index as transformers writes them: {file name: (tensors,
    metadata)} for the shards and the index."""
    from safetensors.torch import save_file
    tensors = {f"model.layers.{i}.{part}": torch.randn([4, 3] if part == "weight" else [4]).to(dtype)
               for i in range(6) for part, dtype in (("weight", torch.float32), ("bias", torch.bfloat16))}
    tensors["lm_head.weight"] = torch.randn([5, 4], dtype=torch.float16)
    names = sorted(tensors)
    weight_map, total, files = {}, 0, {}
    for k in range(3):
        shard = f"model-{k + 1:05d}-of-00003.safetensors"
        part = {n: tensors[n] for n in names[k::3]}
        save_file(part, os.path.join(folder, shard), metadata={"format": "pt"})
        files[shard] = (part, {"format": "pt"})
        for n, t in part.items():
            weight_map[n] = shard
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    files["model.safetensors.index.json"] = (tensors, None)
    return files


def header(data):
    n = struct.unpack("<Q", data[:8])[0]
    return n, data[8:8 + n]


def parsed(text):
    """The header's JSON: the top-level pairs in order, __metadata__ as a map (its order is random)."""
    top = json.loads(text.decode("utf-8"), object_pairs_hook=lambda pairs: pairs)
    return [(k, dict(v) if k == "__metadata__" else v) for k, v in top]


def byte_problems(name, ours, theirs, metadata):
    """How the suite's k.out (ours) differs from Python's bytes (theirs)."""
    if metadata is None or len(metadata) <= 1:
        if ours == theirs:
            return []
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        return [f"{name}: the suite writes other bytes than Python ({len(ours)} against {len(theirs)}, first "
                f"difference at byte {at}): {ours[max(0, at - 40):at + 80]!r} against "
                f"{theirs[max(0, at - 40):at + 80]!r}"]
    (n_ours, h_ours), (n_theirs, h_theirs) = header(ours), header(theirs)
    found = []
    if len(ours) != len(theirs) or n_ours != n_theirs:
        found.append(f"{name}: {len(ours)} bytes with a header of {n_ours} against {len(theirs)} and {n_theirs}")
    try:
        if parsed(h_ours) != parsed(h_theirs):
            found.append(f"{name}: the header {h_ours[:300]!r} against {h_theirs[:300]!r}")
    except ValueError as e:
        found.append(f"{name}: the suite's header is not JSON: {e}")
    if ours[8 + n_ours:] != theirs[8 + n_theirs:]:
        found.append(f"{name}: the data differs")
    return found


def main():
    try:
        import torch
        import safetensors  # noqa: F401
    except ImportError as e:
        print(f"skipped: this python3 has no {e.name}")
        return 77
    import warnings
    warnings.filterwarnings("ignore")
    from safetensors.torch import save_file
    import agree_with_python
    tool, work = sys.argv[1], sys.argv[2]
    inputs_dir, out_dir = os.path.join(work, "python"), os.path.join(work, "suite")
    for d in (inputs_dir, os.path.join(inputs_dir, "sharded"), out_dir):
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            if os.path.isfile(os.path.join(d, name)):
                os.remove(os.path.join(d, name))
    torch.manual_seed(0)
    expected = {}  # path -> (tensors, metadata, whether the bytes must come back the same)
    for name, (tensors, metadata) in python_files(torch).items():
        path = os.path.join(inputs_dir, name)
        save_file(tensors, path, metadata=metadata)
        expected[path] = (tensors, metadata)
    for name, reading in sharded(torch, os.path.join(inputs_dir, "sharded")).items():
        expected[os.path.join(inputs_dir, "sharded", name)] = reading
    paths = list(expected)
    verdicts = agree_with_python.suite_verdicts(tool, out_dir, paths)
    if verdicts is None:
        return 1
    problems, same_bytes, good = [], 0, 0
    for k, path in enumerate(paths):
        name = os.path.relpath(path, inputs_dir)
        before = len(problems)
        outcome, message = verdicts.get(k, ("", "no verdict printed"))
        if outcome != "loaded":
            problems.append(f"{name}: the suite does not load it: {message[-300:]}")
            continue
        resaved = os.path.join(out_dir, f"{k}.out")
        try:
            ours = agree_with_python.python_safetensors(resaved)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{name}: Python cannot read the suite's {k}.out: {type(e).__name__}: {str(e)[-200:]}")
            continue
        differences = agree_with_python.safetensors_differences(torch, expected[path], ours)
        problems += [f"{name}: {d}" for d in differences[:5]]
        if not path.endswith(".index.json"):
            with open(path, "rb") as f:
                theirs_bytes = f.read()
            with open(resaved, "rb") as f:
                ours_bytes = f.read()
            problems += byte_problems(name, ours_bytes, theirs_bytes, expected[path][1])
            same_bytes += ours_bytes == theirs_bytes
        good += len(problems) == before
    print(f"{len(paths)} files written by Python, {good} read and written again as they should be, "
          f"{same_bytes} of them byte for byte")
    for p in problems:
        print("FAIL", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
