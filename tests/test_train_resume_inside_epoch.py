"""Checkpoints inside an epoch (``checkpoint_every``): a run stopped mid-epoch, in either phase,
resumes bit for bit as the uninterrupted run; a wrong ``partial`` record is refused by name."""
import io
import json
import re
import zipfile

import numpy as np
import pytest

from promref.errors import CheckpointError
from promref.train import train
from promref.train.checkpoint import load_checkpoint
from promref.train.loop import Progress, build_network
from test_train_loop import TEST, TRAIN, assert_same_state, quiet, strip_timing, tiny

pytestmark = pytest.mark.usefixtures("one_numba_thread")  # tests/conftest.py

STEPS = len(TRAIN[0]) // 32  # tiny()'s batch of 32: 4 steps an epoch


class Stopped(Exception):
    pass


class StopAtStep(Progress):
    """Raises at the progress line of step ``step`` (1-based) of epoch ``epoch`` (1-based): the
    checkpoint then holds the steps before it (written after each step's line)."""

    def __init__(self, epoch, step):
        super().__init__(stream=io.StringIO())
        self.at = (epoch, step)

    def update(self, text, force=False):
        found = re.match(r"epoch (\d+)/\d+ \(\w+\) \[(\d+)/\d+\]", text)
        if found and (int(found[1]), int(found[2])) == self.at:
            raise Stopped(text)
        super().update(text, force)


def _partial(path):
    with np.load(path) as z:
        return json.loads(z["meta"].tobytes()).get("partial")


@pytest.mark.parametrize("stops", [
    [(1, 3)],            # inside the first epoch: no epoch finished yet (meta epoch -1)
    [(2, 4)],            # inside a later float epoch: the velocity and the running figures carry over
    [(3, 3)],            # inside the first QAT epoch: batch norm was re-estimated once, not again
    [(2, 2), (2, 4)],    # stopped twice inside one epoch
])
def test_resume_inside_an_epoch_is_bitwise_identical(tmp_path, stops):
    config = tiny(epochs_float=2, epochs_qat=1)
    straight, history = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "a"), progress=quiet(),
                              checkpoint_every=1)
    run = str(tmp_path / "b")
    for epoch, step in stops:
        with pytest.raises(Stopped):
            train(config, TRAIN, TEST, checkpoint_dir=run, resume=True, progress=StopAtStep(epoch, step),
                  checkpoint_every=1)
        partial = _partial(tmp_path / "b" / "last.npz")
        assert (partial["epoch"], partial["steps"]) == (epoch - 1, step - 1)
    log = io.StringIO()
    resumed, history_b = train(config, TRAIN, TEST, checkpoint_dir=run, resume=True,
                               progress=Progress(stream=log), checkpoint_every=1)
    assert f"and {stops[-1][1] - 1} of the {STEPS} steps of the next" in log.getvalue()
    assert_same_state(straight, resumed)
    assert strip_timing(history) == strip_timing(history_b)
    assert _partial(tmp_path / "b" / "last.npz") is None  # a finished run's checkpoint holds no epoch in progress
    with np.load(tmp_path / "a" / "last.npz") as za, np.load(tmp_path / "b" / "last.npz") as zb:
        for key in za.files:
            if key != "meta":
                np.testing.assert_array_equal(za[key], zb[key], err_msg=key)


def test_checkpoint_every_changes_no_result(tmp_path):
    config = tiny(epochs_float=1, epochs_qat=1)
    a, history_a = train(config, TRAIN, TEST, progress=quiet())
    b, history_b = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path), progress=quiet(), checkpoint_every=3)
    assert_same_state(a, b)
    assert strip_timing(history_a) == strip_timing(history_b)


@pytest.fixture
def stopped_run(tmp_path):
    config = tiny(epochs_float=2, epochs_qat=1)
    with pytest.raises(Stopped):
        train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path), progress=StopAtStep(2, 3), checkpoint_every=1)
    return str(tmp_path / "last.npz"), config


def _rewrite_partial(path, change):
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
    change(meta["partial"])
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    members["meta.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("change, match", [
    (lambda p: p.update(steps=STEPS), "do not fit this run's 4 steps"),
    (lambda p: p.update(seen=p["seen"] + 1), "do not fit"),
    (lambda p: p.update(epoch=5), "not an epoch in progress"),
    (lambda p: p.update(steps=0), "not an epoch in progress"),
    (lambda p: p.update(correct=p["seen"] + 1), "not an epoch in progress"),
    (lambda p: p.update(loss_sum="1.0"), "not an epoch in progress"),
    (lambda p: p.update(extra=1), "exactly"),
    (lambda p: p.pop("seconds"), "exactly"),
])
def test_a_wrong_partial_record_is_refused(stopped_run, change, match):
    path, config = stopped_run
    _rewrite_partial(path, change)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, build_network(config), config, STEPS)


def test_a_fork_refuses_a_checkpoint_inside_an_epoch(tmp_path):
    config = tiny(epochs_float=2, epochs_qat=0)
    with pytest.raises(Stopped):
        train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "f"), progress=StopAtStep(2, 3),
              checkpoint_every=1)
    with pytest.raises(CheckpointError, match="unfinished"):
        train(tiny(epochs_float=2, epochs_qat=1), TRAIN, TEST, init_from=str(tmp_path / "f" / "last.npz"),
              progress=quiet())
