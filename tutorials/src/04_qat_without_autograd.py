# %% [markdown]
# # 4. Quantization-aware training without autograd
#
# A PROM network is trained in two phases: ordinary **float** training, then
# **quantization-aware training** (QAT), in which the forward pass already computes what the
# integer model will compute -- ternary 1x1 weights, int8 weights elsewhere, int8
# activations -- while the backward pass pretends that rounding is the identity (the
# *straight-through estimator*) and updates float "shadow" weights.
#
# `promref.train` does this in plain NumPy (and a few Numba loops), with every backward pass
# **written out by hand**: no PyTorch, no autograd. That buys one property that framework QAT
# famously lacks: promref's QAT forward *runs the integer engine's own kernels*, so the
# exported integer model agrees with the trained network **bit for bit**.
#
# In this notebook we
#
# 1. check one hand-written backward pass against finite differences;
# 2. train the small demo network (a depthwise-separable CNN with ternary 1x1 convs) on a
#    small CIFAR-10 subset, and watch its ternary weights and scales evolve;
# 3. fold batch norm into the weights by hand;
# 4. export the integer model and check that it matches the QAT network exactly.
#
# The run is kept small (a couple of thousand images, a few epochs: a minute or two on a
# laptop), so expect an accuracy far below what a full run reaches; `promref train --demo`
# trains the same network on 10,000 images.

# %%
import math
import os
import subprocess
import sys
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

import promref
from promref import arith
from promref.data import CIFAR10_CLASSES, cifar10_available, load_cifar10
from promref.evaluate import evaluate_model
from promref.architectures import LayerShape
from promref.preprocess import pixels_to_int8
from promref.train import TrainConfig, evaluate
from promref.train.augment import crop_flip
from promref.train.loop import Progress, build_network, recalibrate_batch_norm
from promref.train.network import softmax_cross_entropy
from promref.train.optim import SGD, cosine_lr
from promref.train.units import BN_EPS, ConvUnit

# %% [markdown]
# ## The data
# promref reads CIFAR-10 in its official layouts (`promref.data.load_cifar10`). This cell
# looks for it in `$PROMREF_CIFAR10`, then in the repository's git-ignored `local/cifar10`,
# then in promref's default `~/.cache/promref/cifar10`; in a checkout next to the project's
# `shared/data` folder it builds `local/cifar10` from the JPEG copy there (about a minute,
# once). Elsewhere, point `PROMREF_CIFAR10` at a folder holding `cifar-10-batches-bin` or
# `cifar-10-batches-py`, or download the official archive with
# `promref.data.download_cifar10()`.

# %%
def find_cifar10():
    if os.environ.get("PROMREF_CIFAR10"):
        return os.environ["PROMREF_CIFAR10"]
    local = os.path.join("..", "local", "cifar10")
    if cifar10_available(local):
        return local
    if cifar10_available():                       # ~/.cache/promref/cifar10
        return None
    script = os.path.join("..", "..", "shared", "data", "cifar10", "make_cifar10.py")
    if os.path.exists(script):
        print("building", local, "from", script, "...")
        subprocess.run([sys.executable, script, local], check=True, stdout=subprocess.DEVNULL)
        return local
    raise FileNotFoundError(
        "CIFAR-10 not found: set the environment variable PROMREF_CIFAR10 to a folder holding "
        "cifar-10-batches-bin or cifar-10-batches-py, or run promref.data.download_cifar10() "
        "(downloads the official archive, 170 MB, into ~/.cache/promref/cifar10).")


root = find_cifar10()
train_images, train_labels, source = load_cifar10("train", root=root, return_source=True)
test_images, test_labels = load_cifar10("test", root=root)
print(f"{source.name}: {len(train_images)} training and {len(test_images)} test images from {source.directory}")

TRAIN_SIZE, TEST_SIZE = 2000, 1000
rng = np.random.default_rng(0)
pick = rng.permutation(len(train_images))[:TRAIN_SIZE]
x_train, y_train = train_images[pick], train_labels[pick].astype(np.int64)
pick = rng.permutation(len(test_images))[:TEST_SIZE]
x_test, y_test = test_images[pick], test_labels[pick].astype(np.int64)

