"""The notebook's blocks, as its cells define them, shared by the lessons' Python twins and by the
benchmark (scripts/bench/bench_python.py)."""
import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    """"Un bloque personalizado" (lesson 01)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


class MySequential(nn.Module):
    """"El Bloque Sequential" (lesson 02)."""

    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            self._modules[str(idx)] = module

    def forward(self, X):
        for block in self._modules.values():
            X = block(X)
        return X


class FixedHiddenMLP(nn.Module):
    """"Ejecutando código en la función de propagación directa" (lesson 03)."""

    def __init__(self):
        super().__init__()
        self.rand_weight = torch.rand((20, 20), requires_grad=False)
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


class MyLinear(nn.Module):
    """"Capas con parámetros" (lesson 05)."""

    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units,))

    def forward(self, X):
        # The notes write self.weight.data and self.bias.data here; lesson 05 explains why it should not.
        linear = torch.matmul(X, self.weight) + self.bias
        return F.relu(linear)
