"""Builds the companion pages: for every lesson, each cell's Python and C++ side by side, each with the
output it really printed, and a mark where the values both record under the same label are equal.

usage: build_pages.py ROOT BUILD_DIR OUT_DIR [--seed N]
Runs build/bin/<lesson> and its Python twin (scripts/companion/run_cells.py) with the same seed, then
writes OUT_DIR/index.html and OUT_DIR/<lesson>.html. Everything is embedded: no network, no CDN.
Exit status 0 when every lesson ran and every value compared equal, 1 otherwise (the pages say which).
"""
import base64
import html
import io
import json
import os
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pygments import highlight  # noqa: E402
from pygments.formatters import HtmlFormatter  # noqa: E402
from pygments.lexers import CppLexer, PythonLexer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cells import CPP_ONLY, cpp_cells, lessons, py_cells  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "..", "data", "python"))
from parity_check import compare as parity_compare  # noqa: E402

NOTEBOOK = ("https://github.com/institutohumai/cursos-python/blob/master/DeepLearning/4PyTorchAvanzado/"
            "1modelospersonalizados.ipynb")

CSS = """
:root { --ink: #1d2430; --muted: #5b6576; --line: #d9dee7; --paper: #ffffff; --bg: #f5f7fa;
        --ok: #1b7f3b; --bad: #b3261e; --py: #3b6ea8; --cpp: #8a4fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--bg); }
header, main, footer { max-width: 1500px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.15rem; margin: 0; }
a { color: var(--py); }
.sub { color: var(--muted); margin: 0 0 16px; }
.cell { background: var(--paper); border: 1px solid var(--line); border-radius: 10px; margin: 18px 0;
        padding: 14px 16px; }
.cell-head { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: baseline; margin-bottom: 10px; }
.cell-head .n { color: var(--muted); font-variant-numeric: tabular-nums; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.pair.single { grid-template-columns: 1fr; }
.side { min-width: 0; }
.lang { font-size: .8rem; font-weight: 600; letter-spacing: .04em; text-transform: uppercase; margin-bottom: 4px; }
.lang.py { color: var(--py); } .lang.cpp { color: var(--cpp); }
.code, .out { border-radius: 6px; overflow-x: auto; margin: 0; }
.code pre, .out { font: 13px/1.45 "DejaVu Sans Mono", ui-monospace, monospace; padding: 10px 12px; margin: 0; }
.code { border: 1px solid var(--line); background: #fbfbfd; }
.out { background: #20242c; color: #e8eaee; white-space: pre; margin-top: 6px; }
.out.error { background: #3a1717; }
.from { font-size: .8rem; color: var(--muted); padding: 6px 12px 0; border-top: 1px dashed var(--line); }
.none { color: var(--muted); font-style: italic; padding: 10px 0; }
.mark { font-size: .85rem; border-radius: 999px; padding: 2px 10px; white-space: nowrap; }
.mark.equal { background: #e3f4e8; color: var(--ok); } .mark.differ { background: #fbe6e4; color: var(--bad); }
.mark.plain { background: #eef0f4; color: var(--muted); }
.diff { color: var(--bad); font-size: .9rem; margin: 8px 0 0; }
.diff code { white-space: pre-wrap; word-break: break-word; }
figure { margin: 10px 0 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line);
  border-radius: 6px; background: #fff; }
table.lessons { width: 100%; table-layout: fixed; border-collapse: collapse; background: var(--paper); border: 1px solid var(--line);
  border-radius: 10px; overflow: hidden; }
table.lessons th, table.lessons td { text-align: left; padding: 10px 12px; border-bottom: 1px solid var(--line);
  vertical-align: top; overflow-wrap: anywhere; }
table.lessons th:first-child { width: 32%; } table.lessons th:last-child { width: 5.5em; }
.status.pass { color: var(--ok); font-weight: 600; } .status.fail { color: var(--bad); font-weight: 600; } .status.skip { color: #6b6b6b; } p.skipped { overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: .85rem; padding: 24px 20px 40px; }
@media (max-width: 900px) {
  .pair { grid-template-columns: 1fr; }
  header, main, footer { padding-left: 10px; padding-right: 10px; }
  .cell { padding: 12px 10px; }
  h1 { font-size: 1.25rem; } h2 { font-size: 1.05rem; } body { font-size: 15px; }
  table.lessons td:nth-child(3), table.lessons th:nth-child(3) { display: none; }
}
"""


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def compare(cpp, py):
    """None when equal, else a short description (parity_check's rules: floats within rtol 1e-6)."""
    problems = []
    parity_compare("", cpp, py, problems)
    return problems[0] if problems else None


