"""promref.stats: the Clopper-Pearson interval and the exact McNemar test, against values
worked out by hand, and ``promref evaluate`` printing both."""
import math
import re

import numpy as np
import pytest

from promref import PromrefError, save
from promref.cli import main as cli_main
from promref.errors import ShapeError
from promref.stats import accuracy_interval, format_interval, mcnemar
from promref.synthetic import random_model


def test_interval_edges_have_closed_forms():
    # 0 of n: [0, 1 - (a/2)^(1/n)]; n of n: [(a/2)^(1/n), 1]
    zero, full = accuracy_interval(0, 10), accuracy_interval(10, 10)
    assert zero.low == 0 and math.isclose(zero.high, 1 - 0.025 ** (1 / 10), rel_tol=1e-9)
    assert full.high == 1 and math.isclose(full.low, 0.025 ** (1 / 10), rel_tol=1e-9)


def test_interval_contains_the_estimate_and_narrows_with_n():
    small, large = accuracy_interval(88, 100), accuracy_interval(8834, 10_000)
    assert small.low < 0.88 < small.high and large.low < 0.8834 < large.high
    assert large.high - large.low < small.high - small.low
    assert format_interval(large) == "88.34% (95% CI 87.69-88.96%, Clopper-Pearson)"


@pytest.mark.parametrize("correct, total, confidence", [(-1, 10, 0.95), (11, 10, 0.95), (0, 0, 0.95),
                                                        (5, 10, 1.0), (True, 10, 0.95)])
def test_interval_rejects_bad_counts(correct, total, confidence):
    with pytest.raises(PromrefError):
        accuracy_interval(correct, total, confidence)


def test_mcnemar_exact_p_value():
    labels = np.zeros(20, np.int64)
    a = np.zeros(20, np.int64)
    b = np.zeros(20, np.int64)
    b[:9] = 1      # 9 images only A gets right
    a[9] = 1       # 1 image only B gets right
    a[10:12] = b[10:12] = 2   # 2 both wrong
    test = mcnemar(a, b, labels)
    assert (test.only_a, test.only_b, test.both, test.neither) == (9, 1, 8, 2)
    assert math.isclose(test.p_value, 2 * (1 + 10) / 2 ** 10)      # two-sided binomial, 1 of 10 at 1/2
    assert mcnemar(b, a, labels).p_value == test.p_value
    assert mcnemar(a, a, labels).p_value == 1.0                    # no discordant image


def test_mcnemar_rejects_unpaired_inputs():
    with pytest.raises(ShapeError):
        mcnemar([1, 2], [1, 2, 3], [1, 2])
    with pytest.raises(ShapeError):
        mcnemar([], [], [])


def test_cli_prints_interval_and_paired_test(tmp_path, capsys, cifar10_root):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    save(random_model("cifar", 0.1, "prom", seed=1), first)
    save(random_model("cifar", 0.1, "prom", seed=2), second)
    assert cli_main(["evaluate", str(first), str(second), "--data", cifar10_root, "--limit", "60",
                     "--backend", "numpy", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("95% CI") == 2, out
    counts = re.search(r"only the first right on (\d+), only the second on (\d+) \(both (\d+), neither (\d+)\)", out)
    assert counts and sum(map(int, counts.groups())) == 60, out
    assert "exact McNemar" in out
