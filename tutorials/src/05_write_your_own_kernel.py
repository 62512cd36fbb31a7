# %% [markdown]
# # 5. Write your own kernel, and check it
#
# promref's main job is to be a **conformance oracle**: if you write a PROM kernel -- for a
# microcontroller, an FPGA, a SIMD library -- you can prove it computes what promref
# computes, bit for bit. The proof is a suite of golden vectors (inputs, parameters and
# expected int8 outputs, as plain `.npy` files and a JSON manifest) and a checker that
# compares with **0 LSB tolerance** and tells you the first case and index that differ.
#
# In this notebook you
#
# 1. generate a small suite;
# 2. write the ternary pointwise convolution and its requantization in plain NumPy;
# 3. check them against the suite;
# 4. watch a deliberately wrong rounding (round half to even, as ONNX specifies it) get
#    caught, with the case and the index that give it away.
#
# docs/conformance.md specifies the suite and the checker, including a file-based protocol
# for kernels written in other languages (`examples/c/` is a C kernel checked that way).

# %%
import json
import tempfile
from collections import Counter
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np

from promref import conformance
from promref.conformance.suite import load_case_arrays

# %% [markdown]
# ## The suite
# `conformance.generate` writes the default suite: per-op cases for every op in both
# rounding modes, plus full-model cases. We only need the per-op cases here, which take a
# fraction of a second; they go into a temporary folder that disappears with the kernel.

# %%
suite_folder = tempfile.TemporaryDirectory(prefix="promref-suite-")
SUITE = suite_folder.name
manifest = conformance.generate(SUITE, include_shipped=False, random_models=())
print(len(manifest["cases"]), "cases in", SUITE)
print(Counter((case["op"], case["rounding"]) for case in manifest["cases"]))

# %% [markdown]
# Every case names its op, its rounding mode, its scalar parameters and its tensors. A
# ternary pointwise case:

# %%
case = next(c for c in manifest["cases"] if c["id"] == "pointwise_ternary/small_ties_single")
print(case["description"])
print("params:", case["params"])
for tensor in case["inputs"] + case["outputs"]:
    print(f"  {tensor['name']:10s} {tensor['dtype']:5s} {tensor['shape']}  {tensor['file']}")
print("coverage:", json.dumps(case["coverage"]))

# %% [markdown]
# The `coverage` field says what the case is built to catch: how many outputs are exact
# rounding ties, how many saturate, and how many outputs each *other* rounding rule would
# get wrong.
#
# ## Your kernel
# The op, as docs/spec.md defines it, for input `x` int8 `[N, H, W, Cin]`, ternary weights
# `t` `[Cout, Cin]`, int32 `bias`, `multiplier` and `shift` per output channel:
#
#     acc[..., o] = bias[o] + sum_c t[o, c] * (x[..., c] - in_zero_point)         (int32)
#     y[..., o]   = clamp(out_zero_point + scale(acc[..., o], M[o], shift[o]), out_min, out_max)
#
# and in the `"single"` rounding mode `scale(acc, M, shift)` is `acc * M * 2**(shift - 31)`
# rounded once, ties towards +infinity: with `n = 31 - shift`,
#
#     scale(acc, M, shift) = (acc * M + 2**(n - 1)) >> n        (in 64-bit integers)
#
# Below is a plain NumPy version, written from these formulas only -- no promref code. The
# accumulator adds and subtracts; the one multiplication per output is the requantization.

# %%
def my_scale_single(acc, multiplier, shift):
    """acc * M * 2**(shift - 31), rounded half up, in int64."""
    n = 31 - shift.astype(np.int64)
    product = acc.astype(np.int64) * multiplier.astype(np.int64)       # fits: |acc|, M < 2**31
    return (product + np.left_shift(np.int64(1), n - 1)) >> n


def my_requantize(acc, multiplier, shift, zero_point, qmin, qmax, scale=my_scale_single):
    scaled = scale(acc, multiplier, shift)                            # per channel: the last axis
    return np.clip(scaled + zero_point, qmin, qmax).astype(np.int8)


