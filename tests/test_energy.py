"""Tests of promref.energy: op counts tied to what the reference kernels do,
energy and storage arithmetic, the paper comparison, files, CLI and plots."""
import json
import math
import os

import numpy as np
import pytest

from promref import arith, format as promref_format
from promref.energy import (HOROWITZ_45NM, PRESETS, accounting, energy_table, geometry, layer_op_rows,
                            main, mobilenetv2_report, paper_comparison, report)
from promref.energy.counts import integer_ops
from promref.energy.measure import CountingArray, count_reference_ops, counting, summarize
from promref.energy.report import file_contents
from promref.kernels import reference as reference_kernels
from promref.architectures import mobilenetv2_layout
from promref.synthetic import random_model


@pytest.fixture(scope="module")
def cifar_prom():
    return random_model("cifar", 0.35, "prom", seed=3)


@pytest.fixture(scope="module")
def cifar_int8():
    return random_model("cifar", 0.35, "int8", seed=4)


@pytest.fixture(scope="module")
def imagenet_prom():
    return random_model("imagenet", 0.35, "prom", seed=5, calibration_images=1)


@pytest.fixture(scope="module")
def mbv2():
    """MobileNetV2 1.0/224 layout under the default ('paper') accounting."""
    return mobilenetv2_report("imagenet", 1.0)


def images(model, n, seed=0):
    size = (n, model.input.height, model.input.width, 3)
    return np.random.default_rng(seed).integers(-128, 128, size=size).astype(np.int8)


# ------------------------------------------------- counts from geometry


def test_mobilenetv2_imagenet_counts_match_the_cost_split(mbv2):
    macs = mbv2.by_kind("macs", "prom")
    assert sum(macs.values()) == 300_774_272
    assert macs["stem"] == 112 * 112 * 32 * 3 * 3 * 3          # padding taps included
    assert macs["depthwise"] == 20_716_416
    assert macs["expand"] + macs["project"] == 247_869_440
    assert macs["last_conv"] == 7 * 7 * 320 * 1280
    assert macs["classifier"] == 1280 * 1000
    params = sum(layer.geometry.params for layer in mbv2.layers)
    assert params == 3_469_760  # torchvision's 3,504,872 less 1,000 fc biases and 2 x 17,056 BN params


def test_model_geometry_equals_layout_geometry(imagenet_prom):
    from_model = geometry(imagenet_prom)
    from_layout = geometry(mobilenetv2_layout("imagenet", 0.35, "prom"))
    assert [(g.name, g.in_hw, g.out_hw, g.padding, g.macs, g.params) for g in from_model] == \
        [(g.name, g.in_hw, g.out_hw, g.padding, g.macs, g.params) for g in from_layout]


def test_layer_op_rows(cifar_prom):
    rows = layer_op_rows(cifar_prom)
    assert [r["name"] for r in rows] == [layer.name for layer in cifar_prom.layers]
    by_name = {r["name"]: r for r in rows}
    stem = by_name["stem"]
    assert stem["macs"] == stem["multiplications"] == stem["additions"] == 32 * 32 * 16 * 27  # 16 channels
    t = cifar_prom.layer("b2.expand")
    row = by_name["b2.expand"]
    assert row["multiplications"] == 0 and row["weights"] == "ternary"
    assert row["additions"] == row["macs"] == 32 * 32 * t.in_channels * t.out_channels
    assert row["additions_sparse"] == 32 * 32 * int(np.count_nonzero(t.weights))
    assert by_name["pool"]["additions"] == by_name["pool"]["output"][2] * (4 * 4 - 1)
    assert by_name["b3.add"]["requantizations"] == 3 * 32 * 32 * cifar_prom.layer("b3.add").out_channels
    layout_rows = layer_op_rows(mobilenetv2_layout("cifar", 0.35, "prom"))
    assert [r["macs"] for r in layout_rows] == [r["macs"] for r in rows]
    assert all(r["additions_sparse"] is None for r in layout_rows if r["weights"] == "ternary")


# ----------------------------- counts tied to an instrumented forward pass


