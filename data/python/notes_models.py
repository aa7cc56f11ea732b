"""The notebook's blocks, taken from the cells of the lessons' Python twins that define them, so that each
class is written once, in its cell. Used by the benchmark (scripts/bench/bench_python.py) and by the
scripts that make and check reference files (make_reference.py, check_interop.py)."""
import os
import sys

import torch
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "companion"))
from cells import py_cells  # noqa: E402  (the one reader of # %% cells)


def _define(twin, title):
    """Runs the twin's cell with this title (a class definition) and returns what it defines."""
    path = os.path.join(HERE, twin)
    for cell in py_cells(path):
        if cell.title == title:
            namespace = {"torch": torch, "nn": nn, "F": F}
            exec(compile("\n" * cell.first_line + cell.source, path, "exec"), namespace)
            return namespace
    raise LookupError(f"{twin} has no cell {title!r}")


MLP = _define("01_blocks.py", "Un bloque personalizado: la clase MLP")["MLP"]
MySequential = _define("02_my_sequential.py", "El Bloque Sequential: la clase MySequential")["MySequential"]
FixedHiddenMLP = _define("03_fixed_hidden_mlp.py",
                         "Ejecutando código en la función de propagación directa: la clase FixedHiddenMLP")[
                             "FixedHiddenMLP"]
MyLinear = _define("05_my_linear.py", "Capas con parámetros: la clase MyLinear")["MyLinear"]
# "Archivos de E/S" writes its MLP with an output layer named `output`: the names its files carry.
FileIoMLP = _define("09_file_io.py", "Cargar y guardar parámetros del modelo: la clase MLP")["MLP"]