def section_of(title):
    return title.split(":")[0].replace(CPP_ONLY, "").strip()


def anchor(title):
    return re.sub(r"\s+", "-", section_of(title).strip())


def png_figure(fig):
    data = io.BytesIO()
    fig.savefig(data, format="png", dpi=96)
    plt.close(fig)
    return base64.b64encode(data.getvalue()).decode("ascii")


def charts(name, values):
    """Pictures drawn from a C++ lesson's own values, where a reader would rather look than read."""
    if "loss per epoch" in values:
        losses = values["loss per epoch"]
        epochs = range(1, len(losses) + 1)
        fig, ax = plt.subplots(figsize=(7, 2.8))
        ax.plot(epochs, losses, "o-", color="#8a4fb3", label="loss")
        ax.set_xticks(list(epochs))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if "accuracy per epoch" in values:
            ax2 = ax.twinx()
            ax2.plot(epochs, values["accuracy per epoch"], "s--", color="#1b7f3b", label="accuracy")
            ax2.set_ylabel("accuracy")
        ax.set_title("Loss y accuracy por época" if "accuracy per epoch" in values else "Loss por época")
        fig.tight_layout()
        return {"loss per epoch": png_figure(fig)}
    if name.startswith("10_") and "GPU GFLOP/s" in values:
        fig, ax = plt.subplots(figsize=(7, 2.8))
        ax.plot(values["matrix side n"], values["CPU GFLOP/s"], "o-", label="CPU")
        ax.plot(values["matrix side n"], values["GPU GFLOP/s"], "s-", label="GPU")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n (matrices n x n)")
        ax.set_ylabel("GFLOP/s")
        ax.legend()
        fig.tight_layout()
        return {"GPU GFLOP/s": png_figure(fig)}
    return {}


def header_classes(lesson_dir, source):
    """The classes a C++ cell names with `using ns::Name;`, as the lesson's header defines them: the C++ twin
    of a notebook cell that defines a class."""
    found = []
    headers = [os.path.join(lesson_dir, f) for f in sorted(os.listdir(lesson_dir)) if f.endswith(".h")]
    for name in re.findall(r"using\s+\w+::(\w+);", source):
        for header in headers:
            with open(header, encoding="utf-8") as f:
                lines = f.read().split("\n")
            start = next((i for i, l in enumerate(lines) if re.match(rf"class {name}Impl\b", l)), None)
            if start is None:
                continue
            end = next((i for i in range(start, len(lines)) if lines[i].startswith(f"TORCH_MODULE({name})")), None)
            if end is None:
                continue
            while start > 0 and lines[start - 1].startswith("//"):
                start -= 1
            found.append((os.path.basename(header), "\n".join(lines[start:end + 1])))
            break
    return found


def cpp_output_by_cell(cells, output):
    """Each printed line goes to the cell whose lines hold the call that printed it."""
    by_cell = [[] for _ in cells]
    current = 0
    for entry in output:
        for i, cell in enumerate(cells):
            if cell.first_line <= entry["line"] <= cell.last_line:
                current = i
                break
        by_cell[current].append(entry)
    return by_cell


