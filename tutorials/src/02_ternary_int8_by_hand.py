# %% [markdown]
# # 2. Ternary and int8 arithmetic by hand
#
# PROM's pointwise convolutions have weights in {-1, 0, +1} and read int8 activations. In
# this notebook we quantize one small 1x1 convolution, run it **with additions and
# subtractions only**, requantize the int32 result to int8 with an **integer multiplier and
# shift**, and compare with the float computation. On the way we meet a saturation and a
# rounding tie. Every function used here is the one promref itself runs: `promref.arith` is
# the project's single source of arithmetic truth, and docs/spec.md describes it in words.

# %%
import matplotlib.pyplot as plt
import numpy as np

from promref import arith

rng = np.random.default_rng(0)

# %% [markdown]
# ## A float 1x1 convolution
# A 1x1 conv is a matrix product at every pixel. Ours has 8 input channels, 4 output
# channels and 64 pixels; its inputs come from a ReLU6, so they lie in [0, 6].

# %%
x_float = rng.uniform(0.0, 6.0, size=(64, 8)).astype(np.float32)   # 64 pixels x 8 channels
w_float = rng.normal(0.0, 0.3, size=(4, 8)).astype(np.float32)     # 4 output channels
bias_float = rng.normal(0.0, 0.5, size=4).astype(np.float32)
y_float = x_float @ w_float.T + bias_float
y_float[:3]

# %% [markdown]
# ## Quantize
# **Activations** get 8 bits with a scale and a zero point: the int8 code `q` stands for the
# real value `s * (q - z)`. ReLU6 outputs live in [0, 6], so `s = 6/255` and `z = -128` map 0
# to -128 and 6 to 127.
#
# **Weights** become ternary with one scale per output channel, by the rule of Ternary Weight
# Networks: weights with `|w| > 0.7 * mean|w|` keep their sign, the others become 0, and the
# scale `alpha` is the mean magnitude of the weights that were kept.

# %%
s_x, z_x = 6.0 / 255.0, -128
x_q = np.clip(np.rint(x_float / s_x) + z_x, -128, 127).astype(np.int8)

t, alpha = arith.ternarize(w_float)
print("ternary weights t:\n", t)
print("per-channel scales alpha:", alpha)

# %% [markdown]
# ## Additions only
# The real value of `sum_c t[o, c] * (x[c] - z_x)` is that sum times `s_x * alpha[o]`, so the
# integer accumulator of output channel `o` only needs
#
#     acc[o] = bias'[o] + sum(x[c] for c where t[o, c] = +1) - sum(x[c] for c where t[o, c] = -1)
#
# where the input zero point was moved into the bias once, ahead of time:
# `bias'[o] = bias[o] - z_x * sum_c t[o, c]`. The bias itself is quantized with the
# accumulator's scale `s_x * alpha[o]`. No multiplication touches the data:

# %%
s_acc = s_x * alpha                                  # real value of one accumulator unit, per channel
bias_q = np.rint(bias_float / s_acc).astype(np.int64)
bias_folded = bias_q - z_x * t.astype(np.int64).sum(axis=1)

acc = np.empty((64, 4), np.int64)
for o in range(4):
    plus = np.flatnonzero(t[o] == 1)
    minus = np.flatnonzero(t[o] == -1)
    for p in range(64):
        total = bias_folded[o]
        for c in plus:
            total += x_q[p, c]      # an int8 addition into a wide accumulator
        for c in minus:
            total -= x_q[p, c]      # and a subtraction
        acc[p, o] = total
acc[:3]

# %% [markdown]
# It is the same number the textbook formula `bias + sum_c t * (x - z_x)` gives:

# %%
assert np.array_equal(acc, bias_q + (x_q.astype(np.int64) - z_x) @ t.T.astype(np.int64))
print("accumulators range from", acc.min(), "to", acc.max(), "-- far inside int32")

# %% [markdown]
# ## Requantize with an integer multiplier and shift
# The output has its own scale `s_y` and zero point `z_y`, so one accumulator unit is worth
# `s_acc / s_y` output units. At export that real factor is turned into a 31-bit integer
# multiplier `M` and a shift, `s_acc / s_y ~= M * 2**(shift - 31)`; at run time only integers
# are used:
#
#     y = clamp(z_y + round(acc * M * 2**(shift - 31)), -128, 127)

# %%
s_y, z_y = 0.05, 3
M, shift = arith.quantize_multipliers(s_acc / s_y)
print("multipliers M:", M, " shifts:", shift)
print("they stand for:", arith.multiplier_to_real(M, shift))
print("the real factors:", s_acc / s_y)
y_q = arith.requantize(acc, M, shift, z_y, -128, 127, "single")
y_q[:3]

# %% [markdown]
# ## Compare with float
# Dequantize (`s_y * (y_q - z_y)`) and plot against the float conv:

