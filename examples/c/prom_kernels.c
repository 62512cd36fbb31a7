/* prom_kernels.c - see prom_kernels.h.  Right shifts of negative signed values are
 * arithmetic on every compiler this targets (GCC, Clang, arm-none-eabi-gcc, MSVC). */
#include "prom_kernels.h"

int32_t prom_srdhm(int32_t a, int32_t b)
{
    int64_t ab, nudge;
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C division truncates towards zero: with the nudge, ties go towards +infinity */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t prom_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
#ifdef WRONG_ROUNDING
    const int32_t threshold = mask >> 1; /* BUG on purpose: negative ties round up, not away from zero */
#else
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
#endif
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t prom_scale_double(int32_t acc, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    /* precondition: acc * 2^left fits in int32 */
    const int32_t shifted = (int32_t)((int64_t)acc * ((int64_t)1 << left));
    return prom_rounding_divide_by_pot(prom_srdhm(shifted, multiplier), right);
}

int32_t prom_scale_single(int32_t acc, int32_t multiplier, int shift)
{
    const int total = 31 - shift; /* 1..62 */
    const int64_t product = (int64_t)acc * (int64_t)multiplier; /* |product| < 2^62 */
    const int64_t round = (int64_t)1 << (total - 1);
#ifdef WRONG_ROUNDING
    if (product < 0) /* BUG on purpose: ties away from zero, as C's round() does */
        return (int32_t)-((-product + round) >> total);
#endif
    return (int32_t)((product + round) >> total);
}

int8_t prom_requantize(int32_t acc, int32_t multiplier, int shift, int32_t zero_point,
                       int32_t qmin, int32_t qmax, prom_rounding rounding)
{
    const int32_t scaled = rounding == PROM_ROUND_DOUBLE ? prom_scale_double(acc, multiplier, shift)
                                                         : prom_scale_single(acc, multiplier, shift);
    int64_t v = (int64_t)scaled + zero_point;
    if (v < qmin)
        v = qmin;
    if (v > qmax)
        v = qmax;
    return (int8_t)v;
}

void prom_pack_ternary(const int8_t *ternary, size_t count, uint8_t *packed)
{
    size_t i;
    for (i = 0; i < (count + 3) / 4; i++)
        packed[i] = 0;
    for (i = 0; i < count; i++) {
        const unsigned code = ternary[i] > 0 ? 1u : (ternary[i] < 0 ? 2u : 0u);
        packed[i >> 2] = (uint8_t)(packed[i >> 2] | (code << (2 * (i & 3))));
    }
}

static unsigned code_at(const uint8_t *packed, size_t i)
{
    return (packed[i >> 2] >> (2 * (i & 3))) & 3u;
}

void prom_fold_bias(const int32_t *bias, const uint8_t *packed, int cout, int cin, int32_t in_zero_point,
                    int32_t *folded)
{
    int o, c;
    for (o = 0; o < cout; o++) {
        int32_t sum = 0;
        for (c = 0; c < cin; c++) {
            const unsigned code = code_at(packed, (size_t)o * (size_t)cin + (size_t)c);
            sum += code == 1u ? 1 : (code == 2u ? -1 : 0);
        }
        folded[o] = bias[o] - in_zero_point * sum;
    }
}

void prom_pointwise_ternary(const int8_t *x, size_t pixels, int cin, const uint8_t *packed, int cout,
                            const int32_t *folded_bias, const int32_t *multiplier, const int32_t *shift,
                            int32_t out_zero_point, int32_t out_min, int32_t out_max, prom_rounding rounding,
                            int8_t *y)
{
    size_t p;
    int o, c;
    for (p = 0; p < pixels; p++) {
        const int8_t *px = x + p * (size_t)cin;
        for (o = 0; o < cout; o++) {
            int32_t acc = folded_bias[o]; /* int32 accumulator: additions and subtractions only */
            const size_t base = (size_t)o * (size_t)cin;
            for (c = 0; c < cin; c++) {
                const unsigned code = code_at(packed, base + (size_t)c);
                if (code == 1u)
                    acc += px[c];
                else if (code == 2u)
                    acc -= px[c];
            }
            y[p * (size_t)cout + (size_t)o] =
                prom_requantize(acc, multiplier[o], shift[o], out_zero_point, out_min, out_max, rounding);
        }
    }
}
