"""Energy per arithmetic operation: named, overridable data.

The default is Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014: 45 nm, 0.9 V, energy of one operation in picojoules
(see ../shared/PROM.md and docs/energy.md).  Nothing else in promref.energy
has a number for energy in it: every joule reported is a count from
:mod:`promref.energy.counts` times an entry of an :class:`EnergyTable`.

Override from Python::

    from promref.energy import HOROWITZ_45NM
    table = HOROWITZ_45NM.replace(name="my 7 nm guess", add_int8=0.007)

or from a JSON file (``promref energy --energy-table FILE``)::

    {"name": "my table", "source": "...", "add_int8": 0.007, ...}

Keys left out of the file keep the Horowitz value.
"""
import dataclasses
import json

from .. import limits
from ..errors import PromrefError
from ..fileio import loads_json, read_regular
import math
import os
from dataclasses import dataclass

#: the operation keys of a table: (operation, operand type)
OPERATIONS = ("add_int8", "add_int32", "mul_int8", "mul_int32",
              "add_fp16", "mul_fp16", "add_fp32", "mul_fp32")

#: short descriptions of the keys, for reports
DESCRIPTIONS = {
    "add_int8": "int8 addition",
    "add_int32": "int32 addition",
    "mul_int8": "int8 x int8 multiplication",
    "mul_int32": "int32 x int32 multiplication",
    "add_fp16": "float16 addition",
    "mul_fp16": "float16 multiplication",
    "add_fp32": "float32 addition",
    "mul_fp32": "float32 multiplication",
}


@dataclass(frozen=True)
class EnergyTable:
    """Energy of one operation, in picojoules, by operation and operand type."""
    name: str
    source: str
    add_int8: float
    add_int32: float
    mul_int8: float
    mul_int32: float
    add_fp16: float
    mul_fp16: float
    add_fp32: float
    mul_fp32: float

    def __post_init__(self):
        for key in OPERATIONS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"energy table {self.name!r}: {key} must be a finite number >= 0 (pJ), "
                                 f"got {value!r}")

    def __getitem__(self, key):
        if key not in OPERATIONS:
            raise KeyError(f"{key!r} is not an operation of an energy table; expected one of {OPERATIONS}")
        return getattr(self, key)

    def replace(self, **changes):
        """A copy with some entries changed (``name`` should say so)."""
        unknown = set(changes) - set(OPERATIONS) - {"name", "source"}
        if unknown:
            raise ValueError(f"unknown energy table key(s) {sorted(unknown)}; expected {OPERATIONS}")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)


#: Horowitz 2014, 45 nm, 0.9 V (PROM.md).  pJ per operation.
HOROWITZ_45NM = EnergyTable(
    name="horowitz-45nm",
    source="M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014; 45 nm, 0.9 V",
    add_int8=0.03, add_int32=0.1, mul_int8=0.2, mul_int32=3.1,
    add_fp16=0.4, mul_fp16=1.1, add_fp32=0.9, mul_fp32=3.7,
)

#: tables by name
TABLES = {HOROWITZ_45NM.name: HOROWITZ_45NM}


def energy_table(spec=None):
    """An :class:`EnergyTable` from ``spec``: None (Horowitz), a table, a name in
    :data:`TABLES`, a dict of overrides, or a path to a JSON file of overrides."""
    if spec is None:
        return HOROWITZ_45NM
    if isinstance(spec, EnergyTable):
        return spec
    if isinstance(spec, dict):
        changes = dict(spec)
        changes.setdefault("name", "custom")
        changes.setdefault("source", "user supplied (unset entries from Horowitz 2014)")
        return HOROWITZ_45NM.replace(**changes)
    if isinstance(spec, str) and spec in TABLES:
        return TABLES[spec]
    if isinstance(spec, (str, os.PathLike)):
        return load_energy_table(spec)
    raise TypeError(f"cannot make an energy table from {type(spec).__name__}")


def load_energy_table(path):
    """Read a JSON object of overrides (pJ per operation) on top of Horowitz 2014."""
    path = os.fspath(path)
    try:  # a regular file of bounded size, strict JSON of bounded depth (promref.fileio)
        data = loads_json(read_regular(path, PromrefError, "energy table", max_bytes=limits.MIB))
    except ValueError as e:  # PromrefError is a ValueError too
        raise PromrefError(f"{path}: cannot read energy table: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: energy table must be a JSON object of pJ per operation")
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    data.setdefault("source", f"{path} (unset entries from Horowitz 2014)")
    try:
        return energy_table(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
