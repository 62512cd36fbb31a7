"""The tutorials and the generated docs.

* Every notebook in tutorials/ runs top to bottom in a fresh ``python3`` kernel
  (working directory tutorials/, as a student would run it) within its time
  budget, without an error, and draws at least one figure.  Then the answer key
  below is run in the same kernel: each exercise's ``check`` accepts the right
  answer and rejects a wrong one, so the hidden answers really are checkable.
* Every committed notebook is exactly what ``tutorials/make_notebooks.py`` (jupytext)
  generates from its source in tutorials/src/ (no drift), and carries no
  outputs: notebooks are committed stripped, by design (tutorials/README.md).
* docs/api.md is what ``tools/make_api_docs.py`` generates from the docstrings.

The execution tests need nbclient, nbformat, ipykernel and matplotlib (the
``tutorials`` extra of setup.py, which CI installs) and are skipped without
them.  ipykernel's wheel installs the ``python3`` kernelspec (and
jupyter_client falls back to ipykernel's own when none is registered), and
jupyter_client starts it with this very interpreter, so nothing needs to be
registered by hand.  Notebook 4 trains on CIFAR-10 and is skipped, with the
reason, when no copy can be found or built (see ``cifar10_reason``).
"""
import importlib.util
import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = REPO / "tutorials"
SOURCES = sorted((TUTORIALS / "src").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
SHARED_CIFAR10_SCRIPT = REPO.parent / "shared" / "data" / "cifar10" / "make_cifar10.py"

#: wall-clock budget of one notebook, kernel start included (seconds); all five take
#: about two minutes on two cores, most of it notebook 4's training
NOTEBOOK_BUDGET_S = 300

#: the answer key: run after each notebook, in its kernel.  Each exercise's check()
#: must accept the right answer and reject a wrong one.
ANSWERS = {
    "01_why_prom": """
row = next(r for r in prom_rows if r["name"] == "b2.expand")
answer = row["additions"] * HOROWITZ_45NM["add_int8"] + row["requantizations"] * HOROWITZ_45NM["mul_int8"]
assert check(answer)
assert not check(row["macs"] * HOROWITZ_45NM["add_int8"])           # requantization forgotten
assert not check(None)
""",
    "02_ternary_int8_by_hand": """
assert check(0, 1)
assert not check(0, 0) and not check(1, 1) and not check(None, None)
""",
    "03_inside_integer_mobilenetv2": """
real = model.output.out_scale * (logits[0].astype(np.float64) - model.output.out_zero_point)
e = np.exp(real - real.max())
assert check((e / e.sum()).max())
assert not check(1.0 / model.num_classes - 0.01)
assert not check(None)
""",
    "04_qat_without_autograd": """
def answer_fold(w, gamma, beta, mean, var, eps=BN_EPS):
    k = gamma / np.sqrt(var + eps)
    return w * k[:, None], beta - mean * k
assert check(answer_fold)
assert not check(lambda w, gamma, beta, mean, var, eps=BN_EPS: (w * gamma[:, None], beta))
assert not check(my_fold)
""",
    "05_write_your_own_kernel": """
def answer_scale_double(acc, multiplier, shift):
    acc, m, shift = acc.astype(np.int64), multiplier.astype(np.int64), shift.astype(np.int64)
    high = (((acc << np.maximum(shift, 0)) * m) + (1 << 30)) >> 31      # SRDHM: ties up
    right = np.maximum(-shift, 0)
    mask = np.left_shift(np.int64(1), right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)               # RDBPOT: ties away from 0
assert check(answer_scale_double)
assert not check(my_scale_single)
assert not check(my_scale_double)
""",
}


def _load_tool(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cifar10_reason():
    """None when notebook 4 can find (or build) CIFAR-10 the way it looks for it, else why not."""
    if os.environ.get("PROMREF_CIFAR10"):
        return None                         # the notebook uses it (and says so if it is wrong)
    from promref.data import cifar10_available
    if cifar10_available(REPO / "local" / "cifar10") or cifar10_available() or SHARED_CIFAR10_SCRIPT.exists():
        return None
    return (f"no CIFAR-10 for notebook 4: $PROMREF_CIFAR10 is not set, neither local/cifar10 nor "
            f"~/.cache/promref/cifar10 holds it, and {SHARED_CIFAR10_SCRIPT} (to build local/cifar10) is absent")


# ------------------------------------------------------------ the files


def test_tutorial_sources_exist():
    assert [p.stem for p in SOURCES] == list(ANSWERS), "every tutorial needs an answer key entry, in order"


def test_every_notebook_is_generated_from_its_source():
    pytest.importorskip("nbformat", reason="needs nbformat (pip install -e '.[tutorials]')")
    pytest.importorskip("jupytext", reason="needs jupytext (pip install -e '.[tutorials]')")
    make = _load_tool(TUTORIALS / "make_notebooks.py", "make_notebooks")
    assert sorted(p.stem for p in NOTEBOOKS) == [p.stem for p in SOURCES], \
        "tutorials/*.ipynb and tutorials/src/*.py must match one to one: run python tutorials/make_notebooks.py"
    for src in SOURCES:
        expected = make.build(str(src))
        actual = (TUTORIALS / f"{src.stem}.ipynb").read_text(encoding="utf-8")
        assert actual == expected, (f"tutorials/{src.stem}.ipynb differs from what tutorials/src/{src.name} "
                                    f"generates: run python tutorials/make_notebooks.py")


def test_committed_notebooks_carry_no_outputs():
    nbformat = pytest.importorskip("nbformat", reason="needs nbformat (pip install -e '.[tutorials]')")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, \
                    f"{path.name}: committed notebooks are stripped of outputs"


def test_api_docs_are_up_to_date():
    tool = _load_tool(REPO / "tools" / "make_api_docs.py", "make_api_docs")
    actual = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert actual == tool.render(), "docs/api.md is out of date: run python tools/make_api_docs.py"


def test_docs_index_links_everything():
    index = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    for page in ("spec.md", "format.md", "energy.md", "conformance.md", "performance.md", "api.md",
                 "../tutorials/README.md"):
        assert f"]({page})" in index, page
    for path in NOTEBOOKS:
        assert f"](../tutorials/{path.name})" in index, path.name
        assert f"]({path.name})" in (TUTORIALS / "README.md").read_text(encoding="utf-8"), path.name


# ------------------------------------------------------------ running them


@pytest.mark.parametrize("name", [p.stem for p in SOURCES])
def test_notebook_runs_top_to_bottom(name):
    nbformat = pytest.importorskip("nbformat", reason="needs nbformat (pip install -e '.[tutorials]')")
    nbclient = pytest.importorskip("nbclient", reason="needs nbclient (pip install -e '.[tutorials]')")
    pytest.importorskip("ipykernel", reason="needs ipykernel (pip install -e '.[tutorials]')")
    pytest.importorskip("matplotlib", reason="needs matplotlib (pip install -e '.[tutorials]')")
    if name.startswith("04_"):
        reason = cifar10_reason()
        if reason:
            pytest.skip(reason)

    nb = nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(ANSWERS[name].strip()))
    deadline = time.monotonic() + NOTEBOOK_BUDGET_S
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())), startup_timeout=120)
    # the kernel imports this checkout's promref, and draws inline (a CI-wide MPLBACKEND=Agg
    # would stop ipykernel from choosing its inline backend, and every figure would vanish)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    start = time.monotonic()
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellTimeoutError:
        pytest.fail(f"{name}.ipynb did not finish within its budget of {NOTEBOOK_BUDGET_S} s")
    elapsed = time.monotonic() - start
    assert elapsed <= NOTEBOOK_BUDGET_S, f"{name}.ipynb took {elapsed:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"

    figures = sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
                  for out in cell.outputs)
    assert figures >= 1, f"{name}.ipynb drew no figure"
