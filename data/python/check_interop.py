"""Opens in Python what lesson 09 wrote for Python, and checks it against the lesson's own values.

usage: check_interop.py OUT_DIR
Exit status 0 when Python's MLP with the C++ state dict reproduces the C++ output Y (within 1e-6) and
x-file.pt, x-files.pt and mydict.pt hold the lesson's tensors, all opened with weights_only=True, and
Python's torch.save writes the same data.pkl for the values it read; 1 otherwise, saying what differs.
"""
import io
import os
import sys
import zipfile
from collections import OrderedDict

import torch

from notes_models import FileIoMLP as MLP  # "Archivos de E/S": hidden, then output


def data_pkl(file):
    with zipfile.ZipFile(file) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


def main():
    d = sys.argv[1]
    # weights_only=True: the loader that runs nothing from the file (the default since PyTorch 2.6).
    load = lambda name: torch.load(os.path.join(d, name), weights_only=True)  # noqa: E731
    problems = []
    state = load("mlp.params")
    if type(state) is not OrderedDict or list(state) != ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]:
        problems.append(f"mlp.params: expected an OrderedDict with the four MLP keys, as model.state_dict() "
                        f"returns, got {type(state).__name__} {list(state)}")
    net = MLP()
    net.load_state_dict(state)
    net.eval()
    Y = net(load("X.pt")).detach()
    if not torch.allclose(Y, load("Y.pt"), rtol=0, atol=1e-6):
        problems.append(f"Python's MLP with mlp.params gives {Y}, C++ wrote {load('Y.pt')}")
    x = torch.arange(4)
    y = torch.zeros(4)
    if not torch.equal(load("x-file.pt"), x):
        problems.append(f"x-file.pt holds {load('x-file.pt')}")
    xs = load("x-files.pt")
    if len(xs) != 2 or not torch.equal(xs[0], x) or not torch.equal(xs[1], y):
        problems.append(f"x-files.pt holds {xs}")
    mydict = load("mydict.pt")
    if sorted(mydict) != ["x", "y"] or not torch.equal(mydict["x"], x) or not torch.equal(mydict["y"], y):
        problems.append(f"mydict.pt holds {mydict}")
    # Byte for byte: what Python's own torch.save writes for the values it just read is the pickle the
    # C++ writer wrote (records may lie elsewhere in the zip; the pickle is the format).
    for name in ("mlp.params", "X.pt", "Y.pt", "x-file.pt", "x-files.pt", "mydict.pt"):
        ours = data_pkl(os.path.join(d, name))
        buffer = io.BytesIO()
        torch.save(load(name), buffer)
        theirs = data_pkl(buffer)
        if ours != theirs:
            problems.append(f"{name}: its data.pkl differs from what Python's torch.save writes for the same values:\n"
                            f"  C++:    {ours!r}\n  Python: {theirs!r}")
    for p in problems:
        print(p)
    if not problems:
        print("Python read mlp.params, X.pt, Y.pt, x-file.pt, x-files.pt and mydict.pt with weights_only=True, "
              "reproduced the C++ values, and its torch.save writes the same pickles")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
