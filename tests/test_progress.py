"""Progress bars (promref/progress.py): drawn only on a terminal and never with quiet; the
training bar shows loss, accuracy, images/s and the ETA, and leaves the run bit-identical
to one without it."""
import io
import sys

import numpy as np

from promref.progress import bar
from promref.train import train
from promref.train.loop import Progress
from test_train_loop import TEST, TRAIN, assert_same_state, strip_timing, tiny


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_is_silent_off_a_terminal_and_with_quiet(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert bar(10, "x").disable
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert bar(10, "x", quiet=True).disable
    with bar(10, "x") as b:
        assert not b.disable
        b.update(10)
        b.refresh()
        assert "10/10" in sys.stderr.getvalue()


def test_training_bar_changes_nothing(monkeypatch):
    config = tiny(train_subset=64, epochs_float=1, epochs_qat=1)
    quiet_net, quiet_history = train(config, TRAIN, TEST, progress=Progress(stream=io.StringIO(), quiet=True))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    lines = io.StringIO()
    net, history = train(config, TRAIN, TEST, progress=Progress(stream=lines, every_seconds=0.0))
    drawn = terminal.getvalue()
    assert "epoch 1/2 (float)" in drawn and "epoch 2/2 (qat)" in drawn
    assert "loss=" in drawn and "acc=" in drawn and "img/s" in drawn and "<" in drawn   # tqdm's ETA: [elapsed<left]
    assert "done" in lines.getvalue()                                                    # the log lines stay
    assert_same_state(net, quiet_net)
    assert strip_timing(history) == strip_timing(quiet_history)
    assert np.isfinite([h["loss"] for h in history]).all()
