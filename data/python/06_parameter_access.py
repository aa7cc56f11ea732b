"""The notebook's cells for "Gestión de parámetros" (access, indexing, all at once, nested blocks),
reporting what lesson 06 reports."""
import argparse

import torch
from torch import nn

from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()

net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
X = torch.rand(size=(2, 4))
v["out"] = net(X)
v["layer2_names"] = names(net[2])
v["bias"] = net[2].bias.data
v["bias_requires_grad"] = net[2].bias.requires_grad
v["weight_grad_defined"] = net[2].weight.grad is not None
v["layer0_names"] = names(net[0])
v["names"] = names(net)
v["bias_by_name"] = net.state_dict()["2.bias"].data


def block1():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


def block2():
    net = nn.Sequential()
    for i in range(4):
        net.add_module(f"block{i}", block1())
    return net


rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
v["rgnet_out"] = rgnet(X)
v["rgnet_names"] = names(rgnet)
v["rgnet_bias"] = rgnet[0][1][0].bias.data
v.dump()
