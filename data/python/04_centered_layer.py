"""Lesson 04's Python twin: the notebook's cells for "Capas sin Parámetros"."""
import torch

from parity import names, options, show

torch.manual_seed(options.seed)


# %% Capas sin Parámetros: la clase CenteredLayer
import torch
import torch.nn.functional as F
from torch import nn


class CenteredLayer(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, X):
        return X - X.mean()


# %% Capas sin Parámetros: layer(...)
layer = CenteredLayer()
show("layer(torch.FloatTensor([1, 2, 3, 4, 5]))", layer(torch.FloatTensor([1, 2, 3, 4, 5])))
show("parameters of the layer", len(list(layer.parameters())))

# %% Capas sin Parámetros: net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
show("parameter names of net (only the Linear's)", names(net))

# %% Capas sin Parámetros: Y.mean()
Y = net(torch.rand(4, 8))
show("Y.shape", Y.shape)
show("Y.mean()", Y.mean())
