"""The notebook's cells for "El Bloque Sequential", reporting what lesson 02 reports."""
import argparse

import torch
from torch import nn

from notes_models import MySequential
from parity import Values, names

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()


net = MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
X = torch.rand(2, 20)
out = net(X)
v["out_shape"] = out.shape
v["out"] = out
v["names"] = names(net)
reference = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
reference.load_state_dict(net.state_dict())
v["same_as_sequential"] = torch.equal(reference(X), out)


def init(m):
    if type(m) == nn.Linear:
        with torch.no_grad():
            m.weight.fill_(0.01)


net.apply(init)
v["init_reached_every_layer"] = bool((net._modules["0"].weight == 0.01).all() and (net._modules["2"].weight == 0.01).all())


class Unregistered(nn.Module):
    """The same mistake in Python: blocks kept in a plain list are invisible to the framework."""

    def __init__(self, *args):
        super().__init__()
        self.blocks = list(args)


unregistered = Unregistered(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
v["unregistered_parameters"] = len(list(unregistered.parameters()))
v["unregistered_state_entries"] = len(unregistered.state_dict())
v.dump()
