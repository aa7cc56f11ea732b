"""The cells of a lesson: `// %% <title>` markers in lessons/NN_name/main.cpp and `# %% <title>` markers
in its Python twin data/python/NN_name.py (the percent format that Jupytext, VS Code and Spyder read).

Both files have the same cells, with the same titles, in the same order. A cell the notebook does not have
and Python need not run says so with "(solo C++)" at the end of its title; in the Python twin such a cell
holds only comments, saying what the C++ cell does. A lesson with no twin has only "(solo C++)" cells.

usage: cells.py --check ROOT   checks every lesson's two cell lists; exit status 0 when they match
"""
import os
import re
import sys
import textwrap

CPP_MARKER = re.compile(r"^[ \t]*// %% (.+?)[ \t]*$", re.M)
PY_MARKER = re.compile(r"^# %% (.+?)[ \t]*$", re.M)
CPP_ONLY = "(solo C++)"


class Cell:
    def __init__(self, title, source, first_line):
        self.title = title
        self.source = source  # the cell's text, marker excluded, blank lines at both ends removed
        self.first_line = first_line  # 1-based line of the marker
        self.last_line = first_line  # 1-based line of the cell's last line


def split(text, marker):
    """The preamble (text before the first marker) and the cells."""
    matches = list(marker.finditer(text))
    cells = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end():end]
        first_line = text.count("\n", 0, m.start()) + 1
        cell = Cell(m.group(1), body.strip("\n"), first_line)
        cell.last_line = text.count("\n", 0, end)
        cells.append(cell)
    preamble = text[: matches[0].start()] if matches else text
    return preamble, cells


MAIN_END = re.compile(r"^[ \t]*return lesson\.finish\(\);", re.M)


def cpp_cells(path):
    """main.cpp's cells, the last one ending where main returns, indentation removed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    ends = list(MAIN_END.finditer(text))
    end = ends[-1] if ends else None
    cells = split(text[: end.start()] if end else text, CPP_MARKER)[1]
    for cell in cells:
        cell.source = textwrap.dedent(cell.source)
    return cells


def py_cells(path):
    with open(path, encoding="utf-8") as f:
        return split(f.read(), PY_MARKER)[1]


def lessons(root):
    """(name, main.cpp path, Python twin path or None) for every lesson, in order."""
    found = []
    for name in sorted(os.listdir(os.path.join(root, "lessons"))):
        main = os.path.join(root, "lessons", name, "main.cpp")
        if not os.path.isfile(main):
            continue
        twin = os.path.join(root, "data", "python", name + ".py")
        found.append((name, main, twin if os.path.isfile(twin) else None))
    return found


def problems(cpp_titles, py_titles, py_code_in_cpp_only=()):
    """What keeps the two cell lists from matching (an empty list when they match). py_code_in_cpp_only: the
    titles of "(solo C++)" cells of the twin that hold code, not only comments."""
    found = []
    if not cpp_titles:
        found.append("main.cpp has no // %% cells")
    for titles, language in ((cpp_titles, "C++"), (py_titles or [], "Python")):
        seen = set()
        for t in titles:
            if t in seen:
                found.append(f"{language} cell title repeated: {t!r}")
            seen.add(t)
    if py_titles is None:
        for t in cpp_titles:
            if not t.endswith(CPP_ONLY):
                found.append(f"no Python twin, yet the C++ cell {t!r} does not say {CPP_ONLY}")
        return found
    for t in py_code_in_cpp_only:
        found.append(f"the Python cell {t!r} says {CPP_ONLY} but holds code")
    if cpp_titles != py_titles:
        for i in range(max(len(cpp_titles), len(py_titles))):
            c = cpp_titles[i] if i < len(cpp_titles) else "(none)"
            p = py_titles[i] if i < len(py_titles) else "(none)"
            if c != p:
                found.append(f"cell {i + 1}: C++ {c!r}, Python {p!r}")
                break
    return found


def check(root):
    failures = 0
    for name, main, twin in lessons(root):
        cpp_titles = [c.title for c in cpp_cells(main)]
        twin_cells = py_cells(twin) if twin else []
        py_titles = [c.title for c in twin_cells] if twin else None
        code_in_cpp_only = [c.title for c in twin_cells if c.title.endswith(CPP_ONLY) and any(
            line.strip() and not line.strip().startswith("#") for line in c.source.splitlines())]
        found = problems(cpp_titles, py_titles, code_in_cpp_only)
        # The check must be able to fail: the same lists with two cells swapped (or a C++-only title made
        # plain) must not pass.
        mutated_py = list(reversed(py_titles)) if py_titles and len(set(py_titles)) > 1 else None
        mutated_cpp = [t[: -len(CPP_ONLY)].rstrip() for t in cpp_titles] if py_titles is None else cpp_titles
        if not problems(mutated_cpp, mutated_py if py_titles is not None else None):
            found.append("the check passes a deliberately broken copy too")
        status = "ok" if not found else "MISMATCH"
        count = f"{len(cpp_titles)} C++ cells" + (f", {len(py_titles)} Python cells" if twin else ", no twin")
        print(f"{name}: {status} ({count})")
        for p in found:
            print("  " + p)
        failures += bool(found)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    print(__doc__)
    sys.exit(2)