def expected_from_geometry(g, n, weights):
    """What the model's counts say the reference performs on n images, by category."""
    ops = integer_ops(g, ternary_zeros="sparse" if g.weight_format == "ternary" else "dense")
    expected = {
        "multiplications": ops["mul_int8"],
        "additions": ops["acc_add"] + ops["ternary_add"] + ops["zero_point_sub"] + ops["residual_add"]
        + ops["pool_add"],
        "shifts": ops["shift"],
        "requantizations": ops["requant"],
        "rescales": ops["rescale"],
        "averages": ops["pool_div"],
    }
    if g.weight_format == "ternary":
        # the reference computes sum(+1 inputs) - sum(-1 inputs) + bias: an empty group sums to 0
        # with no addition, but is still subtracted / added: one extra addition of 0 per pixel
        empty = int(np.sum(~np.any(weights == 1, axis=1)) + np.sum(~np.any(weights == -1, axis=1)))
        assert empty == g.empty_groups
        expected["additions"] += empty * g.pixels
    return {k: v * n for k, v in expected.items() if v}


@pytest.mark.parametrize("name", ["cifar_prom", "cifar_int8", "imagenet_prom"])
def test_instrumented_reference_counts_equal_model_counts(name, request):
    model = request.getfixturevalue(name)
    n = 2 if name != "imagenet_prom" else 1
    x = images(model, n, seed=1)
    logits, counted = count_reference_ops(model, x)
    np.testing.assert_array_equal(logits, model.forward(x, backend="numpy"))  # counting changes nothing
    assert set(counted) == {layer.name for layer in model.layers}
    for g, layer in zip(geometry(model), model.layers):
        measured = summarize(counted[g.name])
        assert measured == expected_from_geometry(g, n, layer.weights), g.name


def test_ternary_layers_do_not_multiply_and_skip_zeros(cifar_prom):
    x = images(cifar_prom, 1)
    _, counted = count_reference_ops(cifar_prom, x)
    for g in geometry(cifar_prom):
        if g.weight_format == "ternary":
            measured = summarize(counted[g.name])
            assert "multiplications" not in measured
            assert g.nonzero < g.params
            assert measured["additions"] < g.macs   # the dense count is not what the reference does


def test_counter_restores_everything_and_refuses_unknown_arithmetic():
    before = {op: getattr(reference_kernels, op) for op in reference_kernels.__all__}
    table = dict(reference_kernels.OPS)
    requantize = arith.requantize
    with counting():
        assert arith.requantize is not requantize
        assert reference_kernels.OPS["conv2d"] is not table["conv2d"]
        a = np.arange(6).reshape(2, 3).view(CountingArray)
        with pytest.raises(TypeError, match="einsum is not instrumented"):
            np.einsum("ij->i", a)
        with pytest.raises(RuntimeError, match="already active"):
            with counting():
                pass
    assert arith.requantize is requantize
    assert {op: getattr(reference_kernels, op) for op in reference_kernels.__all__} == before
    assert reference_kernels.OPS == table


# ------------------------------------------------------------------ energy


def test_energy_is_counts_times_table(mbv2):
    t = HOROWITZ_45NM
    macs = 300_774_272
    residual, pool_adds, pooled = 216_384, 1280 * 48, 1280
    fp16 = macs * (t.mul_fp16 + t.add_fp16) + (residual + pool_adds) * t.add_fp16 + pooled * t.mul_fp16
    assert mbv2.energy_pj("float16") == pytest.approx(fp16, rel=1e-12)
    ternary = 267_939_840                         # every 1x1 conv position, zeros included
    int8_macs = macs - ternary                    # stem, depthwise, classifier
    pointwise_outputs = 3_974_880
    prom = ternary * t.add_int8 + int8_macs * (t.mul_int8 + t.add_int32) + pointwise_outputs * t.mul_int8 \
        + (residual + pool_adds) * t.add_int32
    assert mbv2.energy_pj("prom") == pytest.approx(prom, rel=1e-12)
    assert mbv2.energy_pj("float32") == pytest.approx(
        macs * (t.mul_fp32 + t.add_fp32) + (residual + pool_adds) * t.add_fp32 + pooled * t.mul_fp32, rel=1e-12)


