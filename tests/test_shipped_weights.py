"""Every shipped model (``weights/*.npz`` with its model card ``.json``): it loads, its layers
follow its card's scheme, and its integer top-1 on the CIFAR-10 test set equals the figure in
its card exactly (inference is deterministic, so "equal" means equal).  A model added to
weights/ with its card is checked here with no change to this file."""
import glob
import json
import os

import numpy as np
import pytest

import promref
from promref.architectures import SCHEMES
from promref.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "weights", "mbv2_prom.npz")
SHIPPED = sorted(path for path in glob.glob(os.path.join(ROOT, "weights", "*.npz"))
                 if os.path.exists(os.path.splitext(path)[0] + ".json"))
EXPECTED = ("mbv2_prom.npz",)   # at least these are shipped (mbv2_int8.npz joins with round 3)


def _card(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


def test_the_expected_models_are_shipped_with_cards():
    assert set(EXPECTED) <= {os.path.basename(p) for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_weights_load_and_follow_their_scheme(path):
    model = promref.load(path)
    scheme = _card(path)["config"]["scheme"]
    ternary = {layer.name for layer in model.layers if layer.op == "pointwise_ternary"}
    wanted = {layer.name for layer in model.layers if layer.kind in SCHEMES[scheme]}
    assert ternary == wanted and (scheme == "int8") == (not ternary), scheme
    assert model.num_classes == 10


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_weights_accuracy_matches_model_card(path, capsys, cifar10_root):
    """The documented command (docs/training.md): promref evaluate WEIGHTS."""
    card = _card(path)
    assert card["test_images"] == 10_000 and card["dataset"].startswith("CIFAR-10")
    assert cli_main(["evaluate", path, "--data", cifar10_root]) == 0
    out = capsys.readouterr().out
    assert "on 10,000 test images" in out and "reproduced exactly" in out, out


def test_shipped_weights_classify_the_demo_cat():
    skimage = pytest.importorskip("skimage")
    top = promref.infer(WEIGHTS, skimage.data.chelsea(), topk=5)
    assert "cat" in [p.label for p in top[:2]], top
    assert np.isclose(sum(p.probability for p in promref.infer(WEIGHTS, skimage.data.chelsea(), topk=10)), 1.0)
