"""The notebook's cells for "Capas con parámetros", reporting what lesson 05 reports."""
import argparse

import torch
from torch import nn

from notes_models import MyLinear
from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()


linear = MyLinear(5, 3)
v["weight"] = linear.weight
v["names"] = names(linear)
v["out"] = linear(torch.rand(2, 5))
net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
v["net_out"] = net(torch.rand(2, 64))
v.dump()