def test_paper_figures(mbv2):
    """The 'paper' accounting lands within 1 % of the paper's 23.9x; storage does not reach 2.7x."""
    assert mbv2.energy_ratio("prom") == pytest.approx(24.12, abs=0.01)
    assert abs(mbv2.energy_ratio("prom") / 23.9 - 1) < 0.01
    assert mbv2.storage_ratio("prom") == pytest.approx(3.70, abs=0.01)
    rows = {r["accounting"]: r for r in paper_comparison()}
    assert set(rows) == {name for name, a in PRESETS.items() if a.ternary_zeros == "dense"}
    assert rows["paper-requant-all"]["energy_ratio"] < 23.9 < rows["paper"]["energy_ratio"]
    assert min(r["storage_ratio"] for r in rows.values()) > 2.7


def test_energy_table_overrides(mbv2, tmp_path):
    cheaper = HOROWITZ_45NM.replace(name="cheap adds", add_int8=0.01)
    rep = mobilenetv2_report("imagenet", 1.0, table=cheaper)
    assert mbv2.energy_pj("prom") - rep.energy_pj("prom") == pytest.approx(267_939_840 * 0.02)
    assert rep.energy_pj("float16") == mbv2.energy_pj("float16")
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"name": "json table", "add_int8": 0.01}))
    from_file = energy_table(str(path))
    assert from_file.add_int8 == 0.01 and from_file.mul_fp16 == HOROWITZ_45NM.mul_fp16
    assert energy_table({"add_int8": 0.01}).add_int8 == 0.01
    with pytest.raises(ValueError, match="add_int8"):
        energy_table({"add_int8": -1})
    with pytest.raises(ValueError, match="unknown energy table key"):
        HOROWITZ_45NM.replace(add_int4=0.01)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        energy_table(str(path))


def test_accounting_options_move_the_numbers_as_stated(mbv2):
    def ratio(**kw):
        return mobilenetv2_report("imagenet", 1.0, **kw).energy_ratio("prom")
    assert ratio(requant="none") > mbv2.energy_ratio("prom") > ratio(requant_layers="all")
    assert ratio(ternary_add="int32") < 13
    assert ratio(last_conv_pointwise=False) < ratio()
    # int8 config: every layer int8 MACs, so its energy does not depend on ternary options
    assert mobilenetv2_report("imagenet", 1.0, ternary_add="int32").energy_pj("int8") == mbv2.energy_pj("int8")
    with pytest.raises(ValueError, match="requant must be one of"):
        accounting("paper", requant="int4")
    with pytest.raises(ValueError, match="unknown accounting option"):
        accounting("paper", colour="red")
    with pytest.raises(ValueError, match="unknown accounting"):
        accounting("nope")
    with pytest.raises(ValueError, match="sparse ternary counts need"):
        mobilenetv2_report("imagenet", 1.0, ternary_zeros="sparse")


def test_sparse_counts_use_the_real_zeros(cifar_prom):
    dense = report(cifar_prom)
    sparse = report(cifar_prom, ternary_zeros="sparse")
    for d, s, layer in zip(dense.layers, sparse.layers, cifar_prom.layers):
        if layer.op == "pointwise_ternary":
            n_dense = d.ops["prom"][("ternary add", "add_int8")]
            n_sparse = s.ops["prom"][("ternary add", "add_int8")]
            assert n_dense == d.geometry.macs
            assert n_sparse == np.count_nonzero(layer.weights) * d.geometry.pixels
    assert sparse.energy_pj("prom") < dense.energy_pj("prom")
    assert sparse.energy_pj("int8") == dense.energy_pj("int8")
    # a loaded PROM model is its own prom configuration: what-if options on the layer kinds do not apply
    what_if = report(cifar_prom, last_conv_pointwise=False, classifier_pointwise=True)
    assert what_if.energy_pj("prom") == dense.energy_pj("prom") and what_if.notes


# ----------------------------------------------------------------- storage


