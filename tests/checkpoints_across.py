#!/usr/bin/env python3
"""Checkpoints across languages and lessons: a run stopped in one resumes in the other and ends where an
uninterrupted run ends, bit for bit.

usage: checkpoints_across.py LESSON_11 LESSON_13 TWIN_11 WORK_DIR

LESSON_11 and LESSON_13 are the C++ binaries, TWIN_11 is data/python/11_checkpoints.py. Every run trains
512 examples in batches of 32 (16 steps an epoch) for 3 epochs. The final parameters of:
  - lesson 11 in C++ and its Python twin, uninterrupted;
  - C++ stopped after epoch 1, or at step 15 (mid-epoch), resumed in Python, and the reverse;
  - lesson 13 with one rank, uninterrupted, and resumed by lesson 11 and by Python, and the reverse;
are all the same bytes. Lesson 13 with two ranks averages two half-batch gradients, which sums in another
order: its checkpoint resumes in lesson 11 and Python, and the largest difference from the one-process run
is printed, not required to be zero. The checkpoint's optimizer state is compared with what Python's own
torch.optim.SGD(...).state_dict() holds, field for field and type for type.
Exit 0 when all hold, 1 otherwise, 77 when this Python has no torch.
"""
import os
import shutil
import subprocess
import sys

SETTINGS = ["--examples", "512", "--batch-size", "32"]


def main():
    try:
        import torch
    except ImportError:
        print("skipped: this python3 has no torch")
        return 77
    lesson11, lesson13, twin, work = sys.argv[1:5]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    problems = []

    def run(who, out, epochs, *extra):
        out = os.path.join(work, out)
        args = SETTINGS + ["--epochs", str(epochs), "--out-dir", out, *extra]
        if who == "c++":
            cmd = [lesson11, "--device", "cpu", "--keep", "100", *args]
        elif who == "python":
            cmd = [sys.executable, twin, "--keep", "100", *args]
        else:  # lesson 13 with N ranks
            cmd = [lesson13, "--device", "cpu", "--world-size", who[-1], "--timeout", "20", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with status {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return out

    def final(out):
        return torch.load(os.path.join(out, "final.params"), weights_only=True)

    def same(name, a, b):
        if list(a) != list(b) or any(a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k]) for k in a):
            diff = max((a[k] - b[k]).abs().max().item() for k in a if k in b)
            problems.append(f"{name}: final parameters differ (largest difference {diff:.3g})")
        else:
            print(f"ok: {name}")

    reference = final(run("c++", "c++", 3, "--checkpoint-every", "16"))
    same("Python's uninterrupted run equals C++'s", final(run("python", "python", 3)), reference)

    for first, second, every, name in [("c++", "python", "16", "after epoch 1"),
                                       ("python", "c++", "16", "after epoch 1"),
                                       ("c++", "python", "5", "at step 15, mid-epoch"),
                                       ("python", "c++", "5", "at step 15, mid-epoch")]:
        out = run(first, f"{first}-then-{second}-{every}", 1, "--checkpoint-every", every)
        run(second, out, 3, "--checkpoint-every", every, "--resume")
        same(f"{first} stopped {name}, resumed in {second}", final(out), reference)

    if lesson13 == "none":
        print("lesson 13 is not built here (no Gloo headers for this LibTorch): its part is skipped")
        return finish(torch, work, problems)
    # Lesson 13 with one rank is lesson 11's arithmetic: the same shuffle, the same batches, one process.
    same("lesson 13 with one rank equals lesson 11", final(run("13-1", "13-1", 3)), reference)
    for first, second in [("13-1", "c++"), ("13-1", "python"), ("c++", "13-1"), ("python", "13-1")]:
        extra = [] if first == "13-1" else ["--checkpoint-every", "16"]
        out = run(first, f"{first}-then-{second}", 1, *extra)
        run(second, out, 3, "--resume", *([] if second == "13-1" else ["--checkpoint-every", "16"]))
        same(f"{first} stopped after epoch 1, resumed in {second}", final(out), reference)

    # Two ranks: the format is the same, the sums are not in the same order.
    for second in ("c++", "python"):
        out = run("13-2", f"13-2-then-{second}", 1)
        run(second, out, 3, "--resume", "--checkpoint-every", "16")
        got = final(out)
        diff = max((got[k] - reference[k]).abs().max().item() for k in reference)
        print(f"two ranks stopped after epoch 1, resumed in {second}: largest difference from one process {diff:.3g}")
        if not diff < 1e-3:
            problems.append(f"two ranks then {second}: largest difference {diff} is not small")

    return finish(torch, work, problems)


def finish(torch, work, problems):
    """The optimizer's state is what Python's SGD holds: fields, order and types."""
    ck_path = sorted(os.listdir(os.path.join(work, "c++", "checkpoints")))[-1]
    ck = load_checkpoint(torch, os.path.join(work, "c++", "checkpoints", ck_path))
    net = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    sgd = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net(torch.randn(2, 20)).sum().backward()
    sgd.step()
    theirs, ours = sgd.state_dict(), ck["optimizer"]
    for a, b in [(theirs["param_groups"][0], ours["param_groups"][0])]:
        if list(a) != list(b) or any(type(a[k]) is not type(b[k]) or (k != "lr" and a[k] != b[k]) for k in a):
            problems.append(f"param_groups: Python's SGD holds {a}, the checkpoint {b}")
    if list(theirs["state"]) != list(ours["state"]) or any(
            list(theirs["state"][i]) != list(ours["state"][i]) for i in theirs["state"]):
        problems.append("optimizer state: not keyed as Python's SGD keys it")
    sgd.load_state_dict(ours)
    net.load_state_dict(ck["model"])
    print("ok: Python's SGD and model load the C++ checkpoint's 'optimizer' and 'model'")

    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


def load_checkpoint(torch, path):
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001
        if "Unsupported operand 71" not in str(e):  # PyTorch 1.13's weights-only loader lacks BINFLOAT
            raise
        return torch.load(path)


if __name__ == "__main__":
    sys.exit(main())
