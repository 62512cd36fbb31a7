# %% [markdown]
# # 1. Why PROM?
#
# PROM ("Prioritize Reduction of Multiplications over lower bit-widths",
# [arXiv 2505.03254](https://arxiv.org/abs/2505.03254)) starts from an observation about
# depthwise-separable networks such as MobileNetV2: almost all of their arithmetic sits in
# the **1x1 (pointwise) convolutions**. Make exactly those layers **ternary** (weights in
# {-1, 0, +1}) and keep 8-bit activations, and their multiplications disappear: what is left
# are int8 additions, which cost a fraction of a multiplication. Everything else stays int8.
#
# This notebook follows the argument with numbers:
#
# 1. where MobileNetV2 spends its multiply-accumulates (MACs);
# 2. what ternary weights do to multiplications and additions;
# 3. what each operation costs in energy (Horowitz's 45 nm table, which the paper cites);
# 4. the resulting cost split, as a plot, and how much the answer depends on what is counted.
#
# No weights are needed: all counts follow from the layer geometry
# (`promref.architectures.mobilenetv2_layout`) and are computed by `promref.energy`.

# %%
import matplotlib.pyplot as plt

from promref.energy import HOROWITZ_45NM, layer_op_rows, mobilenetv2_report, paper_comparison
from promref.energy.plot import KIND_COLOURS, cost_split_plot
from promref.architectures import mobilenetv2_layout

# %% [markdown]
# ## 1. Where MobileNetV2 spends its MACs
#
# A promref layout is a flat list of layers in execution order. Each has a *kind* -- its
# role in the network: `stem` (the first 3x3 conv), `expand` and `project` (the 1x1 convs of
# each inverted-residual block), `depthwise` (3x3, one filter per channel), `add`
# (residual), `last_conv` (the final 1x1, 320 -> 1280 channels), `pool` and `classifier`.
# We take the standard ImageNet network (width 1.0, 224x224 input) and count, per layer, one
# MAC per weight per output pixel.

# %%
layout = mobilenetv2_layout("imagenet", width=1.0, scheme="int8")   # every layer int8
rows = layer_op_rows(layout)
total_macs = sum(r["macs"] for r in rows)
print(f"{len(rows)} layers, {total_macs / 1e6:.1f} M MACs per image")
print(f"{'layer':14s} {'kind':10s} {'output':>12s} {'MACs':>12s}")
for r in rows[:8]:
    print(f"{r['name']:14s} {r['kind']:10s} {'x'.join(map(str, r['output'])):>12s} {r['macs']:>12,}")

# %% [markdown]
# Every layer as a bar, coloured by kind:

# %%
fig, ax = plt.subplots(figsize=(11, 3.2))
ax.bar(range(len(rows)), [r["macs"] / 1e6 for r in rows], color=[KIND_COLOURS[r["kind"]] for r in rows])
for kind in ("stem", "expand", "depthwise", "project", "last_conv", "classifier"):
    ax.bar([0], [0], color=KIND_COLOURS[kind], label=kind)          # legend entries only
ax.set_xlabel("layer (execution order)")
ax.set_ylabel("M MACs per image")
ax.set_title("MobileNetV2 1.0 / 224: multiply-accumulates per layer")
ax.legend(ncol=6, fontsize=8)
plt.show()

# %% [markdown]
# The tall bars are the 1x1 convolutions. Summed by kind:

# %%
by_kind = {}
for r in rows:
    by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + r["macs"]
for kind, macs in by_kind.items():
    if macs:
        print(f"{kind:10s} {macs / 1e6:7.1f} M MACs  {100 * macs / total_macs:5.1f} %")
pointwise = by_kind["expand"] + by_kind["project"] + by_kind["last_conv"]
print(f"all 1x1 convs: {100 * pointwise / total_macs:.1f} % of the MACs")

# %% [markdown]
# Why so uneven? On an `H x W` map a 1x1 conv from `Cin` to `Cout` channels costs
# `H * W * Cin * Cout` MACs, a depthwise 3x3 conv on `C` channels only `H * W * C * 9`. With
# `Cout` in the hundreds, the 1x1 conv is tens of times more expensive than the depthwise conv
# beside it. So if anything is to become cheap, it has to be the 1x1 convolutions.
#
# ## 2. Multiplications become additions
#
# With a ternary weight `t` in {-1, 0, +1}, the product `t * x` is `x`, `-x` or nothing. A
# ternary 1x1 conv therefore only **adds and subtracts** int8 inputs into an int32
# accumulator; the one multiplication left per *output* is the requantization back to int8
# (notebook 2 does it by hand). Compare the PROM layout (ternary 1x1 convs) with the uniform
# int8 one:

# %%
prom_rows = layer_op_rows(mobilenetv2_layout("imagenet", width=1.0, scheme="prom"))
for name, rs in (("int8", rows), ("PROM", prom_rows)):
    mults = sum(r["multiplications"] for r in rs)
    adds = sum(r["additions"] for r in rs)
    requant = sum(r["requantizations"] for r in rs)
    print(f"{name:5s} multiplications {mults / 1e6:6.1f} M   additions {adds / 1e6:6.1f} M   "
          f"requantizations {requant / 1e6:4.1f} M")

# %% [markdown]
# PROM keeps the number of additions and removes 89 % of the multiplications: the 32.8 M that
# remain belong to the stem, the depthwise convs and the classifier, which stay int8.
#
# ## 3. What an operation costs
#
# The paper prices operations with the energy table of Horowitz, "Computing's energy
# problem" (ISSCC 2014; 45 nm, 0.9 V). promref keeps it as named data,
# `promref.energy.HOROWITZ_45NM`; you can replace any entry (`HOROWITZ_45NM.replace(...)`).

