"""Lesson 03's Python twin: the notebook's cells for "Ejecutando código en la función de propagación
directa"."""
import torch

from parity import names, options, show

torch.manual_seed(options.seed)
X = torch.rand(2, 20)  # the X of the notebook's first cell


# %% Ejecutando código en la función de propagación directa: la clase FixedHiddenMLP
import torch
from torch import nn
from torch.nn import functional as F


class FixedHiddenMLP(nn.Module):
    def __init__(self):
        super().__init__()
        # Random weight parameters that will not compute gradients and
        # therefore keep constant during training
        self.rand_weight = torch.rand((20, 20), requires_grad=False)
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        # Use the created constant parameters, as well as the `relu` and `mm`
        # functions
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        # Reuse the fully-connected layer. This is equivalent to sharing
        # parameters with two fully-connected layers
        X = self.linear(X)
        # Control flow
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


# %% Ejecutando código en la función de propagación directa: net = FixedHiddenMLP()
net = FixedHiddenMLP()
show("net(X)", net(X))
show("net(X).dim()", net(X).dim())
show("parameter names (rand_weight is not one)", names(net))


# %% Ejecutando código en la función de propagación directa: NestMLP y chimera
class NestMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))


chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())
show("chimera(X)", chimera(X))
show("chimera parameter names", names(chimera))
