# %% [markdown]
# # 3. Inside the integer MobileNetV2
#
# A promref model is data: a list of layer records, each holding int8 or ternary weights,
# int32 biases and the integer multipliers and shifts of its requantization. In this notebook
# we load PROM MobileNetV2 for CIFAR-10, classify a photo, and look at every layer's int8
# output: histograms, feature maps, saturation. Then we recompute one layer by hand and check
# that promref's two backends -- the NumPy reference and the Numba kernels -- agree on every
# bit of every layer.
#
# **Which model?** The trained weights ship as `weights/mbv2_prom.npz`, trained with
# promref's own QAT trainer; their model card `weights/mbv2_prom.json` gives the training
# command and the integer top-1 on CIFAR-10's test set. If that file is missing (the
# tutorials copied without the repository), this notebook uses an **untrained** PROM
# MobileNetV2 of the same shape with random weights (`promref.synthetic.random_model`).
# Everything below works the same on both -- the integer arithmetic, the traces, the
# backend comparison -- but the untrained model's predictions are meaningless.

# %%
import json
import os
import time
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

import promref
from promref.preprocess import preprocess

WEIGHTS = os.path.join("..", "weights", "mbv2_prom.npz")
if os.path.exists(WEIGHTS):
    model = promref.load(WEIGHTS)          # validated while loading
    TRAINED = True
    with open(WEIGHTS[:-len(".npz")] + ".json") as f:
        card = json.load(f)                 # the model card written by `promref train --out`
    print(f"model card: integer-engine top-1 {100 * card['integer_top1']:.2f} % on "
          f"{card['test_images']:,} test images of {card['dataset']} "
          f"(the float network before QAT: {100 * card['float_top1']:.2f} %)")
else:
    from promref.synthetic import random_model
    model = random_model("cifar", 1.0, "prom", seed=0)
    TRAINED = False
    print("NOTE: weights/mbv2_prom.npz is not there, so this notebook runs an UNTRAINED random PROM\n"
          "MobileNetV2 (same layers, random weights). Its predictions are meaningless; the integer\n"
          "mechanics shown below are exactly those of the trained model.\n")
print(model.name)
print(len(model.layers), "layers, input", f"{model.input.height}x{model.input.width},",
      "rounding mode:", model.rounding)

# %% [markdown]
# ## The layer list
# Each layer knows its kind (its role in the network), its op and its weight format. PROM
# makes every 1x1 conv ternary and keeps the stem, the depthwise convs and the classifier int8.

# %%
print(Counter((layer.kind, layer.op, layer.weight_format) for layer in model.layers))
print()
print(f"{'layer':14s} {'kind':10s} {'op':18s} {'weights':8s} {'in -> out':>11s}  zero point")
for layer in model.layers[:8]:
    print(f"{layer.name:14s} {layer.kind:10s} {layer.op:18s} {layer.weight_format:8s} "
          f"{layer.in_channels:4d} -> {layer.out_channels:<4d} {layer.out_zero_point:5d}")

# %% [markdown]
# A ternary layer's weights are a matrix of -1, 0 and +1, one row per output channel. Here is
# one (white +1, black -1, grey 0):