def my_pointwise_accumulate(x, weights, bias, in_zero_point):
    centred = x.astype(np.int64) - in_zero_point
    acc = np.empty(x.shape[:-1] + (weights.shape[0],), np.int64)
    for o, row in enumerate(weights):
        acc[..., o] = bias[o] + centred[..., row == 1].sum(axis=-1) - centred[..., row == -1].sum(axis=-1)
    return acc


def make_kernel(scales):
    """A kernel in the checker's interface: (op, inputs, params) -> {"y": int8 array}.

    scales: {rounding mode: scale function}; other modes are reported as unsupported."""
    def kernel(op, inputs, params):
        if params["rounding"] not in scales:
            raise NotImplementedError(f"rounding mode {params['rounding']!r}")
        scale = scales[params["rounding"]]
        if op == "requantize":
            acc = inputs["acc"]
        elif op == "pointwise_ternary":
            acc = my_pointwise_accumulate(inputs["x"], inputs["weights"], inputs["bias"], params["in_zero_point"])
        else:
            raise NotImplementedError(op)
        return {"y": my_requantize(acc, inputs["multiplier"], inputs["shift"], params["out_zero_point"],
                                   params["out_min"], params["out_max"], scale)}
    kernel.supported_ops = ("requantize", "pointwise_ternary")
    return kernel


my_kernel = make_kernel({"single": my_scale_single})

# %% [markdown]
# ## Check it
# `conformance.check` runs the kernel on every case, compares every output value, and
# returns a report. Cases of other ops, and of the `"double"` mode our kernel does not
# implement, are **skipped** -- never counted as passed.

# %%
report = conformance.check(SUITE, my_kernel)
for result in report.results:
    if result.status != "skip" or result.op in my_kernel.supported_ops:
        print(result.line())
print(report.text())            # the summary (and every failure, if there were any)
assert report.ok

# %% [markdown]
# ## A deliberately wrong rounding
# Round-half-to-even is what ONNX's `QuantizeLinear` and PyTorch's `round` specify, and it
# looks like an equally valid choice. It differs from `"single"` only at exact ties -- which
# calibrated real networks almost never produce (docs/conformance.md measured 0 differences
# in 441 million MobileNetV2 outputs). Here it is, written by hand:

# %%
def half_even_scale(acc, multiplier, shift):
    """acc * M * 2**(shift - 31), rounded to nearest, ties to even."""
    n = 31 - shift.astype(np.int64)
    product = acc.astype(np.int64) * multiplier.astype(np.int64)
    floor = product >> n
    remainder = product - (floor << n)
    half = np.left_shift(np.int64(1), n - 1)
    return floor + ((remainder > half) | ((remainder == half) & (floor % 2 == 1)))


acc = np.arange(-24, 25, dtype=np.int64)
M, shift = np.int64(2**30), np.int64(-2)                # M * 2**(shift - 31) = 1/8
single, even = my_scale_single(acc, M, shift), half_even_scale(acc, M, shift)
fig, ax = plt.subplots(figsize=(8, 3.2))
differ = single != even
ax.plot(acc, acc / 8, color="0.7", label="exact acc / 8")
ax.plot(acc, single, "o", ms=5, mfc="none", label="single: ties up")
ax.plot(acc, even, "x", ms=5, label="half to even")
ax.plot(acc[differ], single[differ], "o", ms=9, mfc="none", color="r", label="they differ (exact ties)")
ax.set_xlabel("accumulator")
ax.set_ylabel("scaled value")
ax.set_title("two roundings of acc / 8")
ax.legend(fontsize=8)
plt.show()
print("ties where they differ:", acc[differ])

# %% [markdown]
# Half the ties agree (those whose lower neighbour is odd), the other half differ by one.
# Plug it into the same kernel and run the suite again:

# %%
wrong_kernel = make_kernel({"single": half_even_scale})
wrong = conformance.check(SUITE, wrong_kernel)
print(wrong.text())

# %% [markdown]
# The report names the case, the output index (C order), the expected and the actual value.
# That is enough to reproduce the failure by hand. Take the first failing pointwise case, read
# its inputs, and recompute the accumulator at the failing index with exact fractions:

# %%
failure = next(r for r in wrong.failures() if r.op == "pointwise_ternary")
print("case:", failure.case, " index:", failure.index, " expected:", failure.expected, " got:", failure.actual)

