"""Lesson 11's Python twin: the same training run as build/bin/11_checkpoints, step for step, and the same
checkpoints. A checkpoint either one writes, the other resumes from: PyTorch's own convention,
{"model": state_dict, "optimizer": optimizer.state_dict(), "epoch", "step", "rng_state", "settings"}.

usage: 11_checkpoints.py [--out-dir DIR] [--epochs 3] [--batch-size 32] [--examples 2048] [--lr 0.05]
                         [--checkpoint-every 10] [--keep 3] [--resume] [--seed 0] [--values PATH]
"""
import argparse
import math
import os
import re
import tempfile

import torch
from torch import nn
from torch.nn import functional as F

from parity import exact, options, show

parser = argparse.ArgumentParser()
parser.add_argument("--out-dir", default=None)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--examples", type=int, default=2048)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--checkpoint-every", type=int, default=10)
parser.add_argument("--keep", type=int, default=3)
parser.add_argument("--resume", action="store_true")
args, _ = parser.parse_known_args()
out_dir = args.out_dir or tempfile.mkdtemp()
torch.manual_seed(options.seed)

# %% Puntos de control: los datos, el modelo y el optimizador
# A synthetic 10-class problem from its own generator (common/training/training.h), the notes' MLP, SGD with momentum.
def make_dataset(n, seed):
    gen = torch.Generator().manual_seed(seed + 1000003)
    X = torch.randn(n, 20, generator=gen)
    projection = torch.randn(20, 10, generator=gen)
    return X, X.mm(projection).argmax(1)


X, y = make_dataset(args.examples, options.seed)
net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
settings = {"epochs": args.epochs, "batch_size": args.batch_size, "examples": args.examples,
            "seed": options.seed, "lr": args.lr}
steps_per_epoch = math.ceil(args.examples / args.batch_size)
print(f"{args.examples} examples of 20 features in 10 classes, batches of {args.batch_size}, "
      f"SGD with momentum 0.9, lr {args.lr}")

# %% Puntos de control: retomar desde el último que carga
checkpoint_dir = os.path.join(out_dir, "checkpoints")
os.makedirs(checkpoint_dir, exist_ok=True)


def load(path):
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001
        # PyTorch 1.13's weights-only loader lacks BINFLOAT, with which every pickler writes a float (the
        # learning rate): there, and only for the float, the full loader reads the checkpoint.
        if "Unsupported operand 71" not in str(e):
            raise
        return torch.load(path)


def checkpoints():
    names = [n for n in os.listdir(checkpoint_dir) if re.fullmatch(r"checkpoint-[0-9]{8}\.pt", n)]
    return [os.path.join(checkpoint_dir, n) for n in sorted(names, reverse=True)]


def resume_newest():
    """The newest checkpoint that loads, loaded into net and optimizer: (epoch, step, rng_state)."""
    for path in checkpoints():
        try:
            ck = load(path)
            if any(ck["settings"][k] != settings[k] for k in ("batch_size", "examples", "seed", "lr")):
                raise SystemExit(f"error: --resume: {path} was made by a run with other settings")
            net.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            print(f"resumed from {os.path.basename(path)}: epoch {ck['epoch'] + 1}, step {ck['step']}")
            return ck["epoch"], ck["step"], ck["rng_state"]
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            print(f"warning: skipping {os.path.basename(path)}: {e}")
    raise SystemExit(f"error: --resume: no checkpoint in {checkpoint_dir} loads")


epoch, step, rng_state = resume_newest() if args.resume else (0, 0, None)


def save_checkpoint(epoch, step, rng_state):
    path = os.path.join(checkpoint_dir, f"checkpoint-{step:08d}.pt")
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                "rng_state": rng_state, "settings": settings}, path + ".tmp")
    os.replace(path + ".tmp", path)  # a crash leaves the old file or the new one
    for old in checkpoints()[args.keep:]:
        os.remove(old)


# %% Puntos de control: entrenar guardando cada N pasos
losses, accuracies = [], []
for e in range(epoch, args.epochs):
    # The epoch's shuffle comes from the generator as it stood at the epoch's start, which the checkpoint keeps.
    if rng_state is not None and e == epoch:
        torch.set_rng_state(rng_state)
    else:
        rng_state = torch.get_rng_state()
    order = torch.randperm(args.examples)
    first = step - e * steps_per_epoch
    total, correct, seen = 0.0, 0, 0
    for b in range(first, steps_per_epoch):
        idx = order[b * args.batch_size:min(args.examples, (b + 1) * args.batch_size)]
        xb, yb = X.index_select(0, idx), y.index_select(0, idx)
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        total += loss.item() * len(idx)
        correct += logits.argmax(1).eq(yb).sum().item()
        seen += len(idx)
        if step % args.checkpoint_every == 0:
            if b + 1 == steps_per_epoch:  # the next step opens the next epoch, from the generator as it is now
                save_checkpoint(e + 1, step, torch.get_rng_state())
            else:
                save_checkpoint(e, step, rng_state)
    losses.append(total / seen)
    accuracies.append(correct / seen)
    print(f"Epoch [{e + 1}/{args.epochs}], Loss: {losses[-1]:.4f}, Accuracy: {accuracies[-1]:.3f}")
# The same operations in the same order on the same ATen: every loss is the same double, bit for bit.
exact("loss per epoch", "accuracy per epoch")
show("loss per epoch", losses)
show("accuracy per epoch", accuracies)

# %% Puntos de control: los parámetros finales
torch.save(net.state_dict(), os.path.join(out_dir, "final.params"))
print(f"trained parameters saved to {os.path.join(out_dir, 'final.params')}")
