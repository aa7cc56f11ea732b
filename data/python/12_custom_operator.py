"""Lesson 12's Python twin: the C++ operator from Python. The library the build made (build/lib/
libmodelos_ops.so, or $MP_OPS_LIBRARY) registers modelos::linear_relu with PyTorch's dispatcher when it is
loaded; Python then calls it as torch.ops.modelos.linear_relu, checks it and compiles it."""
import os
import sys

import torch
from torch import nn

from parity import options, show

torch.manual_seed(options.seed)
library = os.environ.get("MP_OPS_LIBRARY") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "lib", "libmodelos_ops.so")
if not os.path.exists(library):
    sys.exit(f"error: {library} does not exist; build the suite first (scripts/build.sh), or set MP_OPS_LIBRARY")

# %% Un nuevo operador: registrado en el despachador
torch.ops.load_library(library)
linear_relu = torch.ops.modelos.linear_relu
show("schema", str(linear_relu.default._schema))
for key in ["CPU", "CUDA", "Meta", "Autograd"]:
    show(f"kernel for {key}", torch._C._dispatch_has_kernel_for_dispatch_key("modelos::linear_relu", key))


# %% Un nuevo operador: relu(X W + b) a través del despachador
class FusedLinear(nn.Module):
    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units))

    def forward(self, X):
        return linear_relu(X, self.weight, self.bias)


layer = FusedLinear(5, 3)
X = torch.rand(2, 5).requires_grad_(True)
out = layer(X)
show("FusedLinear(5, 3)(rand(2, 5))", out)
reference = torch.relu(X.matmul(layer.weight) + layer.bias)
show("equal to the composite relu(X.matmul(W) + b) (atol 1e-6)", torch.allclose(out, reference, 1e-5, 1e-6))
# C++ also applies its autograd::Function directly; Python reaches the same Function through the op.
show("LinearReluFunction::apply gives the same", torch.equal(linear_relu(X, layer.weight, layer.bias), out))

# %% Un nuevo operador: su backward, escrito a mano, contra el de autograd
out.sum().backward()
grads = [X.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()]
X.grad = None
layer.zero_grad()
torch.relu(X.matmul(layer.weight) + layer.bias).sum().backward()
for name, mine, theirs in zip(["X", "weight", "bias"], grads, [X.grad, layer.weight.grad, layer.bias.grad]):
    show(f"d/d{name}", mine)
    show(f"d/d{name} hand-written equals autograd's (atol 1e-6)", torch.allclose(mine, theirs, 1e-5, 1e-6))

# %% Un nuevo operador: la prueba del gradiente con diferencias finitas
Xd = torch.rand(4, 5, dtype=torch.double, requires_grad=True)
Wd = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
bd = torch.randn(3, dtype=torch.double, requires_grad=True)
show("gradient check passed", torch.autograd.gradcheck(linear_relu, (Xd, Wd, bd), eps=1e-6, atol=1e-5))

# %% Un nuevo operador: desde Python, opcheck y torch.compile
# Here Python goes further than the C++ cell can: torch.library.opcheck tests the registration (schema,
# autograd kernel, the Meta kernel under fake tensors, a traced backward), and torch.compile traces the
# operator without a graph break. Both need PyTorch 2.x; tests/operator_from_python.py checks them.
if hasattr(torch, "library") and hasattr(torch.library, "opcheck"):
    inputs = (torch.randn(3, 5, requires_grad=True), torch.randn(5, 4, requires_grad=True),
              torch.randn(4, requires_grad=True))
    print("torch.library.opcheck:", torch.library.opcheck(linear_relu.default, inputs))
else:
    print(f"torch.library.opcheck needs PyTorch 2.4 or later; this is {torch.__version__}, so the gradient "
          "check above stands in for it")
if hasattr(torch, "compile"):
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    print("torch.compile(fullgraph=True) gives the same:", torch.equal(compiled(X), layer(X)))
else:
    print(f"torch.compile needs PyTorch 2.0 or later; this is {torch.__version__}")
