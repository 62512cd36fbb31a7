"""The shipped model: it loads, and its integer top-1 on the CIFAR-10 test set equals the
figure in its model card exactly (inference is deterministic, so "equal" means equal)."""
import json
import os

import numpy as np
import pytest

import promref
from promref.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "weights", "mbv2_prom.npz")
CARD = os.path.join(ROOT, "weights", "mbv2_prom.json")

pytestmark = pytest.mark.skipif(not os.path.exists(WEIGHTS),
                                reason="weights/mbv2_prom.npz is not trained and committed yet")


def test_shipped_weights_load_and_are_prom():
    model = promref.load(WEIGHTS)
    kinds = {layer.kind: layer.op for layer in model.layers}
    assert kinds["expand"] == kinds["project"] == "pointwise_ternary"
    assert model.num_classes == 10


def test_shipped_weights_accuracy_matches_model_card(capsys, cifar10_root):
    """The documented command (docs/training.md): promref evaluate weights/mbv2_prom.npz."""
    with open(CARD) as f:
        card = json.load(f)
    assert card["test_images"] == 10_000 and card["dataset"].startswith("CIFAR-10")
    assert cli_main(["evaluate", WEIGHTS, "--data", cifar10_root]) == 0
    out = capsys.readouterr().out
    assert "on 10,000 test images" in out and "reproduced exactly" in out, out


def test_shipped_weights_classify_the_demo_cat():
    skimage = pytest.importorskip("skimage")
    top = promref.infer(WEIGHTS, skimage.data.chelsea(), topk=5)
    assert "cat" in [p.label for p in top[:2]], top
    assert np.isclose(sum(p.probability for p in promref.infer(WEIGHTS, skimage.data.chelsea(), topk=10)), 1.0)
