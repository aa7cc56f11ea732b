#!/usr/bin/env python3
"""Writes hostile weights files, each built by hand to attack one check of common::weights.

usage: make_hostile.py OUT_DIR

Writes OUT_DIR/<case>.pt for every case below and OUT_DIR/cases.json: {case: text the error must hold}.
The crafted torch.save archives are real zips with valid CRCs (Python's zipfile computes them), so that
each reaches the check it is aimed at rather than stopping at the archive's integrity. With Debian's
python3-torch, it also writes TorchScript archives whose __setstate__ runs code as they load:
setstate_writes.pt (writes OUT_DIR/marker-refused), setstate_writes_demo.pt (writes
OUT_DIR/marker-torch-load, for the test that shows torch::load running it) and setstate_loops.pt.
"""
import json
import os
import struct
import sys
import zipfile
import zlib


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tensor(key="0", dtype="FloatStorage", numel=4, offset=0, size=(4,), stride=(1,), hooks=b"", location="cpu"):
    """_rebuild_tensor_v2 of a storage record data/<key>, as torch.save writes it (protocol 2)."""
    def ints(values):
        return b"(" + b"".join(integer(v) for v in values) + b"t"
    pid = b"(" + binunicode("storage") + glob("torch", dtype) + binunicode(key) + binunicode(location) + integer(numel) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + integer(offset) + ints(size) + ints(stride)
            + b"\x89" + glob("collections", "OrderedDict") + b")R" + hooks + b"tR")


def integer(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    return b"\x8a\x08" + struct.pack("<q", v)


def state_dict(*entries):
    """A plain dict of name -> pickled value."""
    return b"\x80\x02}(" + b"".join(binunicode(k) + v for k, v in entries) + b"u."


def archive(path, pickle, records=None, compress_pickle=False):
    records = {"data/0": b"\0" * 16} if records is None else records
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("archive/data.pkl"), pickle,
                   compress_type=zipfile.ZIP_DEFLATED if compress_pickle else zipfile.ZIP_STORED)
        for name, data in records.items():
            z.writestr(zipfile.ZipInfo("archive/" + name), data, compress_type=zipfile.ZIP_STORED)
        z.writestr(zipfile.ZipInfo("archive/version"), b"3\n")


def deflated_gigabyte(path):
    """data.pkl inflating to 1 GiB of zeros, about 1 MB on disk."""
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("archive/data.pkl")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 24)
            for _ in range(64):
                f.write(chunk)
        z.writestr(zipfile.ZipInfo("archive/version"), b"3\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = {}

    def case(name, expected, pickle, **kwargs):
        if pickle is not None:  # None: the file is written already
            archive(os.path.join(out, name + ".pt"), pickle, **kwargs)
        cases[name] = expected

    resume = {}

    def resume_case(name, pickle, **kwargs):
        if pickle is not None:  # None: the file is written already
            archive(os.path.join(out, "resume_" + name + ".pt"), pickle, **kwargs)
        resume[name] = "resume_" + name + ".pt"

    good = tensor()
    case("deep_nesting", "nested deeper than 64", b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".")
    case("deep_marks", "nested deeper than 64", b"\x80\x02" + b"(" * 100000 + b")" + b"t" * 100000 + b".")
    case("huge_storage_offset", "reaching element", state_dict(("w", tensor(offset=2**62))))
    case("huge_stride", "overflow", state_dict(("w", tensor(stride=(2**62,)))))
    case("tensor_larger_than_storage", "reaching element 999 of a storage of 4",
         state_dict(("w", tensor(size=(1000,)))))
    case("negative_size", "non-negative int", state_dict(("w", tensor(size=(-4,)))))
    case("storage_larger_than_record", "declares 1000000 elements",
         state_dict(("w", tensor(numel=1000000, size=(4,)))))
    case("storage_record_missing", "record data/7 is not in the archive", state_dict(("w", tensor(key="7"))))
    case("huge_memo_index", "never put", b"\x80\x02]r\xff\xff\xff\xffj\xfe\xff\xff\xff.")
    case("memo_flood", "budget of 64 MiB (it ran out on the pickle's memo)",
         b"\x80\x02]" + b"".join(b"r" + struct.pack("<I", i) for i in range(1100000)) + b".")
    case("cycle", "cycle", b"\x80\x02]q\x00h\x00a.")
    case("global_os_system", "os.system", b"\x80\x02" + glob("os", "system") + binunicode("touch x") + b"\x85R.")
    case("global_builtins_eval", "builtins.eval", b"\x80\x02" + glob("builtins", "eval") + binunicode("1") + b"\x85R.")
    case("unknown_opcode", "opcode 0xff", b"\x80\x02\xff.")
    case("string_past_end", "runs past the end", b"\x80\x02X\xff\xff\xff\x7fabc.")
    case("no_stop", "ends without STOP", b"\x80\x02}")
    case("backward_hooks", "backward hooks", state_dict(("w", tensor(hooks=binunicode("h") + integer(1) + b"s"))))
    case("storage_of_unknown_type", "which a weights file never needs",
         state_dict(("w", tensor(dtype="UntypedStorage"))))
    # A tensor record deflated, though torch never compresses.
    path = os.path.join(out, "compressed_tensor_record.pt")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("archive/data.pkl"), state_dict(("w", good)))
        z.writestr(zipfile.ZipInfo("archive/data/0"), b"\0" * 16, compress_type=zipfile.ZIP_DEFLATED)
    cases["compressed_tensor_record"] = "compressed"
    case("big_pickle", "more than any state dict's", b"\x80\x02N" + b"0" * (65 << 20) + b".")
    deflated_gigabyte(os.path.join(out, "deflated_gigabyte.pt"))
    cases["deflated_gigabyte"] = "compressed"

    import causes  # it builds on the helpers above
    causes.main(out, case, resume_case)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        write_torchscript(torch, out, cases)
        resume["setstate_writes"] = "setstate_writes.pt"  # writes marker-refused if anything runs it
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "resume_cases.json"), "w") as f:
        json.dump(resume, f, indent=1, sort_keys=True)


def write_torchscript(torch, out, cases):
    import warnings
    # Newer PyTorch deprecates TorchScript; an attacker's file is made with it all the same, and LibTorch's
    # torch::load still runs it.
    warnings.filterwarnings("ignore", category=FutureWarning)

    def module_whose_setstate(body):
        source = f'''
import torch
from typing import Tuple
class Planted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.zeros(2)

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0]
        self.training = state[1]
{body}
'''
        namespace = {}
        module_path = os.path.join(out, "_planted.py")
        with open(module_path, "w") as f:
            f.write(source)
        exec(compile(source, module_path, "exec"), namespace)
        return torch.jit.script(namespace["Planted"]())

    writes = "        torch.save(self.weight, {!r})"
    for name, marker in (("setstate_writes", "marker-refused"), ("setstate_writes_demo", "marker-torch-load")):
        m = module_whose_setstate(writes.format(os.path.join(out, marker)))
        torch.jit.save(m, os.path.join(out, name + ".pt"))
        cases[name] = "defines __setstate__"
    cases.pop("setstate_writes_demo")  # for the torch::load demonstration, not for the loader's table
    m = module_whose_setstate("        while True:\n            self.training = not self.training")
    torch.jit.save(m, os.path.join(out, "setstate_loops.pt"))
    cases["setstate_loops"] = "defines __setstate__"
    os.remove(os.path.join(out, "_planted.py"))


if __name__ == "__main__":
    main()
