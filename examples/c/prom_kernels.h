/*
 * prom_kernels.h - the PROM ternary pointwise convolution and int8
 * requantization, written the way a microcontroller port would write them:
 * C99, fixed-width integers, no floating point, no allocation.
 *
 * Arithmetic follows promref (promref/arith.py, docs/spec.md):
 *
 *   "single":  (acc * M + 2^(30 - shift)) >> (31 - shift)      one rounding, ties up
 *   "double":  RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << max(shift, 0), M),
 *                                  max(-shift, 0))               TFLite reference
 *   y = clamp(zero_point + scaled, qmin, qmax)
 *
 * Preconditions (promref's model validator proves them for every layer):
 * 0 <= M <= 2^31 - 1, -31 <= shift <= 30, |acc| << shift fits in int32 when
 * shift > 0, and no int32 accumulator can overflow.
 *
 * Compile with -DWRONG_ROUNDING for a deliberately broken variant (ties of
 * negative values rounded the wrong way in both modes): the conformance
 * suite must catch it.
 */
#ifndef PROM_KERNELS_H
#define PROM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PROM_ROUND_SINGLE = 0, PROM_ROUND_DOUBLE = 1 } prom_rounding;

/* round(a * b / 2^31), ties towards +infinity (gemmlowp's nudge then truncation); saturates
 * a == b == INT32_MIN to INT32_MAX */
int32_t prom_srdhm(int32_t a, int32_t b);

/* x / 2^exponent, ties away from zero; exponent in [0, 31] */
int32_t prom_rounding_divide_by_pot(int32_t x, int exponent);

/* acc * M * 2^(shift - 31), rounded by the named mode */
int32_t prom_scale_single(int32_t acc, int32_t multiplier, int shift);
int32_t prom_scale_double(int32_t acc, int32_t multiplier, int shift);

/* clamp(zero_point + scale(acc), qmin, qmax); the sum is taken in 64 bits, so it never wraps */
int8_t prom_requantize(int32_t acc, int32_t multiplier, int shift, int32_t zero_point,
                       int32_t qmin, int32_t qmax, prom_rounding rounding);

/* ternary weights {-1, 0, +1} -> 2-bit codes, 4 per byte, first weight in the low bits
 * (00 = 0, 01 = +1, 10 = -1), as in the promref weights file; packed has (count + 3) / 4 bytes */
void prom_pack_ternary(const int8_t *ternary, size_t count, uint8_t *packed);

/* folded[o] = bias[o] - in_zero_point * sum_c t[o][c]: the input zero point moved into the bias */
void prom_fold_bias(const int32_t *bias, const uint8_t *packed, int cout, int cin, int32_t in_zero_point,
                    int32_t *folded);

/* y[p][o] = requantize(folded[o] + sum_{t[o][c] = +1} x[p][c] - sum_{t[o][c] = -1} x[p][c])
 * x: int8 [pixels][cin]; y: int8 [pixels][cout].  No multiplication touches the data. */
void prom_pointwise_ternary(const int8_t *x, size_t pixels, int cin, const uint8_t *packed, int cout,
                            const int32_t *folded_bias, const int32_t *multiplier, const int32_t *shift,
                            int32_t out_zero_point, int32_t out_min, int32_t out_max, prom_rounding rounding,
                            int8_t *y);

#endif /* PROM_KERNELS_H */