def test_storage_accounting(mbv2):
    layer = next(x for x in mbv2.layers if x.name == "b2.expand")   # 16 -> 96: 1536 weights
    assert layer.storage["prom"]["weights"] == 1536 / 4
    trits = mobilenetv2_report("imagenet", 1.0, ternary_packing="5trits")
    assert next(x for x in trits.layers if x.name == "b2.expand").storage["prom"]["weights"] == math.ceil(1536 / 5)
    assert mbv2.storage_bytes("float16") == 2 * 3_469_760
    assert mbv2.storage_bytes("int8") == 3_469_760
    full = mobilenetv2_report("imagenet", 1.0, biases=True, scales="float32", bn=True)
    channels = sum(x.geometry.out_channels for x in full.layers if x.geometry.weighted)
    bn_channels = channels - 1000
    assert full.storage_bytes("float16") == 2 * 3_469_760 + 2 * 1000 + 2 * 4 * bn_channels
    adds = sum(1 for x in full.layers if x.geometry.op == "add")
    assert full.storage_bytes("int8") == 3_469_760 + 8 * channels + 12 * adds


@pytest.mark.parametrize("name", ["cifar_prom", "cifar_int8"])
def test_file_report_matches_the_file(name, request, tmp_path):
    model = request.getfixturevalue(name)
    path = tmp_path / "model.npz"
    promref_format.save(model, path)
    rep = report(str(path), "promref-file")
    assert rep.file["size"] == os.path.getsize(path)
    assert rep.file["size"] == rep.file["arrays"] + rep.file["meta"] + rep.file["overhead"]
    assert rep.own_config == ("prom" if name == "cifar_prom" else "int8")
    # the 'promref-file' accounting counts exactly the bytes of the arrays the file holds
    assert rep.storage_bytes(rep.own_config) == rep.file["arrays"] == rep.file["computed_arrays"]
    assert report(str(path)).file["computed_arrays"] == rep.file["arrays"]  # whatever the accounting
    assert file_contents(path)["arrays"] == rep.file["arrays"]


# --------------------------------------------------------------------- CLI