# %%
layer = model.layer("b2.expand")
fig, ax = plt.subplots(figsize=(9, 2.4))
ax.imshow(layer.weights.T, cmap="gray", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
ax.set_xlabel("output channel")
ax.set_ylabel("input channel")
ax.set_title(f"{layer.name}: ternary weights [{layer.out_channels} x {layer.in_channels}], "
             f"{100 * np.mean(layer.weights == 0):.0f} % zeros")
plt.show()

# %% [markdown]
# ## Classify a photo
# The cat photo ships with scikit-image. The model's input spec says how an image becomes
# its int8 input: resize the shorter side, centre-crop to 32x32 (the CIFAR size) and store
# `pixel - 128`.

# %%
try:
    from skimage import data as skdata
    photo = skdata.chelsea()
except ImportError:        # scikit-image is in promref's "demo" extra
    from PIL import Image
    photo_path = os.path.join("..", "..", "shared", "data", "demo", "skimage_chelsea.png")
    photo = np.asarray(Image.open(photo_path).convert("RGB"))

spec = model.input
x = preprocess(photo, height=spec.height, width=spec.width, resize=spec.resize, resample=spec.resample)
print("model input:", x.dtype, x.shape, "values", x.min(), "..", x.max())
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(photo)
axes[0].set_title(f"photo {photo.shape[1]}x{photo.shape[0]}")
axes[1].imshow((x.astype(np.int16) + 128).astype(np.uint8))
axes[1].set_title(f"model input {spec.height}x{spec.width}")
for a in axes:
    a.axis("off")
plt.show()

predictions = promref.infer(model, photo, topk=3, backend="numpy")
for p in predictions:
    print(f"{p.label:12s} probability {p.probability:.3f}   int8 logit {p.logit}")
if not TRAINED:
    print("(untrained model: these labels are noise)")

# %% [markdown]
# ## Every layer's int8 tensor
# `forward(..., trace=True)` returns each layer's int8 output by name. ReLU6 layers (stem,
# expand, depthwise, last_conv) use the real range [0, 6], with zero point -128: all the zeros
# of the ReLU pile up at -128. Linear layers (projections, residual sums) spread around their
# own zero point.

# %%
logits, trace = model.forward(x[None], backend="numpy", trace=True)
names = ["stem", "b2.expand", "b2.depthwise", "b2.project", "b3.add", "last_conv"]
fig, axes = plt.subplots(2, 3, figsize=(10, 5))
for ax, name in zip(axes.ravel(), names):
    ax.hist(trace[name].ravel(), bins=64, range=(-128, 128))
    ax.axvline(model.layer(name).out_zero_point, color="r", lw=1)
    ax.set_title(f"{name}: {trace[name].shape[1:]}, zero point {model.layer(name).out_zero_point}", fontsize=9)
fig.suptitle("int8 outputs (red: the zero point, i.e. the real value 0)")
plt.tight_layout()
plt.show()

# %% [markdown]
# Across the whole network: which fraction of each layer's outputs sits at the lower clamp
# (for a ReLU6 layer, an exact zero) and at the upper clamp (saturated)?

# %%
layers = [layer for layer in model.layers if layer.op != "global_avgpool"]
relu6 = np.array([layer.out_min == layer.out_zero_point for layer in layers])   # the clamp at 0 is a ReLU
low = np.array([np.mean(trace[layer.name] == layer.out_min) for layer in layers])
high = np.array([np.mean(trace[layer.name] == layer.out_max) for layer in layers])
index = np.arange(len(layers))
fig, ax = plt.subplots(figsize=(11, 3.2))
ax.plot(index[relu6], low[relu6], "v", label="ReLU6 layers: exact zeros (lower clamp)")
ax.plot(index[~relu6], low[~relu6], "v", mfc="none", label="linear layers: at -128 (saturated)")
ax.plot(index, high, "^", color="r", label="at the upper clamp (saturated)")
ax.set_xticks(index[::4], [layer.name for layer in layers][::4], rotation=60, fontsize=7)
ax.set_ylabel("fraction of outputs")
ax.legend(fontsize=8)
ax.set_title("clamped outputs, layer by layer")
plt.show()

# %% [markdown]
# The ReLU6 layers set a good share of their outputs to exactly zero (that sparsity is free:
# a zero input adds nothing). Saturation at the top should be rare -- output ranges are
# chosen so that it is -- and a layer where it is not is the first suspect when accuracy
# drops after quantization. (The untrained model's logits saturate: its classifier was never
# calibrated on real images.)
#
# Feature maps are just int8 images. A few channels of the stem and of the first expand conv,
# each drawn with its own grey scale:

# %%
fig, axes = plt.subplots(2, 6, figsize=(12, 4.2))
for row, name in zip(axes, ["stem", "b2.expand"]):
    for c, ax in enumerate(row):
        ax.imshow(trace[name][0, :, :, c], cmap="gray")
        ax.set_title(f"{name} ch {c}", fontsize=8)
        ax.axis("off")
plt.show()

# %% [markdown]
# ## One layer by hand
# The trace is nothing but the ops of the layer list applied one after the other. Recompute
# `b2.project` (a ternary 1x1 conv) from its input with the reference kernel, in two steps:
# the additions-only accumulator, then the requantization.

# %%
from promref import arith
from promref.kernels.reference.pointwise_ternary import pointwise_ternary_accumulate

layer = model.layer("b2.project")
(source,) = layer.inputs
acc = pointwise_ternary_accumulate(trace[source], layer, model.zero_point_of(source))
mine = arith.requantize(acc, layer.multiplier, layer.shift, layer.out_zero_point,
                        layer.out_min, layer.out_max, model.rounding)
print(f"{layer.name} reads {source}; accumulators in [{acc.min()}, {acc.max()}]")
print("identical to the traced output:", np.array_equal(mine, trace[layer.name]))

# %% [markdown]
# ## NumPy and Numba agree on every bit
# The reference backend is written to be read; the Numba backend to be fast (its ternary
# kernel also only adds and subtracts). promref's guarantee is that every intermediate int8
# tensor is identical, on any batch and any number of threads. The first Numba call compiles
# the kernels (cached on disk afterwards), so we time the second.

# %%
rng = np.random.default_rng(0)
batch = np.concatenate([x[None], rng.integers(-128, 128, size=(7,) + x.shape, dtype=np.int8)])
timings, traces = {}, {}
for backend in ("numpy", "numba"):
    model.forward(batch[:1], backend=backend)          # warm-up (Numba compiles here once)
    start = time.perf_counter()
    _, traces[backend] = model.forward(batch, backend=backend, trace=True)
    timings[backend] = time.perf_counter() - start
mismatches = [n for n in traces["numpy"] if not np.array_equal(traces["numpy"][n], traces["numba"][n])]
print(f"layers compared: {len(traces['numpy'])}, mismatching: {mismatches or 'none'}")
print({k: f"{1e3 * v / len(batch):.1f} ms/image" for k, v in timings.items()})
assert not mismatches

# %% [markdown]
# ## Exercise
# The int8 logits are the end of the integer graph. The only float step in promref comes
# after it: the probabilities are the softmax of the *real* logits
# `scale * (q - zero_point)`, with the scale and zero point of the classifier's output
# (`model.output.out_scale`, `model.output.out_zero_point`). Compute the probability of the
# top class of our photo from `logits[0]` yourself (NumPy only, no promref function) and
# check it.

# %%
my_probability = None   # your answer: a float between 0 and 1


def check(answer):
    """True when ``answer`` is the top-1 probability promref.infer reports (to 1e-6)."""
    truth = promref.infer(model, photo, topk=1, backend="numpy")[0].probability
    ok = answer is not None and abs(float(answer) - truth) < 1e-6
    print("correct!" if ok else "not yet -- dequantize all logits, then take a softmax")
    return ok


check(my_probability);
