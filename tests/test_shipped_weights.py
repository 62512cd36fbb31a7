"""The shipped model: it loads, and its integer top-1 on the CIFAR-10 test set equals the
figure in its model card exactly (inference is deterministic, so "equal" means equal)."""
import json
import os

import numpy as np
import pytest

import promref
from promref.evaluate import evaluate_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "weights", "mbv2_prom.npz")
CARD = os.path.join(ROOT, "weights", "mbv2_prom.json")

pytestmark = pytest.mark.skipif(not os.path.exists(WEIGHTS),
                                reason="weights/mbv2_prom.npz is not trained and committed yet")


def _cifar_test_set():
    from promref.data.cifar10 import cifar10_available, load_cifar10
    for root in (os.environ.get("PROMREF_CIFAR10"), os.path.join(ROOT, "local", "cifar10")):
        if root and cifar10_available(root):
            return load_cifar10("test", root=root, return_source=True)
    pytest.skip("CIFAR-10 not found ($PROMREF_CIFAR10 or local/cifar10; tests/test_data_cifar.py builds it)")


def test_shipped_weights_load_and_are_prom():
    model = promref.load(WEIGHTS)
    kinds = {layer.kind: layer.op for layer in model.layers}
    assert kinds["expand"] == kinds["project"] == "pointwise_ternary"
    assert model.num_classes == 10


def test_shipped_weights_accuracy_matches_model_card():
    with open(CARD) as f:
        card = json.load(f)
    images, labels, source = _cifar_test_set()
    assert card["dataset"] == source.name
    accuracy, _ = evaluate_model(promref.load(WEIGHTS), images, labels)
    assert accuracy == card["integer_top1"]
    assert len(images) == card["test_images"] == 10_000


def test_shipped_weights_classify_the_demo_cat():
    skimage = pytest.importorskip("skimage")
    top = promref.infer(WEIGHTS, skimage.data.chelsea(), topk=5)
    assert "cat" in [p.label for p in top[:2]], top
    assert np.isclose(sum(p.probability for p in promref.infer(WEIGHTS, skimage.data.chelsea(), topk=10)), 1.0)
