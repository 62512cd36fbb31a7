"""The ``promref`` command line is one argparse tree: ``energy`` and ``conformance`` are real subparsers.

They register through ``register(subparsers)`` in their own cli modules; their
stand-alone entry points (``promref.energy.main``, ``promref.conformance.cli.main``,
``python -m promref.conformance``) keep working and print the same thing.
"""
import subprocess
import sys

import pytest

from promref.cli import build_parser, main
from promref.conformance.cli import main as conformance_main
from promref.energy import main as energy_main


@pytest.mark.parametrize("command, own_option", [("energy", "--accounting"), ("conformance", "generate"),
                                                  (("conformance", "check"), "--timeout")])
def test_help_of_a_registered_subcommand(command, own_option, capsys):
    words = [command] if isinstance(command, str) else list(command)
    with pytest.raises(SystemExit) as exit_:
        main(words + ["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: promref {' '.join(words)}") and own_option in out


def test_the_tree_has_no_placeholders():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("energy", "conformance"):
        assert sub.choices[name].add_help, f"{name} is still an add_help=False placeholder"
        assert sub.choices[name].get_default("func") is not None


def test_energy_through_the_tree_prints_what_its_own_main_prints(capsys):
    args = ["--arch", "mobilenetv2", "--config", "cifar", "--width", "0.5", "--no-layers"]
    assert energy_main(args) == 0
    alone = capsys.readouterr().out
    assert main(["energy"] + args) == 0
    assert capsys.readouterr().out == alone and "mobilenetv2 cifar width 0.5" in alone
    assert main(["energy"]) == 2  # neither weights nor --arch
    assert "give either a WEIGHTS file or --arch" in capsys.readouterr().err
    assert main(["energy", "--arch", "mobilenetv2", "--set", "nonsense"]) == 1


def test_conformance_through_the_tree_and_alone(tmp_path, capsys):
    suite = tmp_path / "suite"
    assert main(["conformance", "generate", str(suite), "--no-random-models", "--no-shipped", "--quiet"]) == 0
    assert "52 cases" in capsys.readouterr().out
    assert main(["conformance", "check", str(suite), "--reference", "--case", "add/*", "--quiet"]) == 0
    through_tree = capsys.readouterr().out
    assert conformance_main(["check", str(suite), "--reference", "--case", "add/*", "--quiet"]) == 0
    assert capsys.readouterr().out == through_tree
    assert main(["conformance", "check", str(suite)]) == 2  # no implementation named
    assert main(["conformance", "check", str(tmp_path / "missing"), "--reference"]) == 2
    assert "promref conformance: error:" in capsys.readouterr().err


def test_python_m_promref_conformance_still_runs():
    done = subprocess.run([sys.executable, "-m", "promref.conformance", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: promref conformance")
