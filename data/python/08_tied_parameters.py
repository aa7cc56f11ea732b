"""Lesson 08's Python twin: the notebook's cells for "Parámetros vinculados"."""
import torch
from torch import nn

from parity import cpp_only, names, options, show

torch.manual_seed(options.seed)

# %% Parámetros vinculados
# We need to give the shared layer a name so that we can refer to its
# parameters
shared = nn.Linear(8, 8)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                    shared, nn.ReLU(),
                    shared, nn.ReLU(),
                    nn.Linear(8, 1))
X = torch.rand(2, 4)
show("net(X)", net(X))
# Check whether the parameters are the same
print(net[2].weight.data[0] == net[4].weight.data[0])
show("net[2].weight.data[0] == net[4].weight.data[0]", net[2].weight.data[0] == net[4].weight.data[0])
net[2].weight.data[0, 0] = 100
# Make sure that they are actually the same object rather than just having the
# same value
print(net[2].weight.data[0] == net[4].weight.data[0])
show("after the write: net[2].weight.data[0] == net[4].weight.data[0]",
     net[2].weight.data[0] == net[4].weight.data[0])
show("net[2].weight is net[4].weight", net[2].weight is net[4].weight)

# %% Más allá del cuaderno: parameters() y el peso compartido
# Python lists a shared parameter once: what common::unique_parameters gives in C++.
show("unique parameters", len(list(net.parameters())))
show("unique parameter names", names(net))
# LibTorch's parameters() lists the shared weight under both names (8 entries, not 6).
cpp_only("net->parameters().size()", "named_parameters() names")