def run_lesson(name, twin, bin_dir, work, seed, skipped):
    """Runs the C++ lesson and its twin with the same seed: (C++ run, its values, its output lines, the twin's
    cells by title or None, the twin's values, whether the twin ran). A skipped lesson runs nothing."""
    if skipped:
        return subprocess.CompletedProcess([], 0, "", ""), {}, [], None, {}, True
    cpp_run = run([os.path.join(bin_dir, name), "--device", "cpu", "--seed", str(seed), "--out-dir", work])
    values, output = {}, []
    if cpp_run.returncode == 0:
        with open(os.path.join(work, "values.json")) as f:
            values = json.load(f)
        with open(os.path.join(work, "output.json")) as f:
            output = json.load(f)
    if not twin:
        return cpp_run, values, output, None, {}, True
    cells_json = os.path.join(work, "python-cells.json")
    values_json = os.path.join(work, "python-values.json")
    py_run = run([sys.executable, os.path.join(HERE, "run_cells.py"), twin, cells_json, "--seed", str(seed),
                  "--values", values_json])
    py, py_values = None, {}
    if os.path.exists(cells_json):
        with open(cells_json) as f:
            py = {c["title"]: c for c in json.load(f)["cells"]}
    if os.path.exists(values_json):
        with open(values_json) as f:
            py_values = json.load(f)
    return cpp_run, values, output, py, py_values, py_run.returncode == 0


def compare_cell(printed, py_cell, values, py_values, cpp_only_labels):
    """The values one cell recorded on both sides: (how many were compared, the differences)."""
    compared, differences = 0, []
    if py_cell is None:
        return compared, differences
    cpp_labels = [e["label"] for e in printed if "label" in e]
    # CPP_ONLY, EXACT and SAME_BYTES are the twin's notes to the comparison, not values.
    py_labels = [label for label in py_cell["labels"] if label not in ("CPP_ONLY", "EXACT", "SAME_BYTES")]
    for label in dict.fromkeys(cpp_labels + py_labels):
        if label in cpp_only_labels:
            continue
        if label not in values or label not in py_values:
            differences.append(f"{label}: recorded by {'C++' if label in values else 'Python'} only")
            continue
        problem = compare(values[label], py_values[label])
        compared += 1
        if problem:
            differences.append(f"{label}{problem}")
    return compared, differences


def cell_mark(skipped, py_cell, compared, differences):
    if skipped:
        return '<span class="mark plain">no ejecutada en esta compilación</span>'
    if py_cell is None:
        return '<span class="mark plain">solo C++: el cuaderno no tiene esta celda</span>'
    if differences:
        return f'<span class="mark differ">&#8800; {len(differences)} diferencia(s)</span>'
    if compared:
        return f'<span class="mark equal">&#10003; {compared} valor(es) iguales en Python y C++</span>'
    return '<span class="mark plain">sin valores que comparar</span>'


def cpp_side_html(main, cell, printed, pictures):
    cpp_labels = [e["label"] for e in printed if "label" in e]
    cpp_code = highlight(cell.source, CppLexer(), HtmlFormatter(nowrap=False))
    for header, text in header_classes(os.path.dirname(main), cell.source):
        cpp_code += (f'<div class="from">{html.escape(header)}:</div>'
                     + highlight(text, CppLexer(), HtmlFormatter()))
    cpp_text = "\n".join(e["text"] for e in printed)
    return (f'<div class="side"><div class="lang cpp">C++ &middot; main.cpp, línea {cell.first_line}</div>'
            f'<div class="code">{cpp_code}</div>'
            + (f'<pre class="out">{html.escape(cpp_text)}</pre>' if cpp_text else "")
            + "".join(f'<figure><img alt="{html.escape(label)}" src="data:image/png;base64,{png}"></figure>'
                      for label, png in pictures.items() if label in cpp_labels)
            + "</div>")


