"""The registry of shipped models (promref/registry.py) in this checkout: names resolve to
the files in weights/, paths stay paths, unknown names fail clearly, and the command line
takes a name where it takes a weights file.  The same from an installed wheel:
tests/test_packaging.py."""
import os

import numpy as np
import pytest

import promref
from promref import PromrefError, registry
from promref.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "weights", "mbv2_prom.npz")

pytestmark = pytest.mark.skipif(not os.path.exists(WEIGHTS), reason="weights/mbv2_prom.npz is not in this checkout")


def test_name_resolves_to_the_checkout_weights():
    assert os.path.samefile(registry.model_path("mbv2_prom"), WEIGHTS)
    assert "mbv2_prom" in registry.available()
    assert registry.card_path(registry.model_path("mbv2_prom")).endswith("mbv2_prom.json")


def test_paths_stay_paths(tmp_path):
    assert registry.resolve("weights/mbv2_prom.npz") == "weights/mbv2_prom.npz"
    assert registry.resolve(tmp_path / "mbv2_prom") == tmp_path / "mbv2_prom"   # passed on to promref.load
    assert registry.resolve("./mbv2_prom") == "./mbv2_prom"   # the way to read a file called like a model


def test_unknown_name_is_a_clear_error():
    with pytest.raises(PromrefError, match="not a registered model.*mbv2_prom"):
        registry.model_path("resnet50")


def test_infer_by_name_equals_infer_by_path(monkeypatch):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    by_name = promref.infer("mbv2_prom", image, topk=3)
    monkeypatch.chdir(ROOT)   # the README's form, relative to the checkout
    assert promref.infer("weights/mbv2_prom.npz", image, topk=3) == by_name


def test_cli_infer_and_inspect_take_a_name(tmp_path, capsys, monkeypatch):
    from PIL import Image
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    monkeypatch.chdir(tmp_path)                # away from the checkout: the name still finds the model
    assert cli_main(["infer", "mbv2_prom", str(image), "--topk", "2", "--backend", "numpy"]) == 0
    assert str(image) in capsys.readouterr().out
    assert cli_main(["inspect", "mbv2_prom"]) == 0
    assert "PROM MobileNetV2" in capsys.readouterr().out
    assert cli_main(["infer", "no_such_model.npz", str(image)]) == 2
    assert "no_such_model.npz" in capsys.readouterr().err


def test_demo_classifies_the_cat_with_the_trained_model(capsys):
    pytest.importorskip("skimage", reason="the demo photo ships with scikit-image (pip install -e '.[demo]')")
    assert cli_main(["demo", "--topk", "3"]) == 0
    captured = capsys.readouterr()
    assert "UNTRAINED" not in captured.out + captured.err
    assert "mbv2_prom.npz" in captured.out
    first = next(line for line in captured.out.splitlines() if line.strip().startswith("1."))
    assert first.split()[1] == "cat", captured.out
