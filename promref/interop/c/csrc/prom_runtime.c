/* prom_runtime.c - see prom_runtime.h.  Each function cites the docs/spec.md section it implements. */
#include "prom_runtime.h"

/* ------------------------------------------------------------ requantization */

/* spec "Rounding mode double", SRDHM: the nudge 1 - 2^30 for negative products and C's
 * truncating division send ties towards +infinity, as gemmlowp does */
int32_t prom_srdhm(int32_t a, int32_t b)
{
    int64_t ab, nudge;
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* spec "Rounding mode double", RDBPOT: x / 2^e with ties away from zero */
int32_t prom_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* spec "Rounding mode double": a positive shift scales acc first (exact: overflow rule 2) */
int32_t prom_scale_double(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    /* a multiplication, not <<: shifting a negative value left is undefined in C */
    const int32_t shifted = (int32_t)((int64_t)acc * ((int64_t)1 << left));
    return prom_rounding_divide_by_pot(prom_srdhm(shifted, multiplier), right);
}

/* spec "Rounding mode single": floor(acc * M / 2^n + 1/2), n = 31 - shift in [1, 62] */
int32_t prom_scale_single(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t total = 31 - shift;
    const int64_t product = (int64_t)acc * (int64_t)multiplier; /* |product| < 2^62 */
    return (int32_t)((product + ((int64_t)1 << (total - 1))) >> total);
}

int32_t prom_scale(int32_t acc, int32_t multiplier, int32_t shift, int32_t rounding)
{
    return rounding == PROM_ROUND_DOUBLE ? prom_scale_double(acc, multiplier, shift)
                                         : prom_scale_single(acc, multiplier, shift);
}

/* spec "Requantization" and "Order of the final additions": z_out + scale in 64 bits, then clamp.
 * Not inlined, so that the ternary kernel's object code holds no multiply (the test disassembles it). */
PROM_NOINLINE int8_t prom_requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t zero_point,
                                     int32_t lo, int32_t hi, int32_t rounding)
{
    int64_t v = (int64_t)prom_scale(acc, multiplier, shift, rounding) + zero_point;
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return (int8_t)v;
}

/* ------------------------------------------------------------ pointwise_ternary */

/* +v for code 01, -v for code 10, 0 for code 00, with masks: no multiply, no branch */
static inline int32_t ternary_pick(int32_t v, uint32_t code)
{
    const int32_t plus = -(int32_t)(code & 1u);
    const int32_t minus = -(int32_t)((code >> 1) & 1u);
    return (v & plus) - (v & minus);
}

/* spec "pointwise_ternary": P - N over one output channel's row of codes.  |partial sums| <=
 * 128 * cin, and the generator proves cin <= 2^24, so the int32 accumulator never wraps. */
PROM_NOINLINE int32_t prom_ternary_dot(const int8_t *x, const uint8_t *packed, uint32_t first, int32_t cin)
{
    const uint8_t *p = packed + (first >> 2);
    uint32_t sh = (first & 3u) << 1;
    int32_t acc = 0, c = 0;
    for (; sh != 0 && c < cin; c++) { /* a row that starts inside a byte (cin not a multiple of 4) */
        acc += ternary_pick(x[c], ((uint32_t)*p >> sh) & 3u);
        sh += 2;
        if (sh == 8) {
            sh = 0;
            p++;
        }
    }
    for (; c + 4 <= cin; c += 4, p++) { /* four codes per byte */
        const uint32_t b = *p;
        acc += ternary_pick(x[c], b & 3u) + ternary_pick(x[c + 1], (b >> 2) & 3u) +
               ternary_pick(x[c + 2], (b >> 4) & 3u) + ternary_pick(x[c + 3], b >> 6);
    }
    for (sh = 0; c < cin; c++, sh += 2) /* the row's tail */
        acc += ternary_pick(x[c], ((uint32_t)*p >> sh) & 3u);
    return acc;
}

/* spec "pointwise_ternary": acc = bias'[o] + P - N, then one requantization per output.
 * Pointers and code indices advance by addition, so this loop has no multiply either. */
PROM_NOINLINE void prom_pointwise_ternary(const prom_ternary_params *p, const int8_t *x, int8_t *y)
{
    int32_t pixel, o;
    for (pixel = 0; pixel < p->pixels; pixel++, x += p->in_c) {
        uint32_t first = 0;
        for (o = 0; o < p->out_c; o++, first += (uint32_t)p->in_c) {
            const int32_t acc = p->folded_bias[o] + prom_ternary_dot(x, p->packed, first, p->in_c);
            *y++ = prom_requantize(acc, p->multiplier[o], p->shift[o], p->out_zero_point, p->out_min,
                                   p->out_max, p->rounding);
        }
    }
}

/* ------------------------------------------------------------ int8 convolutions */