def py_side_html(cell, py_cell, twin, twin_run, skipped):
    """The notebook's side of a cell: its code, and when it ran, its output, error and figures. Empty when
    the notebook has no such cell: the C++ then takes the whole width."""
    if skipped and twin_run and cell.title in [c.title for c in py_cells(twin_run)]:
        twin_source = next(c.source for c in py_cells(twin_run) if c.title == cell.title)
        return ('<div class="side"><div class="lang py">Python &middot; el cuaderno</div>'
                f'<div class="code">{highlight(twin_source, PythonLexer(), HtmlFormatter())}</div></div>')
    if py_cell is None:
        return ""
    twin_source = next(c.source for c in py_cells(twin) if c.title == cell.title)
    py_code = highlight(twin_source, PythonLexer(), HtmlFormatter())
    out = py_cell["output"].rstrip("\n")
    return ('<div class="side"><div class="lang py">Python &middot; el cuaderno</div>'
            f'<div class="code">{py_code}</div>'
            + (f'<pre class="out">{html.escape(out)}</pre>' if out else "")
            + (f'<pre class="out error">{html.escape(py_cell["error"])}</pre>' if py_cell["error"] else "")
            + "".join(f'<figure><img alt="figura de Python" src="data:image/png;base64,{png}"></figure>'
                      for png in py_cell["figures"])
            + "</div>")


def cell_section(number, cell, mark, py_cell, py_side, cpp_side, differences):
    diff_html = "".join(f'<p class="diff"><code>{html.escape(d)}</code></p>' for d in differences)
    link = f'{NOTEBOOK}#{html.escape(anchor(cell.title))}'
    section_link = (f'<a href="{link}" title="La sección del cuaderno">sección &laquo;'
                    f'{html.escape(section_of(cell.title))}&raquo; en el cuaderno</a>'
                    if py_cell is not None and not section_of(cell.title).startswith("Más allá") else "")
    return (f'<section class="cell" id="cell-{number}" data-title="{html.escape(cell.title)}">'
            f'<div class="cell-head"><span class="n">[{number}]</span><h2>{html.escape(cell.title)}</h2>'
            f'{mark}{section_link}</div>'
            f'<div class="pair{"" if py_side else " single"}">{py_side}{cpp_side}</div>{diff_html}</section>')


def build_lesson(name, main, twin, bin_dir, work, seed, skipped=None):
    """skipped: why this build has no such lesson (mp-lessons.txt); its page then shows the code of both sides
    and the reason, and runs nothing."""
    os.makedirs(work, exist_ok=True)
    twin_run = twin if skipped else None
    if skipped:
        twin = None
    cpp_run, values, output, py, py_values, py_ok = run_lesson(name, twin, bin_dir, work, seed, skipped)
    cells = cpp_cells(main)
    cpp_by_cell = cpp_output_by_cell(cells, output)
    pictures = charts(name, values)
    cpp_only_labels = set(py_values.get("CPP_ONLY", []))
    parts = []
    equal_total, differ_total = 0, 0
    py_titles = [c.title for c in py_cells(twin)] if twin else []
    for number, (cell, printed) in enumerate(zip(cells, cpp_by_cell), start=1):
        py_cell = py.get(cell.title) if py and not cell.title.endswith(CPP_ONLY) else None
        compared, differences = compare_cell(printed, py_cell, values, py_values, cpp_only_labels)
        mark = cell_mark(skipped, py_cell, compared, differences)
        if not skipped and py_cell is not None:
            differ_total += len(differences)
            equal_total += compared if not differences else 0
        py_side = py_side_html(cell, py_cell, twin, twin_run, skipped)
        parts.append(cell_section(number, cell, mark, py_cell, py_side, cpp_side_html(main, cell, printed, pictures),
                                  differences))
    missing_py = [t for t in py_titles if t not in [c.title for c in cells]]
    if skipped:
        twin = twin_run
        parts.insert(0, f'<p class="skipped">Esta compilación no tiene la lección, y no la ejecutó: '
                        f'{html.escape(skipped)}.</p>')
    ok = cpp_run.returncode == 0 and py_ok and differ_total == 0 and not missing_py
    sections = [s for s in dict.fromkeys(section_of(c.title) for c in cells) if s != "Más allá del cuaderno"]
    return {
        "name": name, "ok": ok, "cells": len(cells), "equal": equal_total, "differ": differ_total,
        "sections": sections, "twin": bool(twin), "cpp_status": cpp_run.returncode,
        "cpp_stderr": cpp_run.stderr.strip(), "body": "".join(parts), "skipped": skipped,
    }


