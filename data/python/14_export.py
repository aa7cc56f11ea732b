"""Lesson 14's Python twin: a model from Python run from C++ without writing its class again. torch.export
captures the notes' MLP as a graph, AOTInductor compiles the graph into a package (.pt2), and the C++
lesson runs the package.

With --package-dir DIR (the build passes build/data/14_export) the twin leaves there what the C++ lesson
reads: the packages, the MLP's parameters, the inputs and Python's eager outputs, and what torch.export said
about FixedHiddenMLP. Without it, it works in a temporary folder, as a learner running it would."""
import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile

import torch

from notes_models import FileIoMLP as MLP
from notes_models import FixedHiddenMLP
from parity import options, show


def package_folder():
    """Where the packages go: --package-dir (the build passes build/data/14_export), else a temporary folder
    removed at exit. PyTorch before 2.6 has no AOTInductor packages: an error line, then exit."""
    if not hasattr(torch, "export") or not hasattr(torch._inductor, "aoti_compile_and_package"):
        sys.exit(f"error: torch.export and AOTInductor packages need PyTorch 2.6 or later; this is {torch.__version__}")
    parser = argparse.ArgumentParser()
    parser.add_argument("--package-dir")
    folder = parser.parse_known_args()[0].package_dir
    if not folder:
        folder = tempfile.mkdtemp()
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    return folder


package_dir = package_folder()
torch.manual_seed(options.seed)

# %% Exportar el MLP: un grafo, con el lote como dimensión dinámica
net = MLP()
X = torch.randn(size=(2, 20))
Y = net(X)
show("Y = net(X)", Y)
batch = torch.export.Dim("batch", min=1, max=1024)
exported = torch.export.export(net, (X,), dynamic_shapes=({0: batch},))
print(exported.graph_module.code.strip())

# %% Compilar con AOTInductor: un paquete .pt2
path = torch._inductor.aoti_compile_and_package(exported, package_path=os.path.join(package_dir, "mlp.pt2"))
compiled = torch._inductor.aoti_load_package(path)
show("the package was compiled for", compiled.get_metadata()["AOTI_DEVICE_KEY"])
# What C++ compares with: the parameters (lesson 09's way), the inputs, and the eager outputs.
X1, X64 = torch.randn(size=(1, 20)), torch.randn(size=(64, 20))
with torch.no_grad():
    eager = {"X": X, "Y": Y.detach(), "X1": X1, "Y1": net(X1), "X64": X64, "Y64": net(X64)}
torch.save(net.state_dict(), os.path.join(package_dir, "mlp.params"))

# %% Ejecutar el paquete desde C++
# The same package, run from Python; C++ loads it with torch::inductor::AOTIModelPackageLoader.
for name, (inputs, expected) in {"X": (X, Y), "X1": (X1, eager["Y1"]), "X64": (X64, eager["Y64"])}.items():
    out = compiled(inputs)
    show(f"package({name})", out)
    show(f"package({name}) equals Python's eager output (rtol 1e-5, atol 1e-5)",
         torch.allclose(out, expected, rtol=1e-5, atol=1e-5))

# %% La manera de la lección 09: la clase escrita otra vez y el state dict
clone = MLP()
clone.load_state_dict(torch.load(os.path.join(package_dir, "mlp.params")))
clone.eval()
Y_clone = clone(X)
show("Y_clone == Y", bool((Y_clone == Y).all()))

# %% Lo que export no puede capturar: el bucle de FixedHiddenMLP
fixed = FixedHiddenMLP()
X_fixed = torch.rand(2, 20)
try:
    torch.export.export(fixed, (X_fixed,))
    said = "nothing: it exported"
except Exception as e:  # the notebook would show the error; the lesson shows its first line
    said = f"{type(e).__name__}: {str(e).splitlines()[0]}"
show("torch.export says", said)


# The loop halves X while the sum of |X| exceeds 1. Halving is exact in floating point, and float32 holds no
# finite sum of 2^128 or more, so 128 halvings, each kept only where the sum still exceeds 1, do what the
# loop does for every finite X, without data-dependent control flow.
class BoundedFixedHiddenMLP(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.linear = net.linear
        self.register_buffer("rand_weight", net.rand_weight)  # a buffer, so that export keeps it

    def forward(self, X):
        X = self.linear(X)
        X = torch.relu(torch.mm(X, self.rand_weight) + 1)
        X = self.linear(X)
        for _ in range(128):
            X = torch.where(X.abs().sum() > 1, X / 2, X)
        return X.sum()


bounded = BoundedFixedHiddenMLP(fixed)
fixed_path = torch._inductor.aoti_compile_and_package(torch.export.export(bounded, (X_fixed,)),
                                                      package_path=os.path.join(package_dir, "fixed_hidden_mlp.pt2"))
with torch.no_grad():
    eager.update({"X_fixed": X_fixed, "Y_fixed": fixed(X_fixed)})
    out = torch._inductor.aoti_load_package(fixed_path)(X_fixed)
show("bounded package(X)", out)
show("bounded package(X) equals the while loop's output (rtol 1e-5, atol 1e-5)",
     torch.allclose(out, eager["Y_fixed"], rtol=1e-5, atol=1e-5))

# %% El operador de la lección 12 dentro de un paquete
# Lesson 12's library registers modelos::linear_relu with the dispatcher. A model that calls it exports like
# any other: the package calls the operator by name, so whoever runs the package must load the library first
# (the C++ lesson links it). The model is the MLP above with its hidden layer and ReLU fused into the
# operator, with the MLP's own weights.
torch.ops.load_library(os.environ.get("MP_OPS_LIBRARY") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "lib", "libmodelos_ops.so"))


class FusedMLP(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.weight = torch.nn.Parameter(net.hidden.weight.detach().t().contiguous())
        self.bias = torch.nn.Parameter(net.hidden.bias.detach().clone())
        self.output = net.output

    def forward(self, X):
        return self.output(torch.ops.modelos.linear_relu(X, self.weight, self.bias))


fused_path = torch._inductor.aoti_compile_and_package(
    torch.export.export(FusedMLP(net), (X,), dynamic_shapes=({0: batch},)),
    package_path=os.path.join(package_dir, "fused_mlp.pt2"))
out = torch._inductor.aoti_load_package(fused_path)(X)
show("fused package(X)", out)
show("fused package(X) equals Python's eager output (rtol 1e-5, atol 1e-5)",
     torch.allclose(out, Y, rtol=1e-5, atol=1e-5))

# %% Un paquete es código: solo el que hizo esta compilación
# A .pt2 holds a compiled shared library that the loader maps and runs: a package from elsewhere is as unsafe
# as torch.load(weights_only=False) of a pickle. The C++ lesson runs only the packages its build made.
torch.save(eager, os.path.join(package_dir, "eager.pt"))
with open(os.path.join(package_dir, "export.json"), "w") as f:
    json.dump({"seed": options.seed, "torch": torch.__version__, "torch.export says": said}, f, indent=2)
    f.write("\n")
print(f"packages in {package_dir}")
