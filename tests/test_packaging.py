"""promref as people install it: ``python -m build`` makes an sdist and a wheel; the wheel
carries every package and the shipped model; installed into a fresh virtual environment
outside the checkout, ``promref demo`` classifies the cat with the *trained* model, and
``promref infer mbv2_prom`` / ``promref.infer("mbv2_prom", ...)`` find it too.  An editable
install finds it in weights/ of the checkout.

The virtual environments reuse this interpreter's installed dependencies
(``--system-site-packages``) and install promref itself without the network
(``--no-deps --no-index``); they have no pip or setuptools of their own (``--without-pip``), so
this interpreter's pip installs into them with this interpreter's setuptools.  The test needs ``build`` and ``setuptools>=77`` (the ``test``
extra) and takes about half a minute.  Every command runs in a folder outside the
checkout, without PYTHONPATH, and the test checks that the promref it ran is the
installed one.
"""
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import promref

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(str(p.parent.relative_to(ROOT)).replace(os.sep, ".")
                  for p in (ROOT / "promref").rglob("__init__.py"))
SHIPPED = sorted(p.name for p in (ROOT / "weights").iterdir() if p.suffix in (".npz", ".json"))


def _run(argv, cwd, env=None, timeout=600):
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed ({result.returncode}):\n" \
                                   f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _clean_env(venv=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if venv is not None:
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build", reason="needs the build frontend (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)], cwd=out,
         env=_clean_env())
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(os.listdir(out))
    return wheels[0], sdists[0]


@pytest.fixture
def venv(tmp_path_factory):
    """A fresh environment per test (a wheel's leftovers, e.g. Numba's cache files, would
    turn promref into a namespace package that hides a later editable install)."""
    folder = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder)], cwd=folder.parent)
    return folder


def test_wheel_carries_every_package_and_the_model(dists):
    wheel, _ = dists
    assert wheel.name == f"promref-{promref.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert packages == set(PACKAGES), "the wheel must hold exactly the packages of promref/"
    for name in SHIPPED:
        assert f"promref/weights/{name}" in names
    assert not any(n.startswith(("tests/", "weights/")) for n in names)


def test_sdist_carries_what_its_tests_need(dists):
    _, sdist = dists
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for needed in ["pyproject.toml", "setup.py", "README.md", "mkdocs.yml", "tools/mkdocs_hooks.py", "tests/conftest.py",
                   "tutorials/src/01_why_prom.py", "docs/index.md"] + [f"weights/{n}" for n in SHIPPED]:
        assert needed in names, needed


def test_wheel_installed_elsewhere_runs_the_trained_demo(dists, venv, tmp_path):
    pytest.importorskip("skimage", reason="the demo photo ships with scikit-image (pip install -e '.[demo]')")
    wheel, _ = dists
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
         cwd=tmp_path, env=_clean_env(venv))
    env = _clean_env(venv)
    where = _run([python, "-c", "import promref; print(promref.__file__)"], cwd=tmp_path, env=env).strip()
    assert Path(where).is_relative_to(venv), f"imported {where}, not the installed wheel"

    out = _run([venv / "bin" / "promref", "demo", "--topk", "3"], cwd=tmp_path, env=env)
    assert "UNTRAINED" not in out and "PROM MobileNetV2 CIFAR-10" in out, out
    assert f"{venv}" in out.splitlines()[0], "the demo must read the weights inside the installed package"
    first = next(line for line in out.splitlines() if line.strip().startswith("1."))
    assert first.split()[1] == "cat", out
    assert "bit-identical: yes" in out

    assert _run([venv / "bin" / "promref", "--version"], cwd=tmp_path, env=env).strip() == \
        f"promref {promref.__version__}"
    script = ("import json, promref, skimage.data\n"
              "top = promref.infer('mbv2_prom', skimage.data.chelsea(), topk=1)\n"
              "print(json.dumps([top[0].label, promref.registry.model_path('mbv2_prom')]))")
    label, path = json.loads(_run([python, "-c", script], cwd=tmp_path, env=env))
    assert label == "cat" and Path(path).is_relative_to(venv), (label, path)


def test_editable_install_finds_the_checkout_weights(venv, tmp_path):
    pytest.importorskip("build", reason="needs setuptools>=77 (pip install -e '.[test]')")
    python = venv / "bin" / "python"
    env = _clean_env(venv)
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", "-e", str(ROOT)],
         cwd=tmp_path, env=env)
    script = "import promref; print(promref.__file__); print(promref.registry.model_path('mbv2_prom'))"
    module, path = _run([python, "-c", script], cwd=tmp_path, env=env).split()
    assert Path(module).is_relative_to(ROOT) and Path(path) == ROOT / "weights" / "mbv2_prom.npz"