# %%
y_deq = s_y * (y_q.astype(np.float64) - z_y)
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.scatter(y_float.ravel(), y_deq.ravel(), s=10)
lim = [min(y_float.min(), y_deq.min()) - 0.3, max(y_float.max(), y_deq.max()) + 0.3]
ax.plot(lim, lim, "k--", lw=1)
ax.axhline(s_y * (127 - z_y), color="r", lw=1, label="largest int8 output (127)")
ax.set_xlabel("float conv output")
ax.set_ylabel("ternary + int8, dequantized")
ax.set_title("1x1 conv: float vs PROM integer")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Two things show. The cloud around the diagonal comes from **ternarizing the weights**:
# four weight values per channel cannot reproduce a Gaussian weight row (a real network is
# *trained* with this quantization, which is what notebook 4 is about). And the points at the
# top are a **saturation**: our output range `s_y * ([-128, 127] - z_y)` ends at 6.2, so larger
# results are clamped to 127.
#
# The integer arithmetic itself adds almost nothing. Compute, in float64, what the same
# quantized weights and inputs *should* give, and compare with the int8 outputs that were not
# clamped:

# %%
ideal = ((x_q.astype(np.float64) - z_x) @ (t.T * alpha) * s_x + bias_float) / s_y + z_y
unclamped = (y_q > -128) & (y_q < 127)
print(f"{(~unclamped).sum()} of {y_q.size} outputs saturated")
print(f"largest |int8 output - exact value| where not saturated: {np.abs(ideal - y_q)[unclamped].max():.3f} LSB")

# %% [markdown]
# Less than one output step: half a step from the final rounding plus a little from rounding
# the bias to whole accumulator units.
#
# ## Requantization as a function
# Here is the requantization of one channel over a range of accumulators: a staircase (one
# step per `1 / (s_acc / s_y)` accumulator units) that saturates at both ends. A ReLU6 is no
# extra op: it is a tighter clamp, `[z, q(6)]`, of the same staircase.

# %%
acc_range = np.arange(-1400, 1400, dtype=np.int64)
full = arith.requantize(acc_range, M[0], shift[0], z_y, -128, 127, "single")
relu6_max = z_y + int(np.floor(6.0 / s_y + 0.5))                  # the code of the real value 6
relu6 = arith.requantize(acc_range, M[0], shift[0], z_y, z_y, min(relu6_max, 127), "single")
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.plot(acc_range, full, label="clamp to [-128, 127]")
ax.plot(acc_range, relu6, "--", label=f"ReLU6: clamp to [{z_y}, {min(relu6_max, 127)}]")
ax.set_xlabel("int32 accumulator")
ax.set_ylabel("int8 output")
ax.set_title(f"requantize: M = {M[0]}, shift = {shift[0]}, zero point {z_y}")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## A rounding tie
# Take `M = 2**30` and `shift = -1`: the factor is `2**30 * 2**(-1 - 31) = 1/4`. For
# `acc = 6` the exact result is 1.5, a tie. promref knows two rounding modes, and a model
# file names the one it was built for:
#
# - `"single"` (promref's default; TFLite's single rounding, TOSA) rounds once, half **up**
#   (towards +infinity): `(acc * M + 2**(30 - shift)) >> (31 - shift)`;
# - `"double"` is TFLite's reference: a rounding doubling high multiply (`acc * M / 2**31`,
#   ties up), then a rounding shift by `2**-shift` (ties **away from zero**).

# %%
print(" acc   exact  single  double")
for value in (6, -6, 5, -5):
    print(f"{value:4d}  {value / 4:6.2f}  {arith.scale_single(value, 2**30, -1):6d}"
          f"  {arith.scale_double(value, 2**30, -1):6d}")

# %% [markdown]
# - `acc = 6` (1.5): both give 2.
# - `acc = -6` (-1.5): `single` rounds the tie up to -1, `double` away from zero to -2.
# - `acc = 5` (1.25, not a tie at all!): `double` first computes `5 * 2**30 / 2**31 = 2.5`,
#   rounds that tie up to 3, then divides by 2: 1.5, another tie, rounded away from zero to
#   2. Rounding twice gave 2 where the correctly rounded answer is 1.
#
# Such differences are rare on real data, but they are there, and after a few layers no
# tensor is bit-identical any more. That is why a bit-exact oracle must *name* its rounding
# mode (docs/conformance.md measures how often the modes disagree on MobileNetV2).
#
# ## Exercise
# What do `"single"` and `"double"` give for `acc = 3`, `M = 2**30`, `shift = -2` (that is,
# 3/8 = 0.375)? Work it out on paper first, then write your answers below; the cell checks
# them against promref without printing the solution.
#
# <details><summary>Hint</summary>
#
# For `"double"`, the first step is `round(3 * 2**30 / 2**31)` (ties up), the second divides
# by `2**2` (ties away from zero).
# </details>

# %%
my_single = None   # your answer
my_double = None   # your answer


def check(single, double):
    """Compare both answers with promref's arithmetic; prints which are right."""
    ok = {"single": single == arith.scale_single(3, 2**30, -2),
          "double": double == arith.scale_double(3, 2**30, -2)}
    print(", ".join(f"{mode}: {'correct' if right else 'not yet'}" for mode, right in ok.items()))
    return all(ok.values())


check(my_single, my_double);
