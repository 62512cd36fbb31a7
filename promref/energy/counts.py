"""Per-layer operation counts, from layer geometry (and, for ternary layers of
a loaded model, from the weights).

Two kinds of source give the same records (:class:`LayerGeometry`):

* a loaded :class:`~promref.model.Model`: spatial sizes are propagated from
  its input size with each layer's kernel, stride and padding, exactly as
  the kernels compute them; ternary layers also know their non-zero weights;
* a layout (``mobilenetv2_layout(...)``, a list of ``LayerShape``): sizes come
  from the layout; padding is assumed to be ``kernel // 2`` on every side
  (torchvision's and :func:`promref.synthetic.random_model`'s choice).

Conventions (docs/energy.md, "Counting conventions"):

* **MACs are dense**: every kernel position of every output counts, the
  stem's and the depthwise convs' padding taps included (the reference
  kernels compute them too: a padded input holds the zero point, so the tap
  multiplies 0).
* Counts are **per image**.
* An accumulator starts at the bias, so a sum of ``k`` products costs ``k``
  additions (``k - 1`` among themselves, one into the accumulator).
* A ternary layer adds or subtracts one int8 input per weight: ``macs``
  additions dense (zeros cost an addition), ``nonzero * pixels`` sparse (zeros
  are skipped).  Its input zero point is folded into the bias, so it has no
  zero-point subtractions.
* int8 layers subtract the input zero point once per (padded) input element,
  as the reference does; these counts are kept apart (``zero_point_sub``) and
  priced only when an accounting asks for them.
"""
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..architectures import mobilenetv2_layout
from ..model import Model

#: kinds whose layers are 1x1 convolutions in MobileNetV2
POINTWISE_KINDS = ("expand", "project", "last_conv")
WEIGHTED = ("conv2d", "pointwise_ternary", "depthwise_conv2d", "fully_connected")


@dataclass(frozen=True)
class LayerGeometry:
    """One layer's shapes and the counts that follow from them (per image)."""
    name: str
    kind: str
    op: str
    weight_format: str       # the source's weight format: 'int8', 'ternary' or 'none'
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: tuple           # top, bottom, left, right
    in_hw: tuple             # input height, width
    out_hw: tuple            # output height, width
    nonzero: Optional[int] = None        # non-zero ternary weights (loaded ternary layers only)
    empty_groups: Optional[int] = None   # output channels with no +1, plus those with no -1 (ditto)

    @property
    def weighted(self):
        return self.op in WEIGHTED

    @property
    def pixels(self):
        """Output positions per image (1 for the classifier)."""
        return self.out_hw[0] * self.out_hw[1]

    @property
    def outputs(self):
        """Output elements per image."""
        return self.pixels * self.out_channels

    @property
    def params(self):
        """Weights (not biases, scales or BN parameters)."""
        if self.op == "depthwise_conv2d":
            return self.kernel * self.kernel * self.out_channels
        if self.op == "conv2d":
            return self.out_channels * self.kernel * self.kernel * self.in_channels
        if self.op in ("pointwise_ternary", "fully_connected"):
            return self.out_channels * self.in_channels
        return 0

    @property
    def macs(self):
        """Dense multiply-accumulate positions per image (padding taps included)."""
        if self.op == "depthwise_conv2d":
            return self.pixels * self.out_channels * self.kernel * self.kernel
        if self.weighted:
            return self.pixels * self.params
        return 0

    @property
    def padded_inputs(self):
        """Input elements after padding (what the reference subtracts the zero point from)."""
        top, bottom, left, right = self.padding
        return (self.in_hw[0] + top + bottom) * (self.in_hw[1] + left + right) * self.in_channels

    @property
    def has_bn(self):
        """Batch norm follows every conv of MobileNetV2, not the classifier."""
        return self.weighted and self.kind != "classifier"


# ------------------------------------------------------------ geometry


def _output_size(size, kernel, stride, before, after):
    return (size + before + after - kernel) // stride + 1


