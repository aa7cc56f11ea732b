"""Runs a lesson's Python twin the way a notebook runs: its preamble, then one cell after another in one
namespace, and writes what each cell printed, which labels it recorded with show(), and the figures it
drew (PNG, base64) to a JSON file.

usage: run_cells.py TWIN.py OUT.json [--seed N] [--values VALUES.json]
"""
import base64
import contextlib
import io
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cells import PY_MARKER, split  # noqa: E402


def main():
    twin, out_path, *options = sys.argv[1:]
    twin = os.path.abspath(twin)
    sys.path.insert(0, os.path.dirname(twin))
    sys.argv = [twin, *options]  # what parity.py parses: --seed, --values
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import parity

    with open(twin, encoding="utf-8") as f:
        preamble, cells = split(f.read(), PY_MARKER)
    namespace = {"__name__": "__main__", "__file__": twin}
    exec(compile(preamble, twin, "exec"), namespace)
    results = []
    failed = False
    for cell in cells:
        before = set(parity.recorded)
        stdout = io.StringIO()
        error = None
        if not failed:
            # Line numbers in tracebacks point into the twin: the cell is compiled at its own position.
            code = "\n" * cell.first_line + cell.source
            try:
                with contextlib.redirect_stdout(stdout):
                    exec(compile(code, twin, "exec"), namespace)
            except Exception:  # noqa: BLE001: the page shows the error under the cell, as a notebook does
                error = traceback.format_exc(limit=-1)
                failed = True
        figures = []
        for number in plt.get_fignums():
            png = io.BytesIO()
            plt.figure(number).savefig(png, format="png", dpi=96)
            figures.append(base64.b64encode(png.getvalue()).decode("ascii"))
        plt.close("all")
        results.append({
            "title": cell.title,
            "output": stdout.getvalue(),
            "labels": [k for k in parity.recorded if k not in before and k != "CPP_ONLY"],
            "figures": figures,
            "error": error,
        })
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"cells": results, "ok": not failed}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
