"""The high-level API: image in, ranked predictions out."""
from typing import NamedTuple

import numpy as np

from .errors import PromrefError
from .format import load
from .model import Model
from .preprocess import preprocess
from .registry import resolve


class Prediction(NamedTuple):
    """One ranked class: index into the labels, label, softmax probability, int8 logit."""
    index: int
    label: str
    probability: float
    logit: int


def softmax(logits, scale, zero_point):
    """Probabilities from int8 logits [..., K]: softmax of ``scale * (q - zero_point)``.

    The only float step in promref, outside the integer graph; float64.
    """
    z = scale * (np.asarray(logits, np.float64) - zero_point)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict(model, logits, topk=5):
    """int8 logits [K] -> the ``topk`` best :class:`Prediction` (ties: lower index first)."""
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise PromrefError(f"topk must be a positive integer, got {topk!r}")
    out = model.output
    probs = softmax(logits, out.out_scale, out.out_zero_point)
    order = np.lexsort((np.arange(logits.size), -logits.astype(np.int64)))[:topk]
    return [Prediction(int(i), model.labels[i], float(probs[i]), int(logits[i])) for i in order]


def infer(weights, image, topk=5, backend="numba"):
    """Classify one image -> list of ``topk`` :class:`Prediction`, best first.

    weights: a registered model name (``"mbv2_prom"``: :mod:`promref.registry`), a path
    to a promref .npz, or a loaded :class:`Model`;
    image: a path, a PIL image, or an [H, W, 3] uint8 array.
    """
    model = weights if isinstance(weights, Model) else load(resolve(weights))  # a name, a path or a binary file object
    spec = model.input
    x = preprocess(image, height=spec.height, width=spec.width, resize=spec.resize, resample=spec.resample)
    logits = model.forward(x[None], backend=backend)
    return predict(model, logits[0], topk=topk)
