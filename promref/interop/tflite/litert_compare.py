"""Layer-by-layer comparison of an imported model with LiteRT's reference kernels.

LiteRT (PyPI ``ai-edge-litert``) is optional: only this module imports it,
and only when a comparison runs.  The interpreter uses
``OpResolverType.BUILTIN_REF`` (TFLite's reference kernels, no XNNPACK) and
``experimental_preserve_all_tensors=True`` so that every intermediate tensor
can be read after ``invoke``.

Both sides get the same uint8 pixels: LiteRT the uint8 image ``p``, promref
``p - 128`` as int8; a uint8 TFLite tensor is compared as ``value - 128``.
"""
import csv
import os
from dataclasses import dataclass, field

import numpy as np

from ...engine import op_table
from ...model import OPS
from ...preprocess import preprocess

__all__ = ["LayerStats", "Agreement", "litert_interpreter", "load_sample_images", "compare",
           "default_backend"]


def default_backend():
    """'numba' when the fast backend imports and has every op, else 'numpy'."""
    try:
        table = op_table("numba")
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return "numpy"
    return "numba" if all(op in table for op in OPS) else "numpy"


def litert_interpreter(path):
    """A LiteRT interpreter on ``path`` with the reference kernels and every tensor kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=os.fspath(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def load_sample_images(directory, height=224, width=224, limit=None):
    """The sample JPEGs -> (file names, uint8 [N, height, width, 3]).

    Files are listed by ``labels.tsv`` when present (else sorted ``*.JPEG``/
    ``*.jpg``); each is decoded and resized straight to ``height`` x ``width``
    (bilinear) by :func:`promref.preprocess.preprocess`, which is deterministic.
    """
    directory = os.fspath(directory)
    index = os.path.join(directory, "labels.tsv")
    if os.path.exists(index):
        with open(index, newline="", encoding="utf-8") as f:
            names = [row["file"] for row in csv.DictReader(f, delimiter="\t")]
    else:
        names = sorted(n for n in os.listdir(directory) if n.lower().endswith((".jpeg", ".jpg", ".png")))
    if limit is not None:
        names = names[:limit]
    images = np.stack([preprocess(os.path.join(directory, n), height=height, width=width) for n in names])
    return names, (images.astype(np.int16) + 128).astype(np.uint8)


@dataclass
class LayerStats:
    """Mismatch statistics of one compared tensor over all images."""
    name: str          # promref layer (or 'input')
    tensor: int        # TFLite tensor index
    tflite_name: str
    elements: int = 0  # values compared
    mismatches: int = 0
    max_abs_diff: int = 0
    inexact: bool = False  # the importer declared this layer an approximation (see metadata)


@dataclass
class Agreement:
    """Result of :func:`compare` for one model."""
    model: str
    backend: str
    images: int
    layers: list = field(default_factory=list)   # LayerStats, in execution order
    top1_agree: int = 0        # promref argmax(int8 logits) == LiteRT argmax(logits tensor)
    top1_agree_output: int = 0  # ... == LiteRT argmax(final output, e.g. softmax)
    promref_top1: list = field(default_factory=list)
    litert_top1: list = field(default_factory=list)

    @property
    def total_mismatches(self):
        return sum(s.mismatches for s in self.layers)

    @property
    def exact_mismatches(self):
        """Mismatches in the layers the importer claims to reproduce exactly (target 0)."""
        return sum(s.mismatches for s in self.layers if not s.inexact)

    def table(self):
        """The per-layer report as text."""
        lines = [f"{self.model}: {self.images} images, promref backend {self.backend!r}, rounding 'double'",
                 f"{'layer':<16} {'tflite':>6} {'values':>12} {'mismatches':>10} {'max|diff|':>9}"]
        for s in self.layers:
            flag = "  (inexact: see notes)" if s.inexact else ""
            lines.append(f"{s.name:<16} {s.tensor:>6} {s.elements:>12} {s.mismatches:>10} {s.max_abs_diff:>9}{flag}")
        lines.append(f"total mismatches: {self.total_mismatches} over {len(self.layers)} tensors"
                     + (f" ({self.exact_mismatches} in layers claimed exact)"
                        if any(s.inexact for s in self.layers) else ""))
        lines.append(f"top-1 agreement (LiteRT logits):       {self.top1_agree}/{self.images}")
        lines.append(f"top-1 agreement (LiteRT final output): {self.top1_agree_output}/{self.images}")
        return "\n".join(lines)


def _centred(array):
    """A TFLite uint8/int8 tensor as the int16 values promref holds (uint8 - 128)."""
    if array.dtype == np.uint8:
        return array.astype(np.int16) - 128
    if array.dtype == np.int8:
        return array.astype(np.int16)
    raise TypeError(f"unexpected tensor dtype {array.dtype}")


def compare(model, tflite_path, images, backend=None, batch=10, interpreter=None):
    """Run ``model`` (from :func:`import_tflite`) and LiteRT on uint8 ``images`` [N, H, W, 3].

    Compares every promref layer output (and every TFLite alias of the
    input and of the logits) with the TFLite tensor it stands for.  Returns an
    :class:`Agreement`.
    """
    meta = model.metadata["tflite"]
    backend = backend or default_backend()
    interpreter = interpreter or litert_interpreter(tflite_path)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    input_detail = interpreter.get_input_details()[0]
    input_index = input_detail["index"]
    int8_input = input_detail["dtype"] == np.int8  # an int8 input tensor takes pixel - 128
    output_index = interpreter.get_output_details()[0]["index"]

    rows = [("input", int(k)) for k, v in meta["aliases"].items() if v == "input"]
    for name, tensor in meta["tensors"].items():
        rows.append((name, int(tensor)))
        rows += [(name, int(k)) for k, v in meta["aliases"].items() if v == name]
    inexact = set(meta.get("inexact", ()))
    stats = [LayerStats(name, t, details[t]["name"], inexact=name in inexact) for name, t in rows]

    result = Agreement(model=model.name, backend=backend, images=len(images))
    logits_tensor = int(meta["logits_tensor"])
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        x = (chunk.astype(np.int16) - 128).astype(np.int8)
        logits, trace = model.forward(x, backend=backend, trace=True)
        trace["input"] = x
        for n in range(len(chunk)):
            interpreter.set_tensor(input_index, x[n:n + 1] if int8_input else chunk[n:n + 1])
            interpreter.invoke()
            for s in stats:
                ref = _centred(interpreter.get_tensor(s.tensor))
                mine = trace[s.name][n].astype(np.int16)
                if ref.size != mine.size:
                    raise ValueError(f"{s.name}: promref has {mine.size} values, TFLite tensor "
                                     f"{s.tflite_name!r} has {ref.size}")
                diff = np.abs(ref.reshape(mine.shape) - mine)
                s.elements += diff.size
                s.mismatches += int(np.count_nonzero(diff))
                s.max_abs_diff = max(s.max_abs_diff, int(diff.max()))
            ours = int(np.argmax(logits[n]))
            theirs = int(np.argmax(_centred(interpreter.get_tensor(logits_tensor)).ravel()))
            final = int(np.argmax(interpreter.get_tensor(output_index).ravel()))
            result.promref_top1.append(ours)
            result.litert_top1.append(theirs)
            result.top1_agree += ours == theirs
            result.top1_agree_output += ours == final
    result.layers = stats
    return result
