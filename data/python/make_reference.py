"""Makes the reference files in data/reference/ with Python's PyTorch (python3-torch 1.13).

    python3 data/python/make_reference.py

mlp_state.pt   the notes' MLP (hidden = Linear(20, 256), output = Linear(256, 10)) made with seed 0, saved
               as a plain dict, as C++ can read it: torch.save(dict(net.state_dict()), path)
X.pt, Y.pt     an input made right after it, and Python's output on it
sequential_mlp_seed0.pt  nn.Sequential(Linear(20, 256), ReLU(), Linear(256, 10)) made right after
               torch.manual_seed(0), as a plain dict: the weights lesson 01 must reproduce
The rest are files C++ must refuse, each with a clear error:
mlp_ordered.pt torch.save(net.state_dict()): an OrderedDict, which LibTorch cannot unpickle
mlp_double.pt  the same parameters as float64
one_entry.pt   a dict with a single tensor (pickled with SETITEM, which LibTorch 1.13 cannot read)
"""
import os

import torch
from torch import nn

from notes_models import FileIoMLP as MLP  # "Archivos de E/S": hidden, then output

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference")


torch.manual_seed(0)
sequential = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
torch.save(dict(sequential.state_dict()), os.path.join(out, "sequential_mlp_seed0.pt"))

torch.manual_seed(0)
net = MLP()
X = torch.randn(size=(2, 20))
Y = net(X).detach()
torch.save(dict(net.state_dict()), os.path.join(out, "mlp_state.pt"))
torch.save(X, os.path.join(out, "X.pt"))
torch.save(Y, os.path.join(out, "Y.pt"))
torch.save(net.state_dict(), os.path.join(out, "mlp_ordered.pt"))
torch.save({k: v.double() for k, v in net.state_dict().items()}, os.path.join(out, "mlp_double.pt"))
torch.save({"hidden.weight": net.hidden.weight.detach()}, os.path.join(out, "one_entry.pt"))
