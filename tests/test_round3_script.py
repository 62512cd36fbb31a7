"""tools/round3_train.sh, the round-3 plan in one background job, on a tiny budget: the float
phase, both QAT forks from its checkpoint, the cards and the energy plot; run again, every
finished stage is skipped and nothing is trained twice."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "round3_train.sh")
TINY = ("--arch dsnet --epochs-float 1 --train-subset 256 --batch-size 64 --test-subset 100 --quiet "
        "--bn-recalibration-batches 2 --warmup-epochs 0")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the plan is a bash script")


def _run(tmp_path, cifar10_root):
    env = dict(os.environ, PROMREF_RUNS=str(tmp_path / "runs"), ROUND3_OUT=str(tmp_path / "out"),
               ROUND3_PLOT=str(tmp_path / "out" / "plot.png"), ROUND3_QAT_EPOCHS="1", ROUND3_TRAIN=TINY,
               PROMREF_CIFAR10=cifar10_root, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    out = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_the_plan_runs_every_stage_once(tmp_path, cifar10_root):
    (tmp_path / "out").mkdir()
    first = _run(tmp_path, cifar10_root)
    for stage in ("r3-float", "r3-int8", "r3-prom"):
        assert (tmp_path / "runs" / stage / "DONE").exists(), stage
    cards = {s: json.loads((tmp_path / "out" / f"mbv2_{s}.json").read_text()) for s in ("prom", "int8")}
    assert cards["prom"]["config"]["scheme"] == "prom" and cards["int8"]["config"]["scheme"] == "int8"
    # both forks started from the one float run: their histories share its float epoch
    assert cards["prom"]["history"][0] == cards["int8"]["history"][0]
    assert any("mbv2_int8.npz" in (t["b"] or "") for t in cards["prom"]["paired_tests"])
    assert (tmp_path / "out" / "plot.png").stat().st_size > 0
    assert "round 3 finished" in first

    again = _run(tmp_path, cifar10_root)
    assert again.count("done, skipped") == 3 and "QAT starts" not in again and "epoch 1/" not in again