# %%
table = HOROWITZ_45NM
keys = ["add_int8", "add_int32", "mul_int8", "add_fp16", "add_fp32", "mul_fp16", "mul_int32", "mul_fp32"]
fig, ax = plt.subplots(figsize=(8, 3))
colours = ["#2ca02c" if k.startswith("add") else "#d62728" for k in keys]
ax.barh(keys, [table[k] for k in keys], color=colours)
for i, k in enumerate(keys):
    ax.annotate(f"{table[k]:g} pJ", (table[k], i), xytext=(4, -3), textcoords="offset points", fontsize=8)
ax.set_xscale("log")
ax.set_xlim(0.01, 20)
ax.set_xlabel("energy per operation [pJ] (log scale)")
ax.set_title(f"{table.name}: additions (green) and multiplications (red)")
plt.show()
fp16_mac = table["mul_fp16"] + table["add_fp16"]
print(f"a float16 MAC costs {fp16_mac:g} pJ, an int8 MAC (int8 multiply + int32 add) "
      f"{table['mul_int8'] + table['add_int32']:g} pJ, an int8 addition {table['add_int8']:g} pJ: "
      f"{fp16_mac / table['add_int8']:.0f}x less than the float16 MAC")

# %% [markdown]
# ## 4. Pricing the whole network
#
# `mobilenetv2_report` counts every operation of MobileNetV2 in four configurations
# (float32, float16 -- the paper's baseline --, int8, and PROM) and multiplies by the table.
# *Which* operations are counted is a named choice, an **accounting**; the default, `paper`,
# is promref's reading of the paper (docs/energy.md explains every option). The PROM total is
# nothing but counts times prices, which we can redo by hand:

# %%
rep = mobilenetv2_report("imagenet", 1.0)          # accounting "paper", Horowitz table
print("accounting:", rep.accounting.name)
by_hand = 0.0
for (role, key), count in rep.ops("prom").items():
    print(f"  {role:15s} {count / 1e6:8.2f} M x {table[key]:4g} pJ ({key})")
    by_hand += count * table[key]
print(f"PROM: {by_hand / 1e6:.2f} uJ per image (report: {rep.energy_pj('prom') / 1e6:.2f} uJ)")
print(f"{'config':8s} {'energy':>11s}  float16 energy / this")
for config in ("float32", "float16", "int8", "prom"):
    print(f"{config:8s} {rep.energy_pj(config) / 1e6:8.2f} uJ  {rep.energy_ratio(config):6.2f}")

# %% [markdown]
# 24.1x less arithmetic energy than float16, close to the paper's 23.9x.
#
# ## 5. The cost split
#
# Where does the energy go *after* PROM? `promref.energy.plot.cost_split_plot` stacks the
# energy of each configuration by layer kind:

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
cost_split_plot(rep, metric="energy", ax=axes[0])
cost_split_plot(rep, metric="storage", ax=axes[1])
plt.show()

# %% [markdown]
# In float16 and int8 the 1x1 convs (expand, project, last_conv) take almost all of the
# energy. In PROM they are down to under half: the stem and the depthwise convs, which were a
# tenth of the MACs, now take the larger share. That is the point of the paper's title: a
# cheap *operation* (int8 addition instead of multiplication) buys more than a narrower bit
# width for every layer -- and it tells you what to attack next.
#
# Storage (right) tells a different story: in PROM the int8 classifier (1280 x 1000 weights)
# holds two thirds of the bytes, because it has a third of the weights and keeps 8 bits each.
#
# ## 6. The answer depends on what you count
#
# Energy estimates like these are only as good as their accounting. Does requantization cost
# an 8-bit or a 32-bit multiply? Are additions int8 or int32 wide? Is the last 1x1 conv
# ternary? `paper_comparison()` evaluates the same network under each named accounting:

# %%
comparison = paper_comparison()
fig, ax = plt.subplots(figsize=(8, 3.6))
names = [row["accounting"] for row in comparison]
ax.barh(names, [row["energy_ratio"] for row in comparison], color="#1f77b4")
ax.axvline(23.9, color="k", ls="--", lw=1, label="paper: 23.9x")
ax.invert_yaxis()
ax.set_xlabel("PROM energy reduction vs float16 [x]")
ax.set_title("MobileNetV2 1.0/224 under each accounting")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Counting each requantization as the int32 x int32 multiply that promref actually performs
# (`int32-requant`) halves the reduction to about 11x; counting the ternary additions at int32
# width does the same. The *storage* reduction is harder still: the paper says 2.7x, and no
# accounting consistent with its energy figure goes below about 3.2x (see docs/energy.md,
# "Storage: 2.7x is not reproduced").
#
# ## Exercise
#
# Price layer `b2.expand` (the first expand conv: 24 -> 96 channels on a 112x112 map) in the
# PROM configuration under the `paper` accounting, in picojoules per image. It is ternary, so
# it performs one int8 addition per weight per pixel, plus one int8 multiply per output to
# requantize. Put your number below and run the cell; it is compared with promref's report
# without showing the solution.
#
# <details><summary>Hint</summary>
#
# `layer_op_rows` gives the layer's output shape and MACs (`prom_rows`); the prices are in
# `HOROWITZ_45NM`.
# </details>

# %%
my_energy_pj = None   # your answer, in pJ


def check(answer):
    """True when ``answer`` is the energy of b2.expand in PROM (pJ), to 0.1 %."""
    layer = next(layer for layer in rep.layers if layer.name == "b2.expand")
    truth = layer.energy_pj["prom"]
    ok = answer is not None and abs(float(answer) - truth) <= 1e-3 * truth
    print("correct!" if ok else "not yet -- count the additions and the requantizations of b2.expand")
    return ok


check(my_energy_pj);
