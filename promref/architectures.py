"""What an architecture is, once: MobileNetV2 (torchvision layout) in its two
input configurations, the demo's small depthwise-separable net, the
quantization schemes (which layer kinds are ternary) and the CIFAR-10 labels.

An architecture is a list of :class:`LayerShape` records: the geometry of
each layer before it has weights, in the order the engine runs them.  The
trainer builds its units from such a list, the random-model generator and
the energy accounting read it; :mod:`promref.model` says what a *model*
(integers and all) is.
"""
from dataclasses import dataclass

#: which kinds are ternary under each quantization scheme
SCHEMES = {
    "prom": ("expand", "project", "last_conv"),  # every 1x1 conv; stem, depthwise, classifier int8
    "int8": (),                                  # the uniform int8 baseline
}

#: MobileNetV2 inverted residual settings: expansion t, channels c, repeats n, stride s
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

CONFIGS = {
    # input size, classes, stem stride, stride of the second stage (c=24)
    "imagenet": dict(size=224, classes=1000, stem_stride=2, stage2_stride=2),
    "cifar": dict(size=32, classes=10, stem_stride=1, stage2_stride=1),
}

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")


def make_divisible(value, divisor=8):
    """torchvision's channel rounding: nearest multiple of 8, never 10 % below."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass
class LayerShape:
    """Geometry of one layer of an architecture, before it has any weights."""
    name: str
    kind: str
    op: str
    inputs: tuple
    in_channels: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    relu6: bool = False
    in_size: int = 0   # spatial size (square) of the input
    out_size: int = 0


def mobilenetv2_layout(config="cifar", width=1.0, scheme="prom"):
    """The layer list of MobileNetV2 (torchvision layout) -> list[LayerShape].

    config: 'imagenet' (224x224, 1000 classes) or 'cifar' (32x32, stem and
    second stage with stride 1, 10 classes); width: channel multiplier;
    scheme: 'prom' (ternary 1x1 convs) or 'int8'.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {tuple(CONFIGS)}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {tuple(SCHEMES)}")
    if not (isinstance(width, (int, float)) and 0 < width <= 4):
        raise ValueError(f"width multiplier must be in (0, 4], got {width!r}")
    cfg = CONFIGS[config]
    ternary = SCHEMES[scheme]

    def pointwise_op(kind):
        return "pointwise_ternary" if kind in ternary else "conv2d"

    shapes = []
    size = cfg["size"]

    def add(name, kind, op, inputs, cin, cout, kernel=1, stride=1, relu6=False):
        nonlocal size
        out = (size + stride - 1) // stride if kernel > 1 or stride > 1 else size
        if op in ("global_avgpool",):
            out = 1
        shapes.append(LayerShape(name, kind, op, tuple(inputs), cin, cout, kernel, stride, relu6, size, out))
        size = out
        return name

    channels = make_divisible(32 * width)
    prev = add("stem", "stem", "conv2d", ["input"], 3, channels, 3, cfg["stem_stride"], True)
    block = 0
    for stage, (t, c, n, s) in enumerate(MBV2_SETTINGS):
        out_channels = make_divisible(c * width)
        for i in range(n):
            block += 1
            stride = (cfg["stage2_stride"] if stage == 1 else s) if i == 0 else 1
            block_in, block_channels = prev, channels
            hidden = channels * t
            if t != 1:
                prev = add(f"b{block}.expand", "expand", pointwise_op("expand"), [prev], channels, hidden, relu6=True)
            prev = add(f"b{block}.depthwise", "depthwise", "depthwise_conv2d", [prev], hidden, hidden, 3, stride, True)
            prev = add(f"b{block}.project", "project", pointwise_op("project"), [prev], hidden, out_channels)
            if stride == 1 and block_channels == out_channels:
                prev = add(f"b{block}.add", "add", "add", [block_in, prev], out_channels, out_channels)
            channels = out_channels
    last = make_divisible(1280 * max(1.0, width))
    prev = add("last_conv", "last_conv", pointwise_op("last_conv"), [prev], channels, last, relu6=True)
    prev = add("pool", "pool", "global_avgpool", [prev], last, last)
    add("classifier", "classifier", "fully_connected", [prev], last, cfg["classes"])
    return shapes


def dsnet_layout(channels=(32, 64, 128), classes=10, size=32):
    """A small depthwise-separable net for the demo: stem, then per stage a
    depthwise 3x3 (stride 2 after the first) and a pointwise ReLU6 conv."""
    shapes = [LayerShape("stem", "stem", "conv2d", ("input",), 3, 16, 3, 1, True, size, size)]
    prev, cin = "stem", 16
    for i, cout in enumerate(channels):
        stride = 1 if i == 0 else 2
        out = (size + stride - 1) // stride
        shapes.append(LayerShape(f"s{i}.depthwise", "depthwise", "depthwise_conv2d", (prev,), cin, cin, 3,
                                 stride, True, size, out))
        shapes.append(LayerShape(f"s{i}.pointwise", "expand", "conv2d", (f"s{i}.depthwise",), cin, cout, 1, 1,
                                 True, out, out))
        prev, cin, size = f"s{i}.pointwise", cout, out
    shapes.append(LayerShape("pool", "pool", "global_avgpool", (prev,), cin, cin, in_size=size, out_size=1))
    shapes.append(LayerShape("classifier", "classifier", "fully_connected", ("pool",), cin, classes))
    return shapes
