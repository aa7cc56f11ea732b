"""Lesson 06's Python twin: the notebook's cells for "Gestión de parámetros": "Acceso a parámetros",
"Indexado de parámetros", "Todos los parámetros a la vez" and "Recopilación de parámetros de bloques
anidados"."""
import torch

from parity import names, options, show

torch.manual_seed(options.seed)

# %% Gestión de parámetros
import torch
from torch import nn

net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
X = torch.rand(size=(2, 4))
show("net(X)", net(X))

# %% Acceso a parámetros
print(net[2].state_dict())
show("net[2] parameter names", names(net[2]))

# %% Indexado de parámetros
print(type(net[2].bias))
print(net[2].bias)
print(net[2].bias.data)
show("net[2].bias.data", net[2].bias.data)
show("net[2].bias.requires_grad", net[2].bias.requires_grad)

# %% Indexado de parámetros: net[2].weight.grad == None
show("net[2].weight.grad == None", net[2].weight.grad == None)  # noqa: E711 (the notebook's comparison)

# %% Todos los parámetros a la vez
print(*[(name, param.shape) for name, param in net[0].named_parameters()])
print(*[(name, param.shape) for name, param in net.named_parameters()])
show("net[0] parameter names", names(net[0]))
show("net parameter names", names(net))

# %% Todos los parámetros a la vez: net.state_dict()['2.bias'].data
show("net.state_dict()['2.bias'].data", net.state_dict()['2.bias'].data)


# %% Recopilación de parámetros de bloques anidados
def block1():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                         nn.Linear(8, 4), nn.ReLU())


def block2():
    net = nn.Sequential()
    for i in range(4):
        net.add_module(f'block{i}', block1())
    return net


rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
show("rgnet(X)", rgnet(X))

# %% Recopilación de parámetros de bloques anidados: print(rgnet)
print(rgnet)
show("rgnet parameter names", names(rgnet))

# %% Recopilación de parámetros de bloques anidados: rgnet[0][1][0].bias.data
show("rgnet[0][1][0].bias.data", rgnet[0][1][0].bias.data)
