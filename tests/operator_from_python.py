#!/usr/bin/env python3
"""Lesson 12's operator from Python, as a PyTorch user meets it: loaded with torch.ops.load_library,
tested by torch.library.opcheck, compiled by torch.compile, and refusing bad input with a RuntimeError.

usage: operator_from_python.py LIBRARY opcheck|compile|inputs|stable [STABLE_LIBRARY|none]
"stable" compares modelos_stable::linear_relu, the same forward built against LibTorch's stable ABI, with
the operator. Exit 0 when it holds, 1 when not, 77 (skipped, with the reason) when this PyTorch lacks the piece.
"""
import importlib.util
import os
import sys


def random_inputs(torch, n=3, k=5, m=4, **kw):
    return (torch.randn(n, k, **kw), torch.randn(k, m, **kw), torch.randn(m, **kw))


def check_opcheck(torch, op, stable):
    if not hasattr(torch.library, "opcheck"):
        print(f"skipped: torch.library.opcheck needs PyTorch 2.4 or later, this is {torch.__version__}")
        return 77
    for args in [random_inputs(torch), tuple(t.requires_grad_() for t in random_inputs(torch)),
                 tuple(t.requires_grad_() for t in random_inputs(torch, dtype=torch.double))]:
        result = torch.library.opcheck(op.default, args)
        print(result)
        if any(v != "SUCCESS" for v in result.values()):
            return 1
    return 0


def check_compile(torch, op, stable):
    if not hasattr(torch, "compile"):
        print(f"skipped: torch.compile needs PyTorch 2.0 or later, this is {torch.__version__}")
        return 77
    import torch._dynamo
    X, W, b = (t.requires_grad_() for t in random_inputs(torch))
    fn = lambda X, W, b: op(X, W, b).sum()  # noqa: E731
    eager = fn(X, W, b)
    eager_grads = torch.autograd.grad(eager, (X, W, b))
    explanation = torch._dynamo.explain(fn)(X, W, b)
    print(f"graphs {explanation.graph_count}, graph breaks {explanation.graph_break_count}")
    compiled = torch.compile(fn, fullgraph=True)
    out = compiled(X, W, b)
    grads = torch.autograd.grad(out, (X, W, b))
    same = torch.allclose(out, eager) and all(torch.allclose(g, e) for g, e in zip(grads, eager_grads))
    print(f"torch.compile(fullgraph=True): the same output and gradients as eager: {same}")
    return 0 if same and explanation.graph_break_count == 0 else 1


def bad_inputs(torch, op, problems):
    """The calls the operator must refuse, by what is wrong with them; float16 and bfloat16 are among them
    only where this LibTorch's matrix multiply refuses them, and are computed and compared otherwise."""
    problems = []
    X, W, b = random_inputs(torch)
    bad = {
        "X of 3 dimensions": (X[None], W, b),
        "X and W that do not chain": (X, W[:4], b),
        "b of the wrong length": (X, W, b[:3]),
        "mixed dtypes": (X, W.double(), b),
        "integer tensors": (X.long(), W.long(), b.long()),
        "mixed devices (meta and cpu)": (X.to("meta"), W, b),
        # Checked before any work: LibTorch's own errors name neither the operator nor the argument.
        "None for X": (None, W, b),
        "None for W": (X, None, b),
        "None for b": (X, W, None),
        "X expanded to 2^40 rows (16 TiB of output)": (X[:1].expand(2**40, 5), W, b),
        "X expanded to 2^40 rows, requiring grad": (X[:1].expand(2**40, 5).requires_grad_(), W, b),
        "X expanded to 2^60 rows (the output's size overflows)": (X[:1].expand(2**60, 5), W, b),
        "W expanded to 2^60 columns": (X, W[:, :1].expand(5, 2**60), b[:1].expand(2**60)),
    }
    # A dtype is refused only where this LibTorch's matrix multiply has no kernel for it (1.13 has no
    # Half on the CPU, 2.x has); where it has one, the operator computes what ATen computes.
    for dtype in (torch.float16, torch.bfloat16):
        x, w, c = X.to(dtype), W.to(dtype), b.to(dtype)
        try:
            expected = torch.addmm(c, x, w).relu()
        except RuntimeError:
            bad[f"{dtype}, which this LibTorch does not multiply on the CPU"] = (x, w, c)
            continue
        if not torch.equal(op(x, w, c), expected):
            problems.append(f"{dtype}: other values than torch.addmm(b, X, W).relu()")
        else:
            print(f"{dtype}: computed, as ATen computes it")
    return bad, X, W, b


def check_inputs(torch, op, stable):
    problems = []
    bad, X, W, b = bad_inputs(torch, op, problems)
    for name, args in bad.items():
        try:
            op(*args)
            problems.append(f"{name}: accepted")
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            print(f"{name}: RuntimeError: {first}")
            if "modelos::linear_relu" not in first:
                problems.append(f"{name}: the error does not name the operator: {first}")
            named = [a for a in ("X", "W", "b") if f"{a} " in first]
            if not named:
                problems.append(f"{name}: the error does not name the argument: {first}")
    # A transposed X is not contiguous: the same values as its contiguous copy.
    Xt = torch.randn(5, 3).t()
    assert not Xt.is_contiguous()
    if not torch.equal(op(Xt, W, b), op(Xt.contiguous(), W, b)):
        problems.append("a transposed X gives other values than its contiguous copy")
    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


def check_stable(torch, op, stable):
    if stable == "none":
        print(f"skipped: this LibTorch has no stable ABI (torch/csrc/stable, PyTorch 2.9 and later); "
              f"this is {torch.__version__}")
        return 77
    torch.ops.load_library(stable)
    problems = []
    for dtype, tolerance in [(torch.float32, 1e-5), (torch.float64, 1e-12)]:
        X, W, b = random_inputs(torch, dtype=dtype)
        for name, x in [("X", X), ("a transposed X", X.t().contiguous().t())]:
            mine = torch.ops.modelos_stable.linear_relu(x, W, b)
            if not torch.allclose(mine, op(x, W, b), rtol=tolerance, atol=tolerance):
                problems.append(f"{dtype}, {name}: the stable-ABI operator differs from the operator")
    try:
        torch.ops.modelos_stable.linear_relu(X, W[:4], b)
        problems.append("shapes that do not chain: accepted")
    except RuntimeError as e:
        print(f"shapes that do not chain: RuntimeError: {str(e).splitlines()[0]}")
    print(f"the stable-ABI library (built for PyTorch 2.9 and later) in PyTorch {torch.__version__}: "
          f"{'the same values' if not problems else 'different'}")
    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


CHECKS = {"opcheck": check_opcheck, "compile": check_compile, "inputs": check_inputs, "stable": check_stable}


def main():
    cannot = os.environ.get("MP_PYTHON_CANNOT_LOAD") or (
        None if importlib.util.find_spec("torch") else "this python3 has no torch")
    if cannot:
        print("skipped: " + cannot)
        return 77
    import torch
    library, what = sys.argv[1:3]
    stable = sys.argv[3] if len(sys.argv) > 3 else "none"
    if what not in CHECKS:
        print(f"error: unknown check {what!r}")
        return 2
    torch.ops.load_library(library)
    torch.manual_seed(0)
    return CHECKS[what](torch, torch.ops.modelos.linear_relu, stable)


if __name__ == "__main__":
    sys.exit(main())