/* spec "conv2d": padding positions hold zx and add nothing, so they are skipped */
void prom_conv2d(const prom_conv_params *p, const int8_t *x, int8_t *y)
{
    const int32_t k = p->kernel, cin = p->in_c;
    int32_t i, j, o, a, b, c;
    for (i = 0; i < p->out_h; i++) {
        for (j = 0; j < p->out_w; j++) {
            const int32_t r0 = i * p->stride - p->pad_top, c0 = j * p->stride - p->pad_left;
            for (o = 0; o < p->out_c; o++) {
                const int8_t *w = p->weights + o * k * k * cin;
                int32_t acc = p->bias[o];
                for (a = 0; a < k; a++) {
                    const int32_t r = r0 + a;
                    if (r < 0 || r >= p->in_h)
                        continue;
                    for (b = 0; b < k; b++) {
                        const int32_t col = c0 + b;
                        const int8_t *px, *pw;
                        if (col < 0 || col >= p->in_w)
                            continue;  /* padding tap: no pointer is formed outside x (C99 6.5.6) */
                        px = x + (r * p->in_w + col) * cin;
                        pw = w + (a * k + b) * cin;
                        for (c = 0; c < cin; c++)
                            acc += ((int32_t)pw[c] - p->weight_zero_point) * ((int32_t)px[c] - p->in_zero_point);
                    }
                }
                *y++ = prom_requantize(acc, p->multiplier[o], p->shift[o], p->out_zero_point, p->out_min,
                                       p->out_max, p->rounding);
            }
        }
    }
}

/* spec "depthwise_conv2d": one k x k filter per channel, weights [k][k][c] */
void prom_depthwise_conv2d(const prom_conv_params *p, const int8_t *x, int8_t *y)
{
    const int32_t k = p->kernel, channels = p->out_c;
    int32_t i, j, ch, a, b;
    for (i = 0; i < p->out_h; i++) {
        for (j = 0; j < p->out_w; j++) {
            const int32_t r0 = i * p->stride - p->pad_top, c0 = j * p->stride - p->pad_left;
            for (ch = 0; ch < channels; ch++) {
                int32_t acc = p->bias[ch];
                for (a = 0; a < k; a++) {
                    const int32_t r = r0 + a;
                    if (r < 0 || r >= p->in_h)
                        continue;
                    for (b = 0; b < k; b++) {
                        const int32_t col = c0 + b;
                        if (col < 0 || col >= p->in_w)
                            continue;
                        acc += ((int32_t)p->weights[(a * k + b) * channels + ch] - p->weight_zero_point) *
                               ((int32_t)x[(r * p->in_w + col) * channels + ch] - p->in_zero_point);
                    }
                }
                *y++ = prom_requantize(acc, p->multiplier[ch], p->shift[ch], p->out_zero_point, p->out_min,
                                       p->out_max, p->rounding);
            }
        }
    }
}

/* ------------------------------------------------------------ classifier, add, pool */

/* spec "fully_connected" */
void prom_fully_connected(const prom_fc_params *p, const int8_t *x, int8_t *y)
{
    int32_t o, c;
    for (o = 0; o < p->out_c; o++) {
        const int8_t *w = p->weights + o * p->in_c;
        int32_t acc = p->bias[o];
        for (c = 0; c < p->in_c; c++)
            acc += ((int32_t)w[c] - p->weight_zero_point) * ((int32_t)x[c] - p->in_zero_point);
        y[o] = prom_requantize(acc, p->multiplier[o], p->shift[o], p->out_zero_point, p->out_min, p->out_max,
                               p->rounding);
    }
}

/* spec "add": da = (a - za) * 2^L (exact, L <= 23), both inputs rescaled, the sum requantized;
 * the sum ra + rb fits in int32 (overflow rule 5) */
void prom_add(const prom_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int32_t up = (int32_t)1 << p->left_shift;
    int32_t i;
    for (i = 0; i < p->count; i++) {
        const int32_t ra = prom_scale(((int32_t)a[i] - p->a_zero_point) * up, p->multiplier[0], p->shift[0],
                                      p->rounding);
        const int32_t rb = prom_scale(((int32_t)b[i] - p->b_zero_point) * up, p->multiplier[1], p->shift[1],
                                      p->rounding);
        y[i] = prom_requantize(ra + rb, p->multiplier[2], p->shift[2], p->out_zero_point, p->out_min, p->out_max,
                               p->rounding);
    }
}

/* spec "global_avgpool": mean of the raw int8 values, half away from zero (C truncating division) */
void prom_global_avgpool(const prom_pool_params *p, const int8_t *x, int8_t *y)
{
    const int32_t count = p->h * p->w;
    int32_t ch, k;
    for (ch = 0; ch < p->c; ch++) {
        const int8_t *px = x + ch;
        int32_t total = 0;
        for (k = 0; k < count; k++, px += p->c)
            total += *px;
        y[ch] = (int8_t)((total > 0 ? total + count / 2 : total - count / 2) / count);
    }
}