def test_cli_arch_prints_the_paper_comparison(capsys):
    assert main(["--arch", "mobilenetv2", "--config", "imagenet", "--width", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "accounting: paper" in out and "b17.project" in out
    assert "24.12x" in out and "23.9x" in out and "2.7x" in out and "3.70x" in out


def test_cli_weights_file(cifar_prom, tmp_path, capsys):
    path = tmp_path / "m.npz"
    promref_format.save(cifar_prom, path)
    assert main([str(path), "--sparse", "--no-layers"]) == 0
    out = capsys.readouterr().out
    assert f"{os.path.getsize(path):,} bytes on disk" in out
    assert "ternary_zeros = sparse" in out and "b2.expand" not in out
    assert main([str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["file"]["size"] == os.path.getsize(path)
    assert len(data["layers"]) == len(cifar_prom.layers)
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"name": "mine", "add_int8": 0.01}))
    assert main([str(path), "--energy-table", str(table), "--no-layers"]) == 0
    assert "energy table: mine" in capsys.readouterr().out


def test_cli_grid_and_errors(tmp_path, capsys):
    assert main(["--arch", "mobilenetv2", "--grid", "requant=none,int8", "--grid", "biases=false,true"]) == 0
    out = capsys.readouterr().out
    assert out.count("x  ") >= 4 and "25.19x" in out
    assert main([]) == 2
    assert main([str(tmp_path / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["--arch", "mobilenetv2", "--set", "requant=int4"]) == 1
    assert main(["--arch", "mobilenetv2", "--set", "nonsense"]) == 1
    assert main(["--arch", "mobilenetv2", "--config", "cifar", "--sparse"]) == 1
    assert main(["--list-accountings"]) == 0
    assert "promref-file" in capsys.readouterr().out


# -------------------------------------------------------------------- plots


def test_plots(cifar_prom, tmp_path):
    pytest.importorskip("matplotlib")
    from promref.energy.plot import cost_split_plot, energy_accuracy_plot
    rep = report(cifar_prom)
    card = {"accuracy": {"float16": 93.0, "int8": 92.7, "PROM": 92.1}}  # made up
    fig = energy_accuracy_plot(rep, card)
    assert len(fig.axes[0].collections) == 3
    fig.savefig(tmp_path / "ea.png")
    fig = cost_split_plot(rep)
    assert len(fig.axes[0].patches) == 3 * len(rep.by_kind("energy", "prom"))
    fig.savefig(tmp_path / "cs.png")
    assert (tmp_path / "cs.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no accuracy"):
        energy_accuracy_plot(rep, {"accuracy": {"fp8": 1.0}})


def twin_card(scheme, integer, float_=(9310, 10_000), dataset="CIFAR-10 (JPEG copy)"):
    """A synthetic training card (the fields `promref train --out` writes that the energy report reads)."""
    from promref.stats import accuracy_interval

    def record(correct, images):
        ci = accuracy_interval(correct, images)
        return dict(top1=correct / images, correct=correct, images=images, ci95=[ci.low, ci.high])
    card = dict(scheme=scheme, dataset=dataset, test_images=10_000, float=record(*float_))
    if integer is not None:
        card["integer"] = record(integer, 10_000)
    return card


def test_twin_accuracies_from_the_three_cards(cifar_prom, tmp_path):
    from promref.energy.report import format_twins, twin_accuracies
    cards = [twin_card("float", None), twin_card("int8", 9301), twin_card("prom", 9288)]
    acc = twin_accuracies(cards)
    assert set(acc) == {"float32", "int8", "prom"}
    assert (acc["float32"]["top1"], acc["int8"]["top1"], acc["prom"]["top1"]) == (0.931, 0.9301, 0.9288)
    assert acc["prom"]["ci95"][0] < 0.9288 < acc["prom"]["ci95"][1]
    strip = lambda a: {k: {f: v for f, v in r.items() if f != "card"} for k, r in a.items()}  # noqa: E731
    assert strip(twin_accuracies(cards[1:])) == strip(acc)  # the twins' cards alone carry the float twin too
    rep = report(cifar_prom)
    table = format_twins(rep, acc)
    assert "prom" in table and "92.88%" in table and f"{rep.energy_ratio('prom'):.1f}x" in table
    with pytest.raises(ValueError, match="disagree on the float32 top-1"):
        twin_accuracies([twin_card("int8", 9301), twin_card("prom", 9288, float_=(9311, 10_000))])
    with pytest.raises(ValueError, match="dataset"):
        twin_accuracies([twin_card("int8", 9301), twin_card("prom", 9288, dataset="CIFAR-10")])
    with pytest.raises(ValueError, match="scheme"):
        twin_accuracies([{"integer_top1": 0.9}])


def test_energy_accuracy_plot_from_cards(cifar_prom, tmp_path):
    pytest.importorskip("matplotlib")
    from promref.energy.plot import energy_accuracy_plot
    cards = [twin_card("int8", 9301), twin_card("prom", 9288)]
    fig = energy_accuracy_plot(report(cifar_prom), cards)
    from matplotlib.collections import LineCollection, PathCollection
    ax = fig.axes[0]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sorted(float(c.get_offsets()[0][1]) for c in points) == pytest.approx([92.88, 93.01, 93.1])  # float32, int8, PROM
    assert len(bars) == 3  # each with its 95 % interval
    fig.savefig(tmp_path / "ea.png")


def test_energy_cli_reads_the_twins_cards(cifar_prom, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from promref.cli import main as promref_main
    from promref.format import save
    weights = tmp_path / "prom.npz"
    save(cifar_prom, weights)
    paths = []
    for card in (twin_card("int8", 9301), twin_card("prom", 9288)):
        paths.append(tmp_path / f"{card['scheme']}.json")
        paths[-1].write_text(json.dumps(card))
    plot = tmp_path / "ea.png"
    assert promref_main(["energy", str(weights), "--cards", *map(str, paths), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "92.88%" in out and "93.01%" in out and "93.10%" in out and plot.stat().st_size > 0
    assert promref_main(["energy", str(weights), "--plot", str(plot)]) == 1        # a plot of no cards
    assert "give their model cards" in capsys.readouterr().err
    paths[0].write_text("{not json")
    assert promref_main(["energy", str(weights), "--cards", *map(str, paths)]) == 1  # a clear error, no traceback
    assert "promref energy: error" in capsys.readouterr().err