bad_case = next(c for c in manifest["cases"] if c["id"] == failure.case)
arrays = load_case_arrays(SUITE, bad_case["inputs"])
p = bad_case["params"]
acc_all = my_pointwise_accumulate(arrays["x"], arrays["weights"], arrays["bias"], p["in_zero_point"])
o = failure.index[-1]                                   # the output channel
acc_value = int(acc_all[failure.index])
M_o, shift_o = int(arrays["multiplier"][o]), int(arrays["shift"][o])
exact = Fraction(acc_value * M_o, 2 ** (31 - shift_o))
args = np.int64(acc_value), np.int64(M_o), np.int64(shift_o)
print(f"acc = {acc_value}, M = {M_o}, shift = {shift_o}: exact scaled value {exact} = {float(exact)}")
print(f"plus the zero point {p['out_zero_point']}: single rounding gives "
      f"{p['out_zero_point'] + int(my_scale_single(*args))}, half-even gives "
      f"{p['out_zero_point'] + int(half_even_scale(*args))}")

# %% [markdown]
# An exact tie, rounded the other way. A scoreboard of both kernels over the cases they
# attempt:

# %%
attempted = [r.case for r in report.results if r.status != "skip"]
fig, ax = plt.subplots(figsize=(8, 0.32 * len(attempted) + 1))
colour = {"pass": "#2ca02c", "fail": "#d62728", "error": "#ff7f0e", "skip": "0.8"}
for col, rep in enumerate((report, wrong)):
    for row, case_id in enumerate(attempted):
        result = rep.result(case_id)
        ax.add_patch(plt.Rectangle((col, row), 0.95, 0.9, color=colour[result.status]))
        if result.status == "fail":
            ax.text(col + 0.47, row + 0.45, f"{result.mismatches} of {result.compared}", ha="center",
                    va="center", fontsize=7, color="white")
ax.set_xlim(0, 2)
ax.set_ylim(len(attempted), 0)
ax.set_xticks([0.47, 1.47], ["my kernel (single)", "half-to-even kernel"])
ax.set_yticks([i + 0.45 for i in range(len(attempted))], attempted, fontsize=8)
ax.set_title("green: pass, red: fail (values that differ)", fontsize=10)
plt.show()

# %% [markdown]
# A kernel that is right on "almost all" data is not conformant: the suite's tie cases exist
# because real data rarely contains ties, so real data alone would never catch this bug.
# (`conformance.half_even_implementation()` is promref's own copy of this wrong peer, used by
# its tests; `python -m promref.conformance check SUITE --cmd ./my_program` checks a program
# in any language through files.)
#
# ## Exercise
# Make the kernel support the `"double"` rounding mode (TFLite's reference rounding) too.
# Write `my_scale_double(acc, multiplier, shift)` with NumPy int64 arithmetic:
#
# 1. if `shift > 0`, first shift `acc` left by `shift`;
# 2. `high = round(acc * M / 2**31)`, ties towards +infinity
#    (`SaturatingRoundingDoublingHighMul`; the saturating case cannot occur in the suite);
# 3. if `shift < 0`, divide `high` by `2**-shift`, rounding ties **away from zero**
#    (`RoundingDivideByPOT`).
#
# The check runs the suite's `"double"` cases on your function, so "correct" means
# conformant.
#
# <details><summary>Hint</summary>
#
# In step 2, `(p + 2**30) >> 31` rounds ties up for every sign of `p = acc * M`. In step 3,
# with `e = -shift`, compare the remainder `high & (2**e - 1)` with a threshold of
# `2**(e-1) - 1`, plus one when `high` is negative. docs/spec.md, "Requantization", has both
# steps in full.
# </details>

# %%
def my_scale_double(acc, multiplier, shift):
    """acc * M * 2**(shift - 31) with TFLite's double rounding, in int64."""
    raise NotImplementedError("your code here")


def check(scale_double):
    """True when ``scale_double`` passes every "double" case of the suite (pointwise and requantize)."""
    kernel = make_kernel({"double": scale_double})
    result = conformance.check(SUITE, kernel, ops=kernel.supported_ops, cases=["*_double"])
    ok = result.ok and result.count("skip") == 0
    print("correct: conformant in 'double' mode!" if ok else f"not yet: {result.summary()}")
    return ok


check(my_scale_double);
