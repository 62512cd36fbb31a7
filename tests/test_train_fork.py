"""The QAT fork (``train(..., init_from=...)``, ``promref train --init-from``): the QAT phase
started from a float-only run's checkpoint gives the same bits as one uninterrupted float + QAT
run; PROM and int8 both fork from one float checkpoint; wrong checkpoints are refused by name."""
import json
from dataclasses import replace

import numpy as np
import pytest

from promref.errors import CheckpointError, PromrefError
from promref.train import train

from test_train_loop import TEST, TRAIN, Interrupted, InterruptAfter, assert_same_state, quiet, strip_timing, tiny


@pytest.fixture(scope="module")
def float_run(tmp_path_factory):
    """A float-only run (2 epochs) and its checkpoint directory."""
    folder = tmp_path_factory.mktemp("float")
    train(tiny(epochs_float=2, epochs_qat=0), TRAIN, TEST, checkpoint_dir=str(folder), progress=quiet())
    return folder / "last.npz"


def checkpoint_arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


@pytest.mark.parametrize("scheme", ["prom", "int8"])
def test_fork_equals_one_uninterrupted_run(tmp_path, float_run, scheme):
    config = tiny(epochs_float=2, epochs_qat=2, scheme=scheme)
    straight, history = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "a"), progress=quiet())
    forked, history_f = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "b"), progress=quiet(),
                              init_from=str(float_run))
    assert [h["phase"] for h in history_f] == ["float", "float", "qat", "qat"]
    assert_same_state(straight, forked)
    assert strip_timing(history) == strip_timing(history_f)
    a, b = checkpoint_arrays(tmp_path / "a" / "last.npz"), checkpoint_arrays(tmp_path / "b" / "last.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_prom_and_int8_forks_from_one_checkpoint_differ_and_resume_exactly(tmp_path, float_run):
    """Both schemes start from the same float weights; inside the QAT phase a fork resumes
    bitwise from its own checkpoint directory (``--resume`` takes precedence over ``init_from``)."""
    nets = {}
    for scheme in ("prom", "int8"):
        config = tiny(epochs_float=2, epochs_qat=2, scheme=scheme)
        nets[scheme], _ = train(config, TRAIN, TEST, progress=quiet(), init_from=str(float_run))
        with pytest.raises(Interrupted):  # stopped after its first epoch (the first QAT epoch)
            train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / scheme), progress=InterruptAfter(1),
                  init_from=str(float_run))
        with np.load(tmp_path / scheme / "last.npz") as z:
            assert json.loads(z["meta"].tobytes())["epoch"] == 2
        resumed, _ = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / scheme), resume=True,
                           progress=quiet(), init_from=str(float_run))
        assert_same_state(nets[scheme], resumed)
    prom, int8 = nets["prom"].export("p", backend="numba"), nets["int8"].export("i", backend="numba")
    assert [layer.op for layer in prom.layers] != [layer.op for layer in int8.layers]  # ternary vs int8 1x1


@pytest.mark.parametrize("field, value", [("lr", 0.05), ("seed", 3), ("batch_size", 16), ("width", 0.5),
                                          ("label_smoothing", 0.0), ("train_subset", 64)])
def test_fork_refuses_another_float_phase_naming_the_field(float_run, field, value):
    config = replace(tiny(epochs_float=2, epochs_qat=1), **{field: value})
    with pytest.raises(CheckpointError, match=rf"float phase was trained with another configuration.*\b{field}\b"):
        train(config, TRAIN, TEST, progress=quiet(), init_from=str(float_run))


def test_fork_accepts_other_qat_fields(float_run):
    config = tiny(epochs_float=2, epochs_qat=1, lr_qat=0.005, weight_decay_qat=0.0, rounding="double",
                  bn_recalibration_batches=1, scheme="int8")
    _, history = train(config, TRAIN, TEST, progress=quiet(), init_from=str(float_run))
    assert [h["phase"] for h in history] == ["float", "float", "qat"]


def test_fork_refuses_an_unfinished_or_finished_float_phase(tmp_path, float_run):
    with pytest.raises(Interrupted):  # a float run of 2 epochs stopped after 1
        train(tiny(epochs_float=2, epochs_qat=0), TRAIN, TEST, checkpoint_dir=str(tmp_path / "half"),
              progress=InterruptAfter(1))
    with pytest.raises(CheckpointError, match="float phase is unfinished: 1 of 2 float epochs"):
        train(tiny(epochs_float=2, epochs_qat=1), TRAIN, TEST, progress=quiet(),
              init_from=str(tmp_path / "half" / "last.npz"))
    # a checkpoint already inside its QAT phase holds QAT-trained weights, not the float phase's
    train(tiny(epochs_float=2, epochs_qat=1), TRAIN, TEST, checkpoint_dir=str(tmp_path / "qat"), progress=quiet(),
          init_from=str(float_run))
    with pytest.raises(CheckpointError, match="not exactly the 2 float epochs"):
        train(tiny(epochs_float=2, epochs_qat=1), TRAIN, TEST, progress=quiet(),
              init_from=str(tmp_path / "qat" / "last.npz"))
    assert issubclass(CheckpointError, PromrefError)


def test_float_only_run_resumes_whatever_its_qat_fields(tmp_path):
    """A float-only run's QAT fields cannot matter to it: a resume with other QAT defaults is exact
    (so a float run continues across a change of the QAT recipe); a float field still refuses."""
    config = tiny(epochs_float=2, epochs_qat=0)
    straight, _ = train(config, TRAIN, TEST, progress=quiet())
    with pytest.raises(Interrupted):
        train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path), progress=InterruptAfter(1))
    later = replace(config, lr_qat=0.02, rounding="double", scheme="int8")
    resumed, _ = train(later, TRAIN, TEST, checkpoint_dir=str(tmp_path), resume=True, progress=quiet())
    assert_same_state(straight, resumed)
    with pytest.raises(CheckpointError, match=r"another configuration.*\blr\b"):
        train(replace(config, lr=0.2), TRAIN, TEST, checkpoint_dir=str(tmp_path), resume=True, progress=quiet())
    # the checkpoint now records ``later``'s QAT fields; a run with a QAT phase compares all fields
    with pytest.raises(CheckpointError, match=r"another configuration.*\blr_qat\b"):
        train(replace(config, epochs_qat=1), TRAIN, TEST, checkpoint_dir=str(tmp_path), resume=True, progress=quiet())


def test_cli_refuses_a_missing_start_or_no_qat_phase(tmp_path, float_run):
    from promref.errors import TrainArgumentError
    from promref.train.cli import main
    with pytest.raises(TrainArgumentError, match="--init-from .*no such checkpoint"):
        main(["--demo", "--init-from", str(tmp_path / "none.npz")])
    with pytest.raises(TrainArgumentError, match="needs --epochs-qat of at least 1"):
        main(["--demo", "--epochs-qat", "0", "--init-from", str(float_run)])
    with pytest.raises(TrainArgumentError, match="float-only run .* has none"):
        main(["--demo", "--epochs-qat", "0", "--out", str(tmp_path / "m.npz")])
    with pytest.raises(TrainArgumentError, match="--batch-stats-epochs-qat"):
        main(["--demo", "--epochs-qat", "2", "--batch-stats-epochs-qat", "3"])
    with pytest.raises(TrainArgumentError, match="--multipliers must be one of"):
        main(["--demo", "--multipliers", "float32"])
