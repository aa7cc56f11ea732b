"""The notebook's cells for "Capas sin Parámetros", reporting what lesson 04 reports."""
import argparse

import torch
from torch import nn

from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()


class CenteredLayer(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, X):
        return X - X.mean()


layer = CenteredLayer()
v["centered"] = layer(torch.FloatTensor([1, 2, 3, 4, 5]))
v["layer_parameters"] = len(list(layer.parameters()))
net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
Y = net(torch.rand(4, 8))
v["Y_shape"] = Y.shape
v["Y_mean"] = Y.mean()
v["names"] = names(net)
v.dump()
