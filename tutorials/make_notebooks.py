"""Build the tutorial notebooks from their sources in tutorials/src/*.py with jupytext.

The sources are jupytext's "percent" format (cells separated by ``# %%`` and
``# %% [markdown]`` lines, which VS Code, PyCharm and Spyder understand too); jupytext
parses them.  This script only fixes what makes the output reproducible: numbered cell
ids (``c00``, ``c01``, ...) instead of random ones, the ``python3`` kernelspec, and no
jupytext pairing metadata.  The notebooks are generated, never edited by hand, and
committed **without outputs**; tests/test_tutorials.py checks that every committed
notebook is exactly what this script writes from its source.

    python tutorials/make_notebooks.py            # (re)write tutorials/NN_name.ipynb
    python tutorials/make_notebooks.py --check    # exit 1 if a notebook is stale or missing
"""
import glob
import os
import sys

import jupytext
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def sources():
    """The notebook sources, in order: tutorials/src/NN_name.py."""
    return sorted(glob.glob(os.path.join(HERE, "src", "[0-9][0-9]_*.py")))


def notebook_path(src):
    """tutorials/src/NN_name.py -> tutorials/NN_name.ipynb."""
    return os.path.join(HERE, os.path.splitext(os.path.basename(src))[0] + ".ipynb")


def build(src):
    """The notebook text (JSON, no outputs) that jupytext makes of the source file ``src``."""
    nb = jupytext.read(src, fmt="py:percent")
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:02d}"
        cell["metadata"] = {}
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    nb.nbformat, nb.nbformat_minor = 4, 5
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
