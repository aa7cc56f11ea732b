"""Lesson 02's Python twin: the notebook's cells for "El Bloque Sequential"."""
import torch

from parity import names, options, show

torch.manual_seed(options.seed)


# %% El Bloque Sequential: la clase MySequential
import torch
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            self._modules[str(idx)] = module

    def forward(self, X):
        for block in self._modules.values():
            X = block(X)
        return X


# %% El Bloque Sequential: net = MySequential(...)
net = MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
X = torch.rand(2, 20)
show("net(X)", net(X))
show("net(X).shape", net(X).shape)
show("parameter names", names(net))


# %% Más allá del cuaderno: MySequential es Sequential
reference = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
reference.load_state_dict(net.state_dict())
show("nn.Sequential with the same weights gives the same output", torch.equal(reference(X), net(X)))


def init(m):
    if type(m) == nn.Linear:
        with torch.no_grad():
            m.weight.fill_(0.01)


net.apply(init)
show("apply() set every Linear's weight to 0.01",
     bool((net._modules["0"].weight == 0.01).all() and (net._modules["2"].weight == 0.01).all()))


# %% Más allá del cuaderno: bloques sin registrar
class Unregistered(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.blocks = list(args)  # a plain list: the framework never sees these blocks

    def forward(self, X):
        for block in self.blocks:
            X = block(X)
        return X


unregistered = Unregistered(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
show("unregistered(X).shape", unregistered(X).shape)
show("parameters() of the unregistered chain", len(list(unregistered.parameters())))
show("entries its state dict would save", len(unregistered.state_dict()))
