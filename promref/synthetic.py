"""Random but well-behaved integer models, for tests, benchmarks, golden vectors
and the demo before trained weights exist.  They are **untrained**: their
predictions mean nothing.

Weights and biases are drawn with a fixed seed; each layer's requantization
multipliers are then *calibrated in integers* on a batch of random images
(run the reference kernels up to the accumulator, pick per channel the
multiplier that maps a few standard deviations onto the int8 range), so
activations neither vanish nor saturate as they go deeper.  Scales recorded
in the file are made consistent with the multipliers
(``M = s_in * s_w / s_out``), so a float reading of the model is coherent.
"""
import numpy as np

from . import arith
from .kernels.reference import ACCUMULATE, OPS
from .architectures import CIFAR10_LABELS, CONFIGS, mobilenetv2_layout
from .model import InputSpec, Layer, Model
from .validate import validate


def _weights(rng, shape_layer, weight_shape):
    if shape_layer.op == "pointwise_ternary":
        return rng.choice(np.array([-1, 0, 1], np.int8), size=weight_shape, p=[0.3, 0.4, 0.3])
    return np.clip(np.rint(rng.normal(0, 40, size=weight_shape)), -127, 127).astype(np.int8)


def _calibrate(acc, relu6):
    """Per-channel real multiplier, mean and spread of the accumulators ``acc`` [..., C]."""
    flat = acc.reshape(-1, acc.shape[-1]).astype(np.float64)
    centre = flat.mean(axis=0)
    spread = flat.std(axis=0) + 1.0
    # ReLU6 outputs start at the zero point -128; linear outputs sit around a small zero point
    target = 40.0 if relu6 else 30.0
    real = np.clip(target / spread, 2.0 ** -31, 2.0 ** 30)
    return real, centre, spread


def random_model(config="cifar", width=0.35, scheme="prom", seed=0, rounding=arith.DEFAULT_ROUNDING,
                 calibration_images=2):
    """A random, calibrated MobileNetV2 :class:`Model` (untrained).

    config: 'cifar' or 'imagenet'; width: channel multiplier; scheme: 'prom'
    or 'int8'; rounding: 'single' or 'double'.  Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    size = CONFIGS[config]["size"]
    spec = InputSpec(height=size, width=size, resize=size if config == "cifar" else 256,
                     scale=1.0 / 255.0, zero_point=-128)
    x = rng.integers(-128, 128, size=(calibration_images, size, size, 3)).astype(np.int8)
    tensors, scales, zero_points = {"input": x}, {"input": spec.scale}, {"input": spec.zero_point}
    layers = []
    for shape in mobilenetv2_layout(config, width, scheme):
        src = shape.inputs[0]
        layer = Layer(name=shape.name, kind=shape.kind, op=shape.op, inputs=shape.inputs,
                      in_channels=shape.in_channels, out_channels=shape.out_channels, out_zero_point=0,
                      kernel=shape.kernel, stride=shape.stride,
                      padding=(shape.kernel // 2,) * 4)
        if shape.op in ACCUMULATE:
            wshape = {"conv2d": (shape.out_channels, shape.kernel, shape.kernel, shape.in_channels),
                      "depthwise_conv2d": (shape.kernel, shape.kernel, shape.out_channels)}.get(
                          shape.op, (shape.out_channels, shape.in_channels))
            layer.weights = _weights(rng, shape, wshape)
            layer.bias = np.zeros(shape.out_channels, np.int32)
            acc = ACCUMULATE[shape.op](tensors[src], layer, zero_points[src])
            real, centre, spread = _calibrate(acc, shape.relu6)
            # a bias that re-centres each channel, then shifts it by a random fraction of its
            # spread (positive for ReLU6, so most outputs are not clipped to zero)
            jitter = rng.normal(0.5 if shape.relu6 else 0.0, 0.3, size=real.shape) * spread
            layer.bias = np.rint(-centre + jitter).astype(np.int32)
            layer.multiplier, layer.shift = arith.quantize_multipliers(real)
            layer.out_scale = float(rng.uniform(6 / 255, 10 / 255)) if shape.relu6 else float(rng.uniform(0.02, 0.1))
            layer.weight_scale = (arith.multiplier_to_real(layer.multiplier, layer.shift)
                                  * layer.out_scale / scales[src]).astype(np.float32)
        elif shape.op == "add":
            sa, sb = scales[shape.inputs[0]], scales[shape.inputs[1]]
            layer.out_scale = float(max(sa, sb) * rng.uniform(1.0, 1.5))
            layer.multiplier, layer.shift = arith.add_multipliers(sa, sb, layer.out_scale)
            layer.left_shift = arith.ADD_LEFT_SHIFT
            layer.out_zero_point = int(rng.integers(-10, 11))
        else:  # global_avgpool keeps scale and zero point
            layer.out_scale = scales[src]
            layer.out_zero_point = zero_points[src]
        if shape.relu6:
            # ReLU6 is a clamp to [q(0), q(6)] of the output's own scale
            layer.out_zero_point = -128
            layer.out_max = min(127, -128 + int(np.floor(6.0 / layer.out_scale + 0.5)))
        elif shape.op in ACCUMULATE and shape.kind != "classifier":
            layer.out_zero_point = int(rng.integers(-10, 11))
        tensors[layer.name] = OPS[layer.op](
            *[tensors[i] for i in layer.inputs], layer,
            *[zero_points[i] for i in layer.inputs], rounding)
        scales[layer.name], zero_points[layer.name] = layer.out_scale, layer.out_zero_point
        layers.append(layer)

    labels = CIFAR10_LABELS if config == "cifar" else tuple(f"class {i}" for i in range(CONFIGS[config]["classes"]))
    model = Model(name=f"random mobilenetv2 {config} {scheme} width {width} seed {seed} (UNTRAINED)",
                  input=spec, layers=layers, labels=labels, rounding=rounding,
                  arch=dict(name="mobilenetv2", config=config, width=width, scheme=scheme),
                  metadata=dict(trained=False, seed=seed))
    return validate(model)
