"""The notebook's cells for "Capas con parámetros", reporting what lesson 05 reports."""
import argparse

import torch
from torch import nn
from torch.nn import functional as F

from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()


class MyLinear(nn.Module):
    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units,))

    def forward(self, X):
        # The notes write self.weight.data and self.bias.data here; the lesson explains why it should not.
        linear = torch.matmul(X, self.weight) + self.bias
        return F.relu(linear)


linear = MyLinear(5, 3)
v["weight"] = linear.weight
v["names"] = names(linear)
v["out"] = linear(torch.rand(2, 5))
net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
v["net_out"] = net(torch.rand(2, 64))
v.dump()