def model_geometry(model):
    """:class:`LayerGeometry` of every layer of a loaded model, sizes propagated
    from the input exactly as the reference kernels compute them."""
    hw = {"input": (model.input.height, model.input.width)}
    out = []
    for layer in model.layers:
        in_hw = hw[layer.inputs[0]]
        if layer.op in ("conv2d", "depthwise_conv2d", "pointwise_ternary"):
            top, bottom, left, right = layer.padding
            o_hw = (_output_size(in_hw[0], layer.kernel, layer.stride, top, bottom),
                    _output_size(in_hw[1], layer.kernel, layer.stride, left, right))
        elif layer.op in ("global_avgpool", "fully_connected"):
            o_hw = (1, 1)
        else:  # add
            o_hw = in_hw
        nonzero = empty = None
        if layer.op == "pointwise_ternary" and layer.weights is not None:
            w = np.asarray(layer.weights)
            nonzero = int(np.count_nonzero(w))
            empty = int(np.sum(~np.any(w == 1, axis=1)) + np.sum(~np.any(w == -1, axis=1)))
        out.append(LayerGeometry(
            name=layer.name, kind=layer.kind, op=layer.op, weight_format=layer.weight_format,
            in_channels=layer.in_channels, out_channels=layer.out_channels, kernel=layer.kernel,
            stride=layer.stride, padding=tuple(int(p) for p in layer.padding), in_hw=in_hw, out_hw=o_hw,
            nonzero=nonzero, empty_groups=empty))
        hw[layer.name] = o_hw
    return out


