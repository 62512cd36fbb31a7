"""promref: the reference implementation of PROM (ternary pointwise, int8
elsewhere) MobileNetV2 inference, integer-exact.

    >>> import promref
    >>> promref.infer("weights/mbv2_prom.npz", "cat.png")   # doctest: +SKIP
    [Prediction(index=3, label='cat', probability=0.91...), ...]
"""
from .api import Prediction, infer, predict, softmax
from .errors import ImageError, OverflowRiskError, PromrefError, ShapeError, WeightsFormatError
from .format import load, save
from .model import InputSpec, Layer, Model

__version__ = "0.1.0"

__all__ = ["infer", "predict", "softmax", "load", "save", "Prediction", "Model", "Layer", "InputSpec",
           "PromrefError", "WeightsFormatError", "OverflowRiskError", "ImageError", "ShapeError"]
