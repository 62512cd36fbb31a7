"""Energy and storage of PROM and its baselines, per layer, with the work shown.

Counts come from layer geometry (:mod:`.counts`), prices from a named energy
table (:mod:`.tables`, default Horowitz 2014, 45 nm), and every accounting
choice is a named option (:mod:`.accounting`).  :mod:`.measure` counts the
operations the NumPy reference kernels actually perform, so tests can tie the
two together.  docs/energy.md explains every number.
"""
from .accounting import DEFAULT, PRESETS, Accounting, accounting
from .counts import LayerGeometry, format_op_rows, geometry, layer_op_rows
from .report import CONFIGS, PAPER, Report, format_report, mobilenetv2_report, paper_comparison, report
from .tables import HOROWITZ_45NM, EnergyTable, energy_table, load_energy_table

__all__ = ["Accounting", "PRESETS", "DEFAULT", "accounting", "LayerGeometry", "geometry", "layer_op_rows",
           "format_op_rows", "CONFIGS", "PAPER", "Report", "report", "mobilenetv2_report", "paper_comparison",
           "format_report", "EnergyTable", "HOROWITZ_45NM", "energy_table", "load_energy_table", "main"]


def main(argv=None):
    """``promref energy``: see :func:`promref.energy.cli.main`."""
    from .cli import main as _main
    return _main(argv)