def layout_geometry(shapes):
    """:class:`LayerGeometry` of a layout (list of ``LayerShape``); padding ``kernel // 2``."""
    out = []
    for s in shapes:
        pad = (s.kernel // 2,) * 4 if s.op in ("conv2d", "depthwise_conv2d") else (0, 0, 0, 0)
        fmt = {"pointwise_ternary": "ternary"}.get(s.op, "int8" if s.op in WEIGHTED else "none")
        out.append(LayerGeometry(
            name=s.name, kind=s.kind, op=s.op, weight_format=fmt, in_channels=s.in_channels,
            out_channels=s.out_channels, kernel=s.kernel, stride=s.stride, padding=pad,
            in_hw=(s.in_size, s.in_size), out_hw=(s.out_size, s.out_size)))
    return out


def geometry(source):
    """Geometry of ``source``: a Model, a layout (list of LayerShape), a list of
    LayerGeometry, or a dict of ``mobilenetv2_layout`` arguments."""
    if isinstance(source, Model):
        return model_geometry(source)
    if isinstance(source, dict):
        return layout_geometry(mobilenetv2_layout(**source))
    source = list(source)
    if all(isinstance(g, LayerGeometry) for g in source):
        return source
    return layout_geometry(source)


# ------------------------------------------------------- operation counts

#: the integer operation categories, as the reference kernels perform them
INT_CATEGORIES = (
    "mul_int8",        # int8 x int8 products (int8-weight layers)
    "acc_add",         # additions of those products into the int32 accumulator
    "ternary_add",     # additions/subtractions of int8 inputs into the accumulator (ternary layers)
    "requant",         # requantizations: one int32 x int32 multiply (+ round, zero point, clamp) per output
    "rescale",         # residual add: each input rescaled by its own multiplier (2 per output)
    "residual_add",    # residual add: the int32 sum of the two rescaled inputs
    "pool_add",        # global average pool: int32 additions of int8 values
    "pool_div",        # global average pool: one rounded division per channel
    "zero_point_sub",  # subtractions of the input zero point (int8 layers, residual add)
    "shift",           # residual add: left shift of each centred input
)
#: the float operation categories (float baselines)
FLOAT_CATEGORIES = ("fmul", "fadd")


def integer_ops(g, fmt=None, ternary_zeros="dense"):
    """Counter of :data:`INT_CATEGORIES` for layer ``g`` (one image), its weights
    in format ``fmt`` ('int8' or 'ternary'; default: the source's).

    ``ternary_zeros``: 'dense' (every weight position costs an addition) or
    'sparse' (zero weights are skipped; needs the actual weights)."""
    fmt = fmt or g.weight_format
    ops = Counter()
    if g.weighted:
        if fmt == "ternary":
            if g.op not in ("pointwise_ternary", "conv2d", "fully_connected") or g.kernel != 1:
                raise ValueError(f"layer {g.name!r}: only 1x1 convs and the classifier can be ternary")
            if ternary_zeros == "dense":
                ops["ternary_add"] = g.macs
            elif ternary_zeros == "sparse":
                if g.nonzero is None:
                    raise ValueError(f"layer {g.name!r}: sparse ternary counts need the layer's ternary "
                                     "weights (a loaded PROM model), not a layout")
                ops["ternary_add"] = g.nonzero * g.pixels
            else:
                raise ValueError(f"ternary_zeros must be 'dense' or 'sparse', got {ternary_zeros!r}")
        else:  # int8
            ops["mul_int8"] = g.macs
            ops["acc_add"] = g.macs
            ops["zero_point_sub"] = g.padded_inputs
        ops["requant"] = g.outputs
    elif g.op == "add":
        ops["zero_point_sub"] = 2 * g.outputs
        ops["shift"] = 2 * g.outputs
        ops["rescale"] = 2 * g.outputs
        ops["residual_add"] = g.outputs
        ops["requant"] = g.outputs
    elif g.op == "global_avgpool":
        h, w = g.in_hw
        ops["pool_add"] = g.out_channels * (h * w - 1)
        ops["pool_div"] = g.out_channels
    return ops


def float_ops(g):
    """Counter of float multiplications and additions for layer ``g`` (one image):
    one of each per MAC, one addition per residual output element, the pool's
    additions and one multiplication (by 1/(H*W)) per pooled channel."""
    ops = Counter()
    if g.weighted:
        ops["fmul"] = g.macs
        ops["fadd"] = g.macs
    elif g.op == "add":
        ops["fadd"] = g.outputs
    elif g.op == "global_avgpool":
        h, w = g.in_hw
        ops["fadd"] = g.out_channels * (h * w - 1)
        ops["fmul"] = g.out_channels
    return ops


def layer_op_rows(model_or_layout):
    """Per-layer rows (list of dicts) with the layer's MACs, multiplications and
    additions as the layer's own formats execute them (per image) -- what
    ``promref inspect`` prints.

    Keys: name, kind, op, weights ('int8', 'ternary' or 'none'), output
    (H, W, C), params, macs, multiplications (int8 x int8 products),
    additions (accumulation additions, ternary dense, residual and pool
    additions), additions_sparse (the same with zero ternary weights skipped;
    None where the weights are unknown), requantizations (int32 multiplies that
    rescale: one per output, three per residual output element),
    zero_point_subtractions.
    """
    rows = []
    for g in geometry(model_or_layout):
        ops = integer_ops(g)
        adds = ops["acc_add"] + ops["ternary_add"] + ops["residual_add"] + ops["pool_add"]
        sparse = adds
        if g.weight_format == "ternary":
            sparse = None if g.nonzero is None else adds - ops["ternary_add"] + g.nonzero * g.pixels
        rows.append(dict(
            name=g.name, kind=g.kind, op=g.op, weights=g.weight_format,
            output=(g.out_hw[0], g.out_hw[1], g.out_channels), params=g.params, macs=g.macs,
            multiplications=ops["mul_int8"], additions=adds, additions_sparse=sparse,
            requantizations=ops["requant"] + ops["rescale"], zero_point_subtractions=ops["zero_point_sub"]))
    return rows


def format_op_rows(rows):
    """The rows of :func:`layer_op_rows` as a plain-text table."""
    header = ("layer", "kind", "weights", "output", "params", "MACs", "mults", "adds", "adds (sparse)", "requant")
    lines = []
    for r in rows:
        lines.append((r["name"], r["kind"], r["weights"], "x".join(str(v) for v in r["output"]),
                      f"{r['params']:,}", f"{r['macs']:,}", f"{r['multiplications']:,}", f"{r['additions']:,}",
                      "-" if r["additions_sparse"] is None else f"{r['additions_sparse']:,}",
                      f"{r['requantizations']:,}"))
    total = ("total", "", "", "", *(f"{sum(r[k] for r in rows):,}" for k in
                                     ("params", "macs", "multiplications", "additions")),
             "-" if any(r["additions_sparse"] is None for r in rows)
             else f"{sum(r['additions_sparse'] for r in rows):,}",
             f"{sum(r['requantizations'] for r in rows):,}")
    return format_table(header, lines + [total], right=range(3, len(header)))


def format_table(header, rows, right=()):
    """Fixed-width text table; columns in ``right`` are right-aligned."""
    right = set(right)
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


__all__ = ["LayerGeometry", "geometry", "model_geometry", "layout_geometry", "integer_ops", "float_ops",
           "layer_op_rows", "format_op_rows", "format_table", "POINTWISE_KINDS",
           "INT_CATEGORIES", "FLOAT_CATEGORIES"]
