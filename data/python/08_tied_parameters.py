"""The notebook's cells for "Parámetros vinculados", reporting what lesson 08 reports. Python's
parameters() lists the shared layer once; the C++-only keys are the lesson's point about LibTorch."""
import argparse

import torch
from torch import nn

from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()

shared = nn.Linear(8, 8)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
X = torch.rand(2, 4)
v["out"] = net(X)
v["rows_equal"] = net[2].weight.data[0] == net[4].weight.data[0]
net[2].weight.data[0, 0] = 100
v["rows_equal_after_write"] = net[2].weight.data[0] == net[4].weight.data[0]
v["same_tensor"] = net[2].weight is net[4].weight
# Python lists each parameter once: what common::unique_parameters gives in C++.
v["unique_parameters_count"] = len(list(net.parameters()))
v["unique_names"] = names(net)
# LibTorch lists the shared weight under both names (8 entries, not 6): no Python counterpart.
v["CPP_ONLY"] = ["parameters_count", "names"]
v.dump()
