"""Python implementations for the checker's callable interface.

An implementation is a callable ``impl(op, inputs, params) -> outputs``:

* ``op``: one of ``suite.OPS`` (``"requantize"``, ``"pointwise_ternary"``, ...,
  ``"model"``);
* ``inputs``: {name: NumPy array} in the case's dtypes (``x``, ``weights``,
  ``bias``, ``multiplier``, ``shift``; ``acc`` for requantize; ``a``, ``b``
  for add);
* ``params``: the case's scalar parameters plus ``"rounding"`` (and, for
  ``"model"``, ``"weights"``: the path of the .npz file);
* returns {output name: array}: ``{"y": ...}`` for ops, {layer name: int8
  output} for models (intermediate layers optional, the last one required).

It may raise ``NotImplementedError`` (or carry a ``supported_ops`` attribute)
to have cases skipped.

:func:`reference_implementation` is the oracle itself: promref's NumPy
reference kernels and ``Model.forward(backend="numpy")``.  The golden outputs
are produced by it.  :class:`RuleImplementation` runs the same reference
kernels (and engine) under any rounding rule of
:mod:`promref.conformance.rounding`; with ``"single"``/``"double"`` it agrees
with the oracle, with ``"half_even"`` it is the deliberately wrong peer.
"""

from .. import arith
from ..engine import run
from ..format import load
from ..kernels.reference import OPS
from ..model import Layer
from . import rounding as rules

_KIND = {"conv2d": "stem", "pointwise_ternary": "expand", "depthwise_conv2d": "depthwise",
         "fully_connected": "classifier", "add": "add", "global_avgpool": "pool"}


def make_layer(op, inputs, params):
    """A :class:`~promref.model.Layer` carrying one op case's arrays and parameters."""
    if op == "add":
        channels = inputs["a"].shape[-1]
        return Layer(name="case", kind="add", op="add", inputs=("a", "b"), in_channels=channels,
                     out_channels=channels, out_zero_point=int(params["out_zero_point"]),
                     out_min=int(params["out_min"]), out_max=int(params["out_max"]),
                     multiplier=inputs["multiplier"], shift=inputs["shift"],
                     left_shift=int(params["left_shift"]))
    x = inputs["x"]
    if op == "global_avgpool":
        return Layer(name="case", kind="pool", op=op, inputs=("x",), in_channels=x.shape[-1],
                     out_channels=x.shape[-1], out_zero_point=0)
    w = inputs["weights"]
    out_channels = w.shape[-1] if op == "depthwise_conv2d" else w.shape[0]
    kernel = int(params.get("kernel", 1))
    return Layer(name="case", kind=_KIND[op], op=op, inputs=("x",), in_channels=x.shape[-1],
                 out_channels=out_channels, out_zero_point=int(params["out_zero_point"]),
                 out_min=int(params["out_min"]), out_max=int(params["out_max"]), kernel=kernel,
                 stride=int(params.get("stride", 1)), padding=tuple(int(p) for p in params.get("padding", (0,) * 4)),
                 weights=w, weight_zero_point=int(params.get("weight_zero_point", 0)), bias=inputs["bias"],
                 multiplier=inputs["multiplier"], shift=inputs["shift"])


def run_case(op, inputs, params, rounding=None):
    """One case through promref's reference kernels (the engine's 'numpy' backend for models).

    rounding: None for the case's own (``params["rounding"]``; a model's own
    mode for ``"model"``), else a mode name or a rounding rule that every
    requantization uses instead (:func:`promref.arith.rounding_rule`).
    """
    if op == "model":
        _, trace = run(load(params["weights"]), inputs["x"], backend="numpy", trace=True, rounding=rounding)
        return dict(trace)
    if rounding is None:
        rounding = params.get("rounding")
    if op == "requantize":
        return {"y": arith.requantize(inputs["acc"], inputs["multiplier"], inputs["shift"],
                                      params["out_zero_point"], params["out_min"], params["out_max"], rounding)}
    layer = make_layer(op, inputs, params)
    if op == "add":
        y = OPS[op](inputs["a"], inputs["b"], layer, params["a_zero_point"], params["b_zero_point"], rounding)
    else:
        y = OPS[op](inputs["x"], layer, params.get("in_zero_point", 0), rounding)
    return {"y": y}


def reference_implementation(op, inputs, params):
    """The oracle: promref's reference kernels (see the module docstring for the interface)."""
    return run_case(op, inputs, params)


def forward_with_rule(model, x, rule):
    """Run ``model`` on int8 images with every requantization done by ``rule`` (a name in
    :data:`promref.conformance.rounding.RULES`): the reference engine under a peer's rounding.

    Returns {layer name: int8 output}.  With the model's own rounding mode this
    equals ``model.forward(x, backend="numpy", trace=True)[1]``.
    """
    return run(model, x, backend="numpy", trace=True, rounding=rules.rule(rule))[1]


class RuleImplementation:
    """A Python implementation whose requantizations all use the rounding rule ``rule``
    (a name in :data:`promref.conformance.rounding.RULES`), whatever the case asks for."""

    def __init__(self, rule, supported_ops=None):
        if rule not in rules.RULES:
            raise ValueError(f"unknown rounding rule {rule!r}; expected one of {tuple(rules.RULES)}")
        self.rule = rule
        self.supported_ops = supported_ops

    def __repr__(self):
        return f"RuleImplementation({self.rule!r})"

    def __call__(self, op, inputs, params):
        return run_case(op, inputs, params, rules.rule(self.rule))


def half_even_implementation():
    """The deliberately wrong peer: requantization rounds half to even (ONNX style)."""
    return RuleImplementation("half_even")
