"""The notebook's cells for "Archivos de E/S", reporting what lesson 09 reports."""
import argparse
import os
import tempfile

import torch

from mlp import MLP  # the notes' MLP: hidden = Linear(20, 256), ReLU, output = Linear(256, 10)
from parity import Values

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
torch.manual_seed(parser.parse_args().seed)
v = Values()
d = tempfile.mkdtemp()

x = torch.arange(4)
torch.save(x, os.path.join(d, "x-file"))
v["x2"] = torch.load(os.path.join(d, "x-file"))
y = torch.zeros(4)
torch.save([x, y], os.path.join(d, "x-files"))
x2, y2 = torch.load(os.path.join(d, "x-files"))
v["xy_x"] = x2
v["xy_y"] = y2
mydict = {"x": x, "y": y}
torch.save(mydict, os.path.join(d, "mydict"))
mydict2 = torch.load(os.path.join(d, "mydict"))
v["mydict_x"] = mydict2["x"]
v["mydict_y"] = mydict2["y"]


net = MLP()
X = torch.randn(size=(2, 20))
Y = net(X)
v["Y"] = Y
torch.save(net.state_dict(), os.path.join(d, "mlp.params"))
clone = MLP()
v["clone_differs_before_load"] = not torch.equal(clone(X), Y)
clone.load_state_dict(torch.load(os.path.join(d, "mlp.params")))
clone.eval()
v["Y_clone_equals_Y"] = torch.equal(clone(X), Y)
v.dump()