def page(title, subtitle, body):
    style = CSS + HtmlFormatter(style="friendly").get_style_defs(".code")
    return (f'<!doctype html><html lang="es"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)}</title><style>{style}</style></head><body>'
            f'<header><h1>{html.escape(title)}</h1><p class="sub">{subtitle}</p></header>'
            f'<main>{body}</main><footer>Generado por scripts/companion.sh: cada celda se ejecutó en Python '
            f'(PyTorch) y en C++ (LibTorch) con la misma semilla.</footer></body></html>')


def main():
    global ROOT
    ROOT, build_dir, out_dir = (os.path.abspath(p) for p in sys.argv[1:4])
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    os.makedirs(out_dir, exist_ok=True)
    bin_dir = os.path.join(build_dir, "bin")
    results = []
    skipped = {}
    with open(os.path.join(build_dir, "mp-lessons.txt")) as f:
        for line in f:
            if line.startswith("skipped "):
                name, _, reason = line[len("skipped "):].rstrip("\n").partition(" ")
                skipped[name] = reason
    for name, main_cpp, twin in lessons(ROOT):
        r = build_lesson(name, main_cpp, twin, bin_dir, os.path.join(out_dir, "runs", name), seed, skipped.get(name))
        status = f"skipped, {r['skipped']}" if r["skipped"] else "todo igual" if r["ok"] else "FALLA"
        print(f"{name}: {r['cells']} cells, {r['equal']} values equal, {r['differ']} different: {status}")
        if r["cpp_status"] != 0:
            print(f"  the C++ lesson failed ({r['cpp_status']}): {r['cpp_stderr']}")
        sub = (f'Celdas de <code>lessons/{name}/main.cpp</code>' +
               (f' y <code>data/python/{name}.py</code>, lado a lado.' if r["twin"] else ', sin gemelo en Python.')
               + ' <a href="index.html">&larr; todas las lecciones</a>')
        with open(os.path.join(out_dir, f"{name}.html"), "w", encoding="utf-8") as f:
            f.write(page(f"{name}: {', '.join(r['sections'])}", sub, r["body"]))
        results.append(r)
    rows = "".join(
        f'<tr><td><a href="{r["name"]}.html">{r["name"]}</a></td><td>{html.escape(" · ".join(r["sections"]))}</td>'
        f'<td>{r["cells"]} celdas' + (f', {r["equal"]} valores iguales' if r["twin"] else ", solo C++") + '</td>'
        f'<td class="status {"skip" if r["skipped"] else "pass" if r["ok"] else "fail"}">'
        f'{"omitida" if r["skipped"] else "pasa" if r["ok"] else "falla"}</td></tr>'
        for r in results)
    body = ('<table class="lessons"><thead><tr><th>Lección</th><th>Secciones del cuaderno</th><th>Celdas</th>'
            f'<th>Estado</th></tr></thead><tbody>{rows}</tbody></table>')
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as f:
        f.write(page("Modelos Personalizados en PyTorch: Python y C++",
                     f'Cada lección del cuaderno, celda por celda, en Python y en LibTorch (semilla {seed}).', body))
    with open(os.path.join(out_dir, "cells.json"), "w") as f:
        json.dump({r["name"]: r["cells"] for r in results}, f)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
