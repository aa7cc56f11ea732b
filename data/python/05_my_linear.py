"""Lesson 05's Python twin: the notebook's cells for "Capas con parámetros"."""
import torch

from parity import cpp_only, names, options, show

torch.manual_seed(options.seed)


# %% Capas con parámetros: la clase MyLinear
import torch
import torch.nn.functional as F
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units,))

    def forward(self, X):
        linear = torch.matmul(X, self.weight.data) + self.bias.data
        return F.relu(linear)


# %% Capas con parámetros: linear = MyLinear(5, 3)
linear = MyLinear(5, 3)
show("linear.weight", linear.weight)
show("parameter names", names(linear))

# %% Capas con parámetros: linear(torch.rand(2, 5))
show("linear(torch.rand(2, 5))", linear(torch.rand(2, 5)))

# %% Capas con parámetros: net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
show("net(torch.rand(2, 64))", net(torch.rand(2, 64)))

# %% Más allá del cuaderno: weight.data dentro de forward
# Through .data the output is cut out of autograd: backward() could never reach the parameters.
show("output through weight.data requires grad", linear(torch.rand(2, 5)).requires_grad)
# The C++ lesson's MyLinear computes through the parameters themselves, so its output does.
cpp_only("MyLinear output requires grad")
