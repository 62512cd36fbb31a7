"""A small sample of benchmarks/hostile_inputs.py (the full sweep is run by hand; see its docstring)."""
import importlib.util
import os

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the sweep forks a child per input")


def test_hostile_sample_has_no_hang_oom_foreign_error_or_external_program(capsys):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "hostile_inputs.py")
    spec = importlib.util.spec_from_file_location("hostile_inputs", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    code = sweep.main(["--per-kind", "4", "--seed", "1", "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "refused" in out and "external programs run 0" in out
