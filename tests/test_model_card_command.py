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