fig, axes = plt.subplots(1, 10, figsize=(12, 1.6))
for ax, img, label in zip(axes, x_train, y_train):
    ax.imshow(img)
    ax.set_title(CIFAR10_CLASSES[label], fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## A backward pass, by hand, checked
# Each layer of the network is a *unit* with a `forward_float` and a hand-written
# `backward_float` (and their QAT counterparts). A unit here is a 1x1 conv followed by batch
# norm. With the loss `L = sum(y * r)` for a random `r`, the upstream gradient is `r`, and
# the analytic gradients must match central differences `(L(w + e) - L(w - e)) / 2e`:

# %%
unit = ConvUnit(LayerShape("demo", "project", "conv2d", ("prev",), 8, 4, 1, 1, False, 4, 4),
                ternary=False, rng=np.random.default_rng(1))
x = np.random.default_rng(2).normal(size=(2, 4, 4, 8)).astype(np.float32)
r = np.random.default_rng(3).normal(size=(2, 4, 4, 4)).astype(np.float32)


def loss():
    return float((unit.forward_float(x, training=True).astype(np.float64) * r).sum())


unit.zero_grad()
unit.forward_float(x, training=True)
dx = unit.backward_float(r, need_dx=True)          # fills unit.grads, returns dL/dx


def numeric(array, index, eps=1e-2):
    old = array[index]
    array[index] = old + eps
    plus = loss()
    array[index] = old - eps
    minus = loss()
    array[index] = old
    return (plus - minus) / (2 * eps)


print(f"{'gradient':22s} {'analytic':>10s} {'numeric':>10s}")
for index in [(0, 0), (1, 3), (3, 7)]:
    print(f"dL/dw{str(index):16s} {unit.grads['w'][index]:10.4f} {numeric(unit.params['w'], index):10.4f}")
for name in ("gamma", "beta"):
    print(f"dL/d{name}[2]{'':12s} {unit.grads[name][2]:10.4f} {numeric(unit.params[name], 2):10.4f}")
for index in [(0, 1, 2, 3), (1, 3, 0, 5)]:
    print(f"dL/dx{str(index):16s} {dx[index]:10.4f} {numeric(x, index):10.4f}")

# %% [markdown]
# (tests/test_train_gradients.py does this for every unit, in both modes, on random shapes.)
#
# ## The network
# The demo network, `dsnet`: a 3x3 stem, then three stages of depthwise 3x3 conv + 1x1 conv
# (32, 64, 128 channels), global average pool and classifier. Under the `prom` scheme its 1x1
# convs are ternary; everything else is int8.

# %%
config = TrainConfig(arch="dsnet", dsnet_channels=(32, 64, 128), scheme="prom", batch_size=64,
                     lr=0.05, lr_qat=0.005, epochs_float=4, epochs_qat=3, bn_recalibration_batches=20, seed=0)
network = build_network(config)
for u in network.units:
    kind = "ternary" if getattr(u, "ternary", False) else ("int8" if u.params else "-")
    print(f"{u.name:14s} {type(u).__name__:10s} {kind:8s} weights {tuple(u.params['w'].shape) if u.params else ''}")
ternary_units = [u for u in network.units if getattr(u, "ternary", False)]

# %% [markdown]
# ## Training, and watching the ternary weights
# This is the loop that `promref.train.train` runs (that function adds progress output,
# checkpoints and resuming), written out so we can look inside after every epoch: for each
# ternary layer we record the ternary codes its folded float weights map to, their fraction
# of zeros, and the per-channel scales.
#
# Between the phases, batch-norm statistics are re-estimated with the *quantized* weights:
# ternarizing changes every conv's output statistics, and without this the QAT phase would
# start from a near-random network.

# %%
def snapshot(epoch, phase, seconds):
    record = dict(epoch=epoch, phase=phase, seconds=seconds,
                  test_acc=evaluate(network, x_test, y_test, phase if phase != "init" else "float"))
    for u in ternary_units:
        w_fold, _, _ = u.fold_batch_norm()                         # batch norm folded into the weights
        codes, scales = arith.ternarize(w_fold)
        record[u.name] = dict(codes=codes, scales=scales, zeros=float(np.mean(codes == 0)))
    history.append(record)
    print(f"epoch {epoch} ({phase}): test accuracy {100 * record['test_acc']:.1f} %, "
          f"zeros {[round(record[u.name]['zeros'], 3) for u in ternary_units]}, {seconds:.0f} s")


def run_epochs(mode, epochs, base_lr, weight_decay, warmup_epochs):
    optimizer = SGD(network.parameters(), config.momentum, weight_decay)
    steps = len(x_train) // config.batch_size
    for epoch in range(epochs):
        start = time.perf_counter()
        epoch_rng = np.random.default_rng([config.seed, len(history), 7])
        order = epoch_rng.permutation(len(x_train))
        for step in range(steps):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = crop_flip(x_train[idx], epoch_rng)                    # augmentation
            lr = cosine_lr(base_lr, epoch * steps + step, epochs * steps, warmup_epochs * steps)
            network.zero_grad()
            logits = network.forward(batch, mode=mode, training=True)      # float or QAT forward
            _, dlogits, _ = softmax_cross_entropy(logits, y_train[idx])
            network.backward(dlogits, mode=mode)                           # hand-written backward
            optimizer.step(network.gradients(), lr)
        snapshot(len(history), mode, time.perf_counter() - start)


history = []
snapshot(0, "init", 0.0)
run_epochs("float", config.epochs_float, config.lr, config.weight_decay, config.warmup_epochs)
recalibrate_batch_norm(network, x_train, config, Progress(stream=sys.stdout))
run_epochs("qat", config.epochs_qat, config.lr_qat, config.weight_decay_qat, 0)

# %% [markdown]
# Now the pictures. Left: test accuracy per epoch (float, then QAT). Middle: how many of
# each layer's ternary codes changed since the previous epoch -- most while the learning rate
# is high, few by the end of each phase's cosine schedule. Right: the fraction of zero
# weights per layer.

# %%
epochs = [h["epoch"] for h in history]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
colours = ["#1f77b4" if h["phase"] in ("init", "float") else "#d62728" for h in history]
axes[0].plot(epochs, [100 * h["test_acc"] for h in history], color="0.6", zorder=1)
axes[0].scatter(epochs, [100 * h["test_acc"] for h in history], c=colours, zorder=2)
axes[0].set_title("test accuracy (blue float, red QAT)", fontsize=10)
axes[0].set_ylabel("%")
for u in ternary_units:
    flips = [np.mean(a[u.name]["codes"] != b[u.name]["codes"]) for a, b in zip(history, history[1:])]
    axes[1].plot(epochs[1:], flips, ".-", label=u.name)
    axes[2].plot(epochs, [h[u.name]["zeros"] for h in history], ".-", label=u.name)
gaussian_zeros = math.erf(0.7 * math.sqrt(2 / math.pi) / math.sqrt(2))   # P(|w| <= 0.7 E|w|), w normal
axes[2].axhline(gaussian_zeros, color="k", lw=0.8, ls="--", label="normal weights")
axes[2].set_ylim(0, 0.6)
axes[1].set_title("ternary codes changed since the last epoch", fontsize=10)
axes[2].set_title("fraction of zero weights", fontsize=10)
for ax in axes:
    ax.axvline(config.epochs_float + 0.5, color="k", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
axes[1].legend(fontsize=8)
axes[2].legend(fontsize=8)
plt.show()

# %% [markdown]
# The fraction of zeros hardly moves, and that is no accident. The Ternary Weight Networks
# rule zeroes the weights below `0.7 * mean|w|` of their row, so the *fraction* of zeros
# depends only on the shape of the weight distribution: for normally distributed weights it
# is `P(|w| <= 0.7 * E|w|) = erf(0.7 / sqrt(pi))`, about 42 % (the dashed line). Training
# decides *which* weights are zero and what sign the others have (middle plot), not how many.
#
# The per-output-channel scales `alpha` (the mean magnitude of the folded weights that stay
# non-zero) of one layer, at the start, after the float phase and after QAT. They are scales
# of the *folded* weights, so they also move when batch norm's statistics are re-estimated
# before QAT:

# %%
name = ternary_units[1].name
moments = [0, config.epochs_float, len(history) - 1]
fig, ax = plt.subplots(figsize=(7, 3))
bins = np.histogram_bin_edges(np.concatenate([history[i][name]["scales"] for i in moments]), bins=30)
for i in moments:
    ax.hist(history[i][name]["scales"], bins=bins, alpha=0.5, label=f"epoch {i} ({history[i]['phase']})")
ax.set_xlabel("ternary scale alpha (per output channel)")
ax.set_ylabel("channels")
ax.set_title(f"{name}: ternary scales")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Folding batch norm
# In the integer model a conv has no batch norm: with frozen statistics, BN is an affine map
# per output channel, `gamma * (z - mean) / sqrt(var + eps) + beta`, and `z` is linear in
# the weights, so it folds into them:
#
#     k = gamma / sqrt(var + eps)
#     w_fold = w * k          (per output channel)
#     b_fold = beta - mean * k
#
# The folded weights are what gets quantized (ternarized here). Check on one layer that the
# float conv + BN equals the folded conv:

# %%
unit = ternary_units[1]
w_fold, b_fold, k = unit.fold_batch_norm()
x_in = np.random.default_rng(4).uniform(0, 6, size=(2, 8, 8, unit.cin)).astype(np.float32)
with_bn = unit.forward_float(x_in, training=False)                   # conv, then BN (eval), then ReLU6
folded = np.clip(unit._conv(x_in, w_fold) + b_fold, 0, 6)           # folded conv, then ReLU6
print(f"{unit.name}: largest difference {np.abs(with_bn - folded).max():.2e}")

codes, scales = arith.ternarize(w_fold)
print("the exported layer holds exactly these ternary codes:", np.array_equal(codes, unit.layer.weights))

# %% [markdown]
# ### Exercise
# Write the fold yourself: complete `my_fold` so that it returns `(w_fold, b_fold)` for a
# 1x1 conv with weights `w` of shape [Cout, Cin]. The check compares your result with
# promref's own fold of the trained layer above, without showing it.

# %%
def my_fold(w, gamma, beta, mean, var, eps=BN_EPS):
    """-> (w_fold [Cout, Cin], b_fold [Cout])."""
    return None, None     # your code here


def check(fold):
    """True when ``fold`` reproduces promref's batch-norm fold of ``unit`` (to float32 precision)."""
    truth_w, truth_b, _ = unit.fold_batch_norm()
    try:
        w, b = fold(unit.params["w"].copy(), unit.params["gamma"].copy(), unit.params["beta"].copy(),
                    unit.buffers["mean"].copy(), unit.buffers["var"].copy())
        ok = (w is not None and b is not None and np.shape(w) == truth_w.shape and np.shape(b) == truth_b.shape
              and np.allclose(w, truth_w, rtol=1e-5, atol=1e-6) and np.allclose(b, truth_b, rtol=1e-5, atol=1e-6))
    except Exception as error:  # a half-written answer should say why, not stop the notebook
        print(f"your function raised {type(error).__name__}: {error}")
        ok = False
    print("correct!" if ok else "not yet -- scale each output channel's weight row by k")
    return ok


check(my_fold);

# %% [markdown]
# ## Export, and the bit-exact check
# `Network.export` runs one QAT forward and collects the integer layer records that the
# units built for it -- the very records the QAT forward just ran through the engine's
# kernels. The result is an ordinary `promref.Model`; we save it and load it back (the
# loader validates everything, including that no int32 accumulator can overflow).

# %%
model = network.export("tutorial dsnet (PROM)")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "dsnet.npz")
    promref.save(model, path)
    size = os.path.getsize(path)
    model = promref.load(path)
print(f"saved and reloaded: {size:,} bytes, {len(model.layers)} layers")
for layer in model.layers:
    print(f"  {layer.name:14s} {layer.op:18s} {layer.weight_format:8s} out scale {layer.out_scale:.4f}, "
          f"zero point {layer.out_zero_point}")

# %% [markdown]
# Now the claim. The QAT network's forward (eval mode) returns real-valued logits and keeps
# its int8 logits; the exported model, run by the integer engine on the same images, must
# give the **same int8 logits** -- on both backends -- and hence the same predictions. (The
# NumPy reference is written to be read, not to be fast: it gets the first 200 images.)

# %%
real_logits = network.forward(x_test, mode="qat", training=False)
qat_int8 = network.int8_logits
engine = {"numba": model.forward(pixels_to_int8(x_test), backend="numba"),
          "numpy": model.forward(pixels_to_int8(x_test[:200]), backend="numpy")}
for backend, logits in engine.items():
    print(f"{backend:5s} engine == QAT network: {np.array_equal(logits, qat_int8[:len(logits)])} "
          f"({len(logits)} images, {logits.size} int8 logits)")
out = model.output
dequantized = out.out_scale * (engine["numba"].astype(np.float32) - out.out_zero_point)
print("dequantized engine logits == QAT real logits:", np.allclose(dequantized, real_logits, rtol=0, atol=1e-6))

float_acc = history[config.epochs_float]["test_acc"]              # at the end of the float phase
int_acc, _ = evaluate_model(model, x_test, y_test)
print(f"test accuracy on {len(x_test)} images of {source.name}: float network after the float phase "
      f"{100 * float_acc:.1f} %, integer model {100 * int_acc:.1f} % "
      f"(the QAT network: {100 * history[-1]['test_acc']:.1f} %)")
assert all(np.array_equal(logits, qat_int8[:len(logits)]) for logits in engine.values())

# %% [markdown]
# No tolerance, no "off by one LSB here and there": what was trained is what runs, and the
# integer model's accuracy *is* the QAT network's. The float network is a different network
# (float weights, float activations), so its accuracy differs; how much a model loses to
# ternary weights is a question for longer runs (`promref train --demo`, or the full
# MobileNetV2 run that produces `weights/mbv2_prom.npz`), not for this two-minute one.
