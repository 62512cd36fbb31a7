"""Build the tutorial notebooks from their sources in tutorials/src/*.py.

Each source file holds cells separated by lines ``# %% [markdown]`` or
``# %%`` (the "percent" format that VS Code, PyCharm, Spyder and jupytext
understand); in a markdown cell every line starts with ``# ``.  The notebooks
are generated, never edited by hand, and committed **without outputs**; CI
executes them (tests/test_tutorials.py) and checks that every committed
notebook is exactly what this script writes from its source.

    python tutorials/make_notebooks.py            # (re)write tutorials/NN_name.ipynb
    python tutorials/make_notebooks.py --check    # exit 1 if a notebook is stale or missing
"""
import glob
import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def cells_from_percent_script(text):
    """Split percent-format ``text`` into nbformat cells (markdown and code)."""
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def sources():
    """The notebook sources, in order: tutorials/src/NN_name.py."""
    return sorted(glob.glob(os.path.join(HERE, "src", "[0-9][0-9]_*.py")))


def notebook_path(src):
    """tutorials/src/NN_name.py -> tutorials/NN_name.ipynb."""
    return os.path.join(HERE, os.path.splitext(os.path.basename(src))[0] + ".ipynb")


def build(src):
    """The notebook text (JSON, no outputs) generated from the source file ``src``.

    Cell ids are numbered (``c00``, ``c01``, ...) rather than random, so the
    same source always gives the same bytes.
    """
    with open(src, encoding="utf-8") as f:
        cells = cells_from_percent_script(f.read())
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for src in sources():
        out = notebook_path(src)
        text = build(src)
        current = None
        if os.path.exists(out):
            with open(out, encoding="utf-8") as f:
                current = f.read()
        if current == text:
            continue
        if check:
            stale.append(os.path.relpath(out))
            continue
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print("wrote", os.path.relpath(out))
    if stale:
        print("stale or missing (run python tutorials/make_notebooks.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
