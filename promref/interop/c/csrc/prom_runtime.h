/*
 * prom_runtime.h - the kernels of a generated PROM network (promref export c).
 *
 * C99, fixed-width integers only, no floating point, no allocation, no libc
 * beyond <stdint.h> and <string.h>.  Every kernel is one function and follows
 * its section of promref's docs/spec.md; the arithmetic is promref/arith.py's.
 *
 * The generator (promref/interop/c) proves every precondition below for the
 * model it writes, so the kernels check nothing at run time:
 *   - every int32 accumulator and partial sum fits in int32 (spec "Overflow bound");
 *   - for a positive shift, acc << shift fits in int32 (rule 2), so the "double"
 *     mode's pre-shift is exact;
 *   - multipliers are in [0, 2^31 - 1] and shifts in [-31, 30];
 *   - every tensor has at most 2^31 - 1 elements, so int32 indices never wrap;
 *   - global_avgpool sums at most 2^24 positions (|T| <= 128 * H * W < 2^31).
 *
 * Right shifts of negative signed values are arithmetic (floor) on every
 * compiler this targets (GCC, Clang, arm-none-eabi-gcc); spec "Notation" needs that.
 */
#ifndef PROM_RUNTIME_H
#define PROM_RUNTIME_H

#include <stdint.h>

#if defined(__GNUC__)
#define PROM_NOINLINE __attribute__((noinline))
#else
#define PROM_NOINLINE
#endif

/* the model's rounding mode (spec "Requantization"): one for every requantization */
#define PROM_ROUND_SINGLE 0
#define PROM_ROUND_DOUBLE 1

/* conv2d (spec "conv2d") and depthwise_conv2d (spec "depthwise_conv2d"): NHWC, one image */
typedef struct {
    int32_t in_h, in_w, in_c;          /* input map */
    int32_t out_h, out_w, out_c;       /* output map; depthwise: out_c == in_c */
    int32_t kernel, stride, pad_top, pad_left;
    int32_t in_zero_point, weight_zero_point;
    int32_t out_zero_point, out_min, out_max, rounding;
    const int8_t *weights;             /* conv2d [out_c][k][k][in_c]; depthwise [k][k][c] */
    const int32_t *bias, *multiplier, *shift; /* [out_c] */
} prom_conv_params;

/* pointwise_ternary (spec "pointwise_ternary"): 1x1, stride 1, no padding */
typedef struct {
    int32_t pixels, in_c, out_c;
    int32_t out_zero_point, out_min, out_max, rounding;
    const uint8_t *packed;             /* [out_c * in_c] 2-bit codes, 4 per byte, first in the low bits:
                                          00 = 0, 01 = +1, 10 = -1 (docs/format.md), as in the .npz */
    const int32_t *folded_bias;        /* bias[o] - zx * sum_c t[o][c], folded by the generator */
    const int32_t *multiplier, *shift; /* [out_c] */
} prom_ternary_params;

/* fully_connected (spec "fully_connected") */
typedef struct {
    int32_t in_c, out_c;
    int32_t in_zero_point, weight_zero_point;
    int32_t out_zero_point, out_min, out_max, rounding;
    const int8_t *weights;             /* [out_c][in_c] */
    const int32_t *bias, *multiplier, *shift;
} prom_fc_params;

/* add (spec "add"): TFLite's ADD structure, elementwise */
typedef struct {
    int32_t count;                     /* elements of each input */
    int32_t a_zero_point, b_zero_point, left_shift;
    int32_t multiplier[3], shift[3];   /* a, b, output */
    int32_t out_zero_point, out_min, out_max, rounding;
} prom_add_params;

/* global_avgpool (spec "global_avgpool") */
typedef struct {
    int32_t h, w, c;
} prom_pool_params;

/* --- requantization (spec "Requantization"), promref/arith.py --- */

/* round(a * b / 2^31), ties towards +infinity; saturates a == b == INT32_MIN (SRDHM) */
int32_t prom_srdhm(int32_t a, int32_t b);
/* x / 2^exponent, ties away from zero; exponent in [0, 31] (RDBPOT) */
int32_t prom_rounding_divide_by_pot(int32_t x, int32_t exponent);
/* acc * M * 2^(shift - 31): "single" = one rounding half up; "double" = SRDHM then RDBPOT */
int32_t prom_scale_single(int32_t acc, int32_t multiplier, int32_t shift);
int32_t prom_scale_double(int32_t acc, int32_t multiplier, int32_t shift);
int32_t prom_scale(int32_t acc, int32_t multiplier, int32_t shift, int32_t rounding);
/* clamp(zero_point + scale(acc), lo, hi); the sum is taken in 64 bits (spec "Order of the final additions") */
int8_t prom_requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t zero_point, int32_t lo,
                       int32_t hi, int32_t rounding);

/* --- the layer kernels: x is the input tensor, y the output; they never overlap --- */

/* sum_{t[c] = +1} x[c] - sum_{t[c] = -1} x[c] over the cin codes starting at code index `first`:
 * additions and subtractions only (the multiplication-free core of PROM) */
int32_t prom_ternary_dot(const int8_t *x, const uint8_t *packed, uint32_t first, int32_t cin);
void prom_pointwise_ternary(const prom_ternary_params *p, const int8_t *x, int8_t *y);
void prom_conv2d(const prom_conv_params *p, const int8_t *x, int8_t *y);
void prom_depthwise_conv2d(const prom_conv_params *p, const int8_t *x, int8_t *y);
void prom_fully_connected(const prom_fc_params *p, const int8_t *x, int8_t *y);
void prom_add(const prom_add_params *p, const int8_t *a, const int8_t *b, int8_t *y);
void prom_global_avgpool(const prom_pool_params *p, const int8_t *x, int8_t *y);

#endif /* PROM_RUNTIME_H */
