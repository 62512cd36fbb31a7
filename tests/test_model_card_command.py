"""Model cards record the training command as a user would type it, without this
machine's paths (promref/train/cli.py: user_command), and the shipped card does."""
import json
import os
import re
import shlex

from promref.train.cli import user_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_home_and_working_folder_paths_become_portable():
    argv = ["--width", "1.0", "--data", "/home/ann/.cache/promref/cifar10", "--out", "/srv/repo/weights/m.npz",
            "--checkpoint-dir=/home/ann/ckpt", "--resume"]
    command = user_command(argv, home="/home/ann", cwd="/srv/repo")
    assert command == ("promref train --width 1.0 --data ~/.cache/promref/cifar10 --out weights/m.npz "
                       "--checkpoint-dir=~/ckpt --resume")


def test_other_paths_and_odd_names_stay_exact():
    command = user_command(["--out", "/home/ann/my run/m.npz", "--data", "/mnt/cifar", "--data", "/home/ann"],
                           home="/home/ann", cwd="/srv")
    assert command == "promref train --out ~/'my run/m.npz' --data /mnt/cifar --data ~"
    # what a shell would pass back, once ~ is expanded
    words = shlex.split(command.replace("~", "/home/ann"))
    assert words[3] == "/home/ann/my run/m.npz"


def test_shipped_card_has_no_machine_paths():
    with open(os.path.join(ROOT, "weights", "mbv2_prom.json")) as f:
        card = json.load(f)
    assert card["command"].startswith("promref train ")
    assert not re.search(r"(^|[\s=])/", card["command"]), card["command"]
    assert not re.search(r"/(root|home|work|tmp)/", json.dumps(card)), "the card names a machine path"


def test_fork_cards_have_intervals_and_paired_tests(tmp_path, cifar10_root):
    """One float-only run, its int8 and PROM QAT forks (``--init-from``): each card holds the
    95 % Clopper-Pearson interval of each accuracy, McNemar's test against the float twin (and,
    with ``--compare-with``, against the int8 twin) on the same test images, the float phase's
    source, the epochs and the training time of all epochs; `promref evaluate`'s figure is the card's."""
    import numpy as np
    from promref import format as fmt
    from promref.data.cifar10 import load_cifar10
    from promref.evaluate import evaluate_model
    from promref.stats import accuracy_interval, mcnemar
    from promref.train.cli import main

    common = ["--demo", "--data", cifar10_root, "--epochs-float", "1", "--train-subset", "256", "--test-subset",
              "100", "--batch-size", "32", "--bn-recalibration-batches", "2", "--quiet"]
    assert main(common + ["--epochs-qat", "0", "--checkpoint-dir", str(tmp_path / "float")]) == 0
    start = str(tmp_path / "float" / "last.npz")
    assert main(common + ["--epochs-qat", "1", "--scheme", "int8", "--init-from", start,
                          "--out", str(tmp_path / "int8.npz")]) == 0
    assert main(common + ["--epochs-qat", "1", "--init-from", start, "--out", str(tmp_path / "prom.npz"),
                          "--compare-with", str(tmp_path / "int8.npz")]) == 0
    cards = {s: json.loads((tmp_path / f"{s}.json").read_text()) for s in ("int8", "prom")}
    x, y = load_cifar10("test", root=cifar10_root)
    x, y = x[:100], y[:100]
    preds = {s: evaluate_model(fmt.load(tmp_path / f"{s}.npz"), x, y)[1] for s in cards}
    for scheme, card in cards.items():
        assert card["scheme"] == scheme and card["epochs"] == {"float": 1, "qat": 1} and card["seed"] == 0
        assert [h["phase"] for h in card["history"]] == ["float", "qat"]
        assert card["float_phase_from"].endswith("last.npz") and card["command"].startswith("promref train ")
        assert card["integer_top1"] == float(np.mean(preds[scheme] == y))  # what `promref evaluate` measures
        for part in ("integer", "float"):
            rec = card[part]
            ci = accuracy_interval(rec["correct"], 100)
            assert rec["images"] == 100 and rec["ci95"] == [ci.low, ci.high] and ci.low <= rec["top1"] <= ci.high
        assert card["float_top1"] == card["history"][0]["test_acc"]  # the twin's own predictions agree
        twin = card["paired_tests"][0]
        assert twin["b"] == "float twin" and twin["only_a"] + twin["only_b"] + twin["both"] + twin["neither"] == 100
        assert twin["both"] + twin["only_a"] == card["integer"]["correct"]
        assert twin["both"] + twin["only_b"] == card["float"]["correct"]
    assert cards["int8"]["float"] == cards["prom"]["float"]  # one float twin
    assert len(cards["int8"]["paired_tests"]) == 1
    vs_int8 = cards["prom"]["paired_tests"][1]
    test = mcnemar(preds["prom"], preds["int8"], y)
    assert (vs_int8["b"], vs_int8["only_a"], vs_int8["only_b"], vs_int8["p_value"]) == \
        ("int8.npz", test.only_a, test.only_b, test.p_value)
    assert "int8" in fmt.load(tmp_path / "int8.npz").name
