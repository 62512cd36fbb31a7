"""The activation arena: one static byte buffer, tensors placed by their lifetimes.

A layer's output lives from the layer that writes it to the last layer that
reads it (``promref.engine.last_uses``); two tensors whose lifetimes meet may
not overlap, and a layer's output never overlaps its inputs (every kernel reads
its inputs while it writes).  The last layer writes straight into the caller's
logits buffer and the image is read from the caller's input buffer, so neither
lives in the arena.  Placement is greedy first fit, largest tensor first.
"""
from dataclasses import dataclass

import numpy as np

from ...engine import last_uses
from ...model import tensor_shapes

ALIGN = 4  # offsets are word aligned: cheaper loads on a Cortex-M, harmless elsewhere


@dataclass
class Placement:
    """Where one layer's output lives: arena offset and size in bytes, and its lifetime."""
    name: str
    offset: int
    size: int
    first: int   # index of the layer that writes it
    last: int    # index of the last layer that reads it


def _align(n):
    return -(-n // ALIGN) * ALIGN


def plan_arena(model):
    """{layer name: Placement} for every layer but the last, and the arena size in bytes.

    Also returns the lower bound ``max over layers of the bytes live at once``
    (what any placement needs), to report how close first fit comes to it.
    """
    shapes = tensor_shapes(model)
    last = last_uses(model)
    tensors = []
    for i, layer in enumerate(model.layers[:-1]):
        size = int(np.prod(shapes[layer.name]))
        tensors.append(Placement(layer.name, 0, size, i, last.get(layer.name, i)))
    placed = []
    for t in sorted(tensors, key=lambda t: (-t.size, t.first)):
        clashes = sorted((p.offset, p.offset + _align(p.size)) for p in placed
                         if p.first <= t.last and t.first <= p.last)
        offset = 0
        for start, end in clashes:
            if offset + t.size <= start:
                break
            offset = max(offset, end)
        t.offset = offset
        placed.append(t)
    arena = max((p.offset + _align(p.size) for p in placed), default=0)
    live = [sum(p.size for p in placed if p.first <= i <= p.last) for i in range(len(model.layers))]
    return {p.name: p for p in tensors}, arena, max(live, default=0)
