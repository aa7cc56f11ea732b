"""Lesson 09's Python twin: the notebook's cells for "Archivos de E/S"."""
import os
import tempfile

import torch

from parity import options, same_bytes, show

torch.manual_seed(options.seed)
os.chdir(tempfile.mkdtemp())  # the notebook writes its files into the working folder

# %% Cargando y guardando tensores: torch.save(x, 'x-file')
import torch
from torch import nn
from torch.nn import functional as F

x = torch.arange(4)
torch.save(x, 'x-file')

# %% Cargando y guardando tensores: x2 = torch.load('x-file')
x2 = torch.load('x-file')
show("x2", x2)

# %% Cargando y guardando tensores: una lista de tensores
y = torch.zeros(4)
torch.save([x, y], 'x-files')
x2, y2 = torch.load('x-files')
show("(x2, y2)[0]", x2)
show("(x2, y2)[1]", y2)

# %% Cargando y guardando tensores: un diccionario
mydict = {'x': x, 'y': y}
torch.save(mydict, 'mydict')
mydict2 = torch.load('mydict')
show("mydict2['x']", mydict2['x'])
show("mydict2['y']", mydict2['y'])


# %% Cargar y guardar parámetros del modelo: la clase MLP
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.output = nn.Linear(256, 10)

    def forward(self, x):
        return self.output(F.relu(self.hidden(x)))


# %% Cargar y guardar parámetros del modelo: net = MLP()
net = MLP()
X = torch.randn(size=(2, 20))
Y = net(X)
show("Y", Y)

# %% Cargar y guardar parámetros del modelo: torch.save(net.state_dict(), 'mlp.params')
torch.save(net.state_dict(), 'mlp.params')

# %% Cargar y guardar parámetros del modelo: clone.load_state_dict(...)
clone = MLP()
show("a fresh MLP gives another output before loading", not torch.equal(clone(X), Y))
clone.load_state_dict(torch.load('mlp.params'))
clone.eval()

# %% Cargar y guardar parámetros del modelo: Y_clone == Y
Y_clone = clone(X)
print(Y_clone == Y)
show("torch.equal(Y_clone, Y)", torch.equal(Y_clone, Y))

# %% Más allá: safetensors
# A safetensors file is a header (names, dtypes, shapes) and the bytes: nothing in it runs, and the
# Hugging Face hub, diffusers and vLLM read it. It has no checksum: a flipped bit loads as a wrong value.
from safetensors.torch import load_file, save_file

save_file(net.state_dict(), 'mlp.safetensors')
clone2 = MLP()
clone2.load_state_dict(load_file('mlp.safetensors'))
clone2.eval()
show("torch.equal(clone2(X), Y)", torch.equal(clone2(X), Y))
same_bytes('mlp.safetensors')  # the C++ lesson's file holds the same bytes

# %% Más allá del cuaderno: archivos para Python (solo C++)
# Only the C++ lesson has this cell: it writes x, [x, y], {'x': x, 'y': y} and X in torch.save's format,
# which Python already writes above, for torch.load(path, weights_only=True) to open.

# %% Más allá del cuaderno: parámetros de otro lado con --load (solo C++)
# Only the C++ lesson has this cell: it loads the MLP's parameters from a file named with --load, as data.
