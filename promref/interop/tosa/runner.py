"""Run a TOSA flatbuffer in the TOSA reference model (``tosa_reference_model`` of ``tosa-tools``)."""
import numpy as np

from .rescale import TosaExportError
from .writer import build_tosa


def _reference_model():
    try:
        import tosa_reference_model
    except ImportError as e:
        raise TosaExportError("running TOSA needs the 'tosa-tools' package (pip install tosa-tools)") from e
    return tosa_reference_model


def run_flatbuffer(data, inputs):
    """Run TOSA ``data`` (bytes) on a list of input arrays -> list of output arrays.

    Raises :class:`TosaExportError` when the reference model rejects the graph
    or its run ends in any status but TOSA_VALID (e.g. a broken REQUIRE).
    """
    trm = _reference_model()
    try:
        outputs, status = trm.run(data, [np.ascontiguousarray(x) for x in inputs])
    except ValueError as e:
        raise TosaExportError(f"the TOSA reference model refused the graph: {e}") from None
    if status != trm.GraphStatus.TOSA_VALID:
        raise TosaExportError(f"the TOSA reference model ended with status {status.name}")
    return outputs


class TosaRunner:
    """A promref Model exported to TOSA, run in the reference model batch by batch.

    ``runner(x)``: int8 [N, H, W, 3] -> {layer name: int8 output}, the shapes of
    promref's trace.  Graphs are built once per batch size (TOSA shapes are static).
    """

    def __init__(self, model, batch=16, every_layer=True):
        self.model, self.batch, self.every_layer = model, int(batch), every_layer
        self.graphs = {}

    def graph(self, n):
        if n not in self.graphs:
            self.graphs[n] = build_tosa(self.model, batch=n, every_layer=self.every_layer)
        return self.graphs[n]

    def __call__(self, x):
        from ...engine import check_input
        x = check_input(self.model, x)
        parts = []
        for start in range(0, len(x), self.batch):
            chunk = x[start:start + self.batch]
            data, names = self.graph(len(chunk))
            parts.append(dict(zip(names, run_flatbuffer(data, [chunk]))))
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def run_tosa(model, x, batch=16):
    """promref Model + int8 [N, H, W, 3] -> {layer name: int8 output} computed by the TOSA reference model."""
    return TosaRunner(model, batch=batch)(x)
