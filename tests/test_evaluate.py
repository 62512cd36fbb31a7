"""`promref evaluate` and the model-card comparison behind it (the shipped card is checked
in tests/test_shipped_weights.py with the same command)."""
import json

import pytest

from promref import PromrefError, save
from promref.cli import main as cli_main
from promref.evaluate import compare_with_card
from promref.synthetic import random_model

CARD = dict(integer_top1=0.8713, test_images=10_000, dataset="CIFAR-10 (JPEG copy)")


def test_card_equal_figure_is_reproduced():
    same, message = compare_with_card(CARD, 8713 / 10_000, 10_000, "CIFAR-10 (JPEG copy)")
    assert same is True and "reproduced exactly" in message


def test_card_one_image_off_differs():
    same, message = compare_with_card(CARD, 8712 / 10_000, 10_000, "CIFAR-10 (JPEG copy)")
    assert same is False and "DIFFERENT" in message


@pytest.mark.parametrize("n, dataset", [(500, "CIFAR-10 (JPEG copy)"), (10_000, "CIFAR-10")])
def test_card_for_other_images_is_not_compared(n, dataset):
    same, message = compare_with_card(CARD, 0.8713, n, dataset)
    assert same is None and "not comparable" in message


@pytest.mark.parametrize("card", [{}, {"integer_top1": "87%"}, [0.87], None])
def test_card_without_figure_is_an_error(card):
    with pytest.raises(PromrefError, match="integer_top1"):
        compare_with_card(card, 0.5, 10, "CIFAR-10")


def test_cli_evaluates_and_compares_with_card(tmp_path, capsys, cifar10_root):
    root = cifar10_root
    weights = tmp_path / "random.npz"
    save(random_model("cifar", 0.35, "prom", seed=3), weights)
    assert cli_main(["evaluate", str(weights), "--data", root, "--limit", "40"]) == 0  # no card beside it
    out = capsys.readouterr().out
    assert "integer top-1 on 40 test images" in out and "model card" not in out

    # a card beside the weights is found; the figure on it must match exactly
    from promref import load
    from promref.data.cifar10 import load_cifar10
    from promref.evaluate import evaluate_model
    images, labels, source = load_cifar10("test", root=root, return_source=True)
    accuracy, _ = evaluate_model(load(weights), images[:40], labels[:40])
    card = dict(integer_top1=accuracy, test_images=40, dataset=source.name)
    (tmp_path / "random.json").write_text(json.dumps(card))
    assert cli_main(["evaluate", str(weights), "--data", root, "--limit", "40"]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    card["integer_top1"] = accuracy + 1 / 40 if accuracy < 1 else accuracy - 1 / 40
    (tmp_path / "random.json").write_text(json.dumps(card))
    assert cli_main(["evaluate", str(weights), "--data", root, "--limit", "40"]) == 1
    assert "DIFFERENT" in capsys.readouterr().out


def test_cli_rejects_non_cifar_model_and_bad_card(tmp_path, capsys, cifar10_root):
    weights = tmp_path / "imagenet.npz"
    save(random_model("imagenet", 0.1, "prom", seed=0), weights)
    assert cli_main(["evaluate", str(weights), "--data", str(tmp_path)]) == 2
    assert "10 classes" in capsys.readouterr().err
    assert cli_main(["evaluate", str(weights), "--limit", "-1"]) == 2
    assert "--limit" in capsys.readouterr().err

    root = cifar10_root
    weights = tmp_path / "cifar.npz"
    save(random_model("cifar", 0.1, "prom", seed=0), weights)
    (tmp_path / "cifar.json").write_text("{not json")
    assert cli_main(["evaluate", str(weights), "--data", root, "--limit", "5"]) == 2
    assert "cannot read the model card" in capsys.readouterr().err
