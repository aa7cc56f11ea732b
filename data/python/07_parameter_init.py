"""The notebook's cells for "Inicialización de parámetros", reporting what lesson 07 reports."""
import argparse

import torch
from torch import nn

from parity import Values

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()

net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
v["default_weight0"] = net[0].weight.data[0]


def init_normal(m):
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


net.apply(init_normal)
v["normal_weight0"] = net[0].weight.data[0]
v["normal_bias0"] = net[0].bias.data[0]


def init_constant(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 1)
        nn.init.zeros_(m.bias)


net.apply(init_constant)
v["constant_weight0"] = net[0].weight.data[0]
v["constant_bias0"] = net[0].bias.data[0]


def xavier(m):
    if type(m) == nn.Linear:
        nn.init.xavier_uniform_(m.weight)


def init_42(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 42)


net[0].apply(xavier)
net[2].apply(init_42)
v["xavier_weight0"] = net[0].weight.data[0]
v["const42_weight"] = net[2].weight.data


def my_init(m):
    if type(m) == nn.Linear:
        nn.init.uniform_(m.weight, -10, 10)
        m.weight.data *= m.weight.data.abs() >= 5


net.apply(my_init)
v["my_init_weight_rows"] = net[0].weight[:2]
net[0].weight.data[:] += 1
net[0].weight.data[0, 0] = 42
v["direct_weight0"] = net[0].weight.data[0]
v.dump()
