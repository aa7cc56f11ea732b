"""The notebook's cells for "Bloques" and "Un bloque personalizado", reporting what lesson 01 reports."""
import argparse

import torch
from torch import nn

from notes_models import MLP
from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()

net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
X = torch.rand(2, 20)
v["X_shape"] = X.shape
out = net(X)
v["sequential_out_shape"] = out.shape
v["sequential_out"] = out
v["sequential_names"] = names(net)


net = MLP()
out = net(X)
v["mlp_out_shape"] = out.shape
v["mlp_out"] = out
v["mlp_names"] = names(net)
v["mlp_parameter_count"] = sum(p.numel() for p in net.parameters())
v["call_equals_forward"] = torch.equal(net(X), net.forward(X))
net2 = MLP()
v["two_instances_differ"] = not torch.equal(net(X), net2(X))
v.dump()
