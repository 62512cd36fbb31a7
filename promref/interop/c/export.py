"""``export_c(model, outdir)``: write the standalone C99 library of one model."""
import copy
import json
import os
import shutil
from dataclasses import asdict, dataclass, field

from ...format import load
from ...model import Model
from ...validate import validate
from .bounds import check_expressible
from .emit import model_sources, weights_sources
from .plan import plan_arena

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
#: the library proper (copied from csrc/ or generated) and the two drivers (copied)
LIBRARY_SOURCES = ("prom_runtime.c", "prom_model.c", "prom_weights.c")
DRIVERS = ("host/prom_host.c", "cortexm/prom_mcu.c", "cortexm/startup.c", "cortexm/semihost.h",
           "cortexm/mps2.ld", "Makefile")


@dataclass
class CExport:
    """What ``export_c`` wrote and proved.  Sizes in bytes."""
    outdir: str
    model: str
    rounding: str
    layers: int
    arena_bytes: int          # PROM_ARENA_BYTES: the planned arena
    live_bound_bytes: int     # most bytes live at once: no placement can do better
    weight_bytes: int         # const weights and integer parameters (flash)
    weight_bytes_per_layer: dict = field(default_factory=dict)
    bounds: list = field(default_factory=list)

    def summary(self):
        return (f"{self.outdir}: {self.layers} layers, rounding {self.rounding}, arena {self.arena_bytes} B "
                f"(live bound {self.live_bound_bytes} B), weights and parameters {self.weight_bytes} B")


def export_c(model, outdir):
    """Write the C library of ``model`` (a Model or a weights path) into ``outdir`` -> CExport.

    Refuses, with a PromrefError naming the layer and the reason, any model the
    C kernels cannot run exactly (promref.validate's proofs plus bounds.py).
    """
    if not isinstance(model, Model):
        model = load(model)
    else:
        model = validate(copy.deepcopy(model))
    bounds = check_expressible(model)
    placements, arena, live = plan_arena(model)
    weights_h, weights_c, flash = weights_sources(model)
    model_h, model_c = model_sources(model, placements, arena)
    os.makedirs(outdir, exist_ok=True)
    for name, text in (("prom_weights.h", weights_h), ("prom_weights.c", weights_c),
                       ("prom_model.h", model_h), ("prom_model.c", model_c)):
        with open(os.path.join(outdir, name), "w", encoding="ascii") as f:
            f.write(text)
    for name in ("prom_runtime.h", "prom_runtime.c") + DRIVERS:
        os.makedirs(os.path.dirname(os.path.join(outdir, name)), exist_ok=True)
        shutil.copyfile(os.path.join(CSRC, name), os.path.join(outdir, name))
    report = CExport(os.path.abspath(outdir), model.name, model.rounding, len(model.layers), arena, live,
                     sum(flash.values()), {model.layers[i].name: b for i, b in flash.items()}, bounds)
    with open(os.path.join(outdir, "prom_export.json"), "w", encoding="utf-8") as f:
        json.dump(asdict(report) | {"arena": {name: [p.offset, p.size, p.first, p.last]
                                              for name, p in placements.items()}}, f, indent=1)
    return report
