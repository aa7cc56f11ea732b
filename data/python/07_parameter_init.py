"""Lesson 07's Python twin: the notebook's cells for "Inicialización de parámetros"."""
import torch
from torch import nn

from parity import options, show

torch.manual_seed(options.seed)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))  # the net of "Gestión de parámetros"


# %% Inicialización integrada: init_normal
def init_normal(m):
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


show("net[0].weight.data[0] before", net[0].weight.data[0])
net.apply(init_normal)
show("init_normal: net[0].weight.data[0]", net[0].weight.data[0])
show("init_normal: net[0].bias.data[0]", net[0].bias.data[0])


# %% Inicialización integrada: init_constant
def init_constant(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 1)
        nn.init.zeros_(m.bias)


net.apply(init_constant)
show("init_constant: net[0].weight.data[0]", net[0].weight.data[0])
show("init_constant: net[0].bias.data[0]", net[0].bias.data[0])


# %% Inicialización integrada: xavier e init_42
def xavier(m):
    if type(m) == nn.Linear:
        nn.init.xavier_uniform_(m.weight)


def init_42(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 42)


net[0].apply(xavier)
net[2].apply(init_42)
print(net[0].weight.data[0])
print(net[2].weight.data)
show("xavier: net[0].weight.data[0]", net[0].weight.data[0])
show("init_42: net[2].weight.data", net[2].weight.data)


# %% Inicialización personalizada: my_init
def my_init(m):
    if type(m) == nn.Linear:
        print("Init", *[(name, param.shape)
                        for name, param in m.named_parameters()][0])
        nn.init.uniform_(m.weight, -10, 10)
        m.weight.data *= m.weight.data.abs() >= 5


net.apply(my_init)
show("my_init: net[0].weight[:2]", net[0].weight[:2])

# %% Inicialización personalizada: asignación directa
net[0].weight.data[:] += 1
net[0].weight.data[0, 0] = 42
show("net[0].weight.data[0]", net[0].weight.data[0])

# %% Más allá del cuaderno: cómo queda cada inicialización
# The weights of a Linear(100, 100) after each initialiser, as histograms.
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

wide = nn.Linear(100, 100)
fig, axes = plt.subplots(1, 4, figsize=(12, 2.6), sharey=True)
for ax, (title, init) in zip(axes, [("por defecto", None), ("init_normal", init_normal),
                                    ("xavier", xavier), ("my_init", my_init)]):
    if init is not None:
        wide.apply(init)
    show(f"Linear(100, 100) weight, {title}", wide.weight.data)
    ax.hist(wide.weight.data.flatten().numpy(), bins=40, color="#3b6ea8")
    ax.set_title(title)
fig.tight_layout()
