"""The notebook's cells for "Ejecutando código en la función de propagación directa", reporting what
lesson 03 reports."""
import argparse

import torch
from torch import nn

from notes_models import FixedHiddenMLP
from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()


class NestMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))


X = torch.rand(2, 20)
net = FixedHiddenMLP()
out = net(X)
v["out"] = out
v["out_dim"] = out.dim()
v["names"] = names(net)
chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())
v["chimera_out"] = chimera(X)
v["chimera_names"] = names(chimera)
v.dump()
