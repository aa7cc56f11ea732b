"""Lesson 01's Python twin: the notebook's cells for "Bloques" and "Un bloque personalizado"."""
import torch

from parity import names, options, show

torch.manual_seed(options.seed)

# %% Bloques
import torch
from torch import nn
from torch.nn import functional as F

net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))

X = torch.rand(2, 20)
show("X.shape", X.shape)
show("net(X)", net(X))
show("net(X).shape", net(X).shape)
show("Sequential parameter names", names(net))


# %% Un bloque personalizado: la clase MLP
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


# %% Un bloque personalizado: net = MLP()
net = MLP()
show("MLP net(X)", net(X))
show("MLP net(X).shape", net(X).shape)
show("MLP parameter names", names(net))
show("MLP parameter count", sum(p.numel() for p in net.parameters()))
# net(X) is shorthand for net.__call__(X), which runs forward.
show("net(X) equals net.forward(X)", torch.equal(net(X), net.forward(X)))
# Each instance owns its layers: a second MLP is a second model.
net2 = MLP()
show("a second MLP gives another output", not torch.equal(net(X), net2(X)))
