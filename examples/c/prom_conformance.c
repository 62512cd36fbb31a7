/*
 * prom_conformance.c - a driver that speaks promref's conformance subprocess protocol
 * (docs/conformance.md) for two kernels of the runtime that `promref export c` generates:
 * promref/interop/c/csrc/prom_runtime.c, compiled in as it is (no copy of it lives here).
 *
 *   prom_conformance --supported-ops          prints "requantize pointwise_ternary"
 *   prom_conformance REQUEST.json OUT_DIR     runs one case
 *
 * It never parses JSON: it reads params.txt, the flat key=value twin of request.json
 * that the checker writes next to it.  Inputs are .npy files (the header is skipped,
 * its dtype checked); each output is written raw (little-endian) as OUT_DIR/<name>.bin.
 * Exit status: 0 done, 77 op not supported, 2 error (message on stderr).
 *
 * Compile with -DWRONG_ROUNDING for a deliberately broken variant (ties of negative
 * values rounded the wrong way in both modes): the conformance suite must catch it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom_runtime.h"

#define EXIT_UNSUPPORTED 77
#define MAX_PARAMS 512
#define MAX_LINE 8192
#define MAX_DIMS 8

static char *keys[MAX_PARAMS];
static char *values[MAX_PARAMS];
static int nparams;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "prom_conformance: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static char *copy_string(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    if (!out)
        die("out of memory", NULL);
    strcpy(out, s);
    return out;
}

/* params.txt: one key=value per line; '#' starts a comment line */
static void load_params(const char *path)
{
    char line[MAX_LINE];
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open", path);
    while (fgets(line, sizeof line, f)) {
        char *eq;
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        eq = strchr(line, '=');
        if (!eq || nparams == MAX_PARAMS)
            die("bad params line", line);
        *eq = '\0';
        keys[nparams] = copy_string(line);
        values[nparams] = copy_string(eq + 1);
        nparams++;
    }
    fclose(f);
}

static const char *param(const char *key)
{
    int i;
    for (i = 0; i < nparams; i++)
        if (strcmp(keys[i], key) == 0)
            return values[i];
    return NULL;
}

static const char *need(const char *key)
{
    const char *v = param(key);
    if (!v)
        die("missing parameter", key);
    return v;
}

static long need_int(const char *key)
{
    char *end;
    const char *text = need(key);
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0')
        die("not an integer", key);
    return v;
}

typedef struct {
    int ndims;
    long dims[MAX_DIMS];
    size_t count;
    void *data; /* int8_t * or int32_t * */
} tensor;

/* the index i of the input called name (input.i.name) */
static int input_index(const char *name)
{
    char key[64];
    long i, n = need_int("inputs");
    for (i = 0; i < n; i++) {
        sprintf(key, "input.%ld.name", i);
        if (strcmp(need(key), name) == 0)
            return (int)i;
    }
    die("request has no input", name);
    return -1;
}

static void parse_shape(const char *text, tensor *t)
{
    char *end;
    t->ndims = 0;
    t->count = 1;
    while (*text) {
        long d = strtol(text, &end, 10);
        if (end == text)
            break;
        if (t->ndims == MAX_DIMS || d < 0)
            die("bad shape", text);
        t->dims[t->ndims++] = d;
        t->count *= (size_t)d;
        text = end;
    }
}

/* Read an input tensor: .npy version 1 (uint16 header length) or 2/3 (uint32), little-endian.
 * dtype is "int8" or "int32"; the npy descr must match. */
static tensor read_input(const char *name, const char *dtype)
{
    char key[64];
    unsigned char head[12];
    unsigned long hlen;
    char *header;
    tensor t;
    size_t itemsize = strcmp(dtype, "int8") == 0 ? 1 : 4;
    const char *descr = itemsize == 1 ? "'descr': '|i1'" : "'descr': '<i4'";
    int i = input_index(name);
    unsigned char *raw;
    FILE *f;
    size_t k;

    sprintf(key, "input.%d.dtype", i);
    if (strcmp(need(key), dtype) != 0)
        die("unexpected dtype for input", name);
    sprintf(key, "input.%d.shape", i);
    parse_shape(need(key), &t);
    sprintf(key, "input.%d.file", i);
    f = fopen(need(key), "rb");
    if (!f)
        die("cannot open", need(key));
    if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0)
        die("not a .npy file", name);
    if (head[6] == 1) {
        hlen = (unsigned long)head[8] | (unsigned long)head[9] << 8;
    } else {
        if (fread(head + 10, 1, 2, f) != 2)
            die("truncated .npy header", name);
        hlen = (unsigned long)head[8] | (unsigned long)head[9] << 8 | (unsigned long)head[10] << 16 |
               (unsigned long)head[11] << 24;
    }
    header = calloc(hlen + 1, 1);
    if (!header || fread(header, 1, hlen, f) != hlen)
        die("truncated .npy header", name);
    if (!strstr(header, descr) || !strstr(header, "'fortran_order': False"))
        die("unexpected .npy dtype or order", header);
    free(header);
    raw = malloc(t.count * itemsize + 1);
    if (!raw || fread(raw, 1, t.count * itemsize, f) != t.count * itemsize)
        die("truncated .npy data", name);
    fclose(f);
    if (itemsize == 1) {
        t.data = raw;
    } else { /* assemble little-endian int32 byte by byte: correct on any host */
        int32_t *v = malloc(t.count * sizeof *v + 1);
        if (!v)
            die("out of memory", NULL);
        for (k = 0; k < t.count; k++) {
            uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 |
                         (uint32_t)raw[4 * k + 3] << 24;
            v[k] = (int32_t)u;
        }
        free(raw);
        t.data = v;
    }
    return t;
}

static void write_output(const char *out_dir, const char *name, const int8_t *y, size_t count)
{
    char path[4096];
    FILE *f;
    if (strlen(out_dir) + strlen(name) + 6 > sizeof path)
        die("path too long", out_dir);
    sprintf(path, "%s/%s.bin", out_dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(y, 1, count, f) != count || fclose(f) != 0)
        die("cannot write", path);
}

static int32_t rounding_mode(void)
{
    const char *r = need("rounding");
    if (strcmp(r, "single") == 0)
        return PROM_ROUND_SINGLE;
    if (strcmp(r, "double") == 0)
        return PROM_ROUND_DOUBLE;
    die("unknown rounding mode", r);
    return PROM_ROUND_SINGLE;
}

#ifdef WRONG_ROUNDING
/* BUG on purpose, for the suite to catch: ties of negative values go the wrong way in both
 * modes ("single": away from zero, as C's round() does; "double": RDBPOT rounds them up).
 * Everything else is the runtime's prom_requantize. */
static int8_t requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t zero_point, int32_t lo,
                         int32_t hi, int32_t rounding)
{
    int32_t scaled;
    int64_t v;
    if (rounding == PROM_ROUND_DOUBLE) {
        const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
        const int32_t x = prom_srdhm((int32_t)((int64_t)acc * ((int64_t)1 << left)), multiplier);
        const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
        scaled = (x >> right) + ((x & mask) > (mask >> 1) ? 1 : 0);
    } else {
        const int32_t total = 31 - shift;
        const int64_t product = (int64_t)acc * (int64_t)multiplier, round = (int64_t)1 << (total - 1);
        scaled = product < 0 ? (int32_t)-((-product + round) >> total) : (int32_t)((product + round) >> total);
    }
    v = (int64_t)scaled + zero_point;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}
#else
#define requantize prom_requantize
#endif

static int run_requantize(const char *out_dir)
{
    tensor acc = read_input("acc", "int32");
    tensor mult = read_input("multiplier", "int32");
    tensor shift = read_input("shift", "int32");
    const int32_t r = rounding_mode();
    const int32_t zp = (int32_t)need_int("out_zero_point");
    const int32_t lo = (int32_t)need_int("out_min"), hi = (int32_t)need_int("out_max");
    const size_t channels = mult.count;
    const int32_t *a = acc.data, *m = mult.data, *s = shift.data;
    int8_t *y = malloc(acc.count + 1);
    size_t i;
    if (!y || channels == 0 || shift.count != channels || acc.dims[acc.ndims - 1] != (long)channels)
        die("requantize: multiplier/shift must match the last axis of acc", NULL);
    for (i = 0; i < acc.count; i++)
        y[i] = requantize(a[i], m[i % channels], s[i % channels], zp, lo, hi, r);
    write_output(out_dir, "y", y, acc.count);
    return 0;
}

/* ternary weights {-1, 0, +1} -> 2-bit codes, 4 per byte, first weight in the low bits
 * (00 = 0, 01 = +1, 10 = -1): what the weights file and a generated library store */
static void pack_ternary(const int8_t *ternary, size_t count, uint8_t *packed)
{
    size_t i;
    memset(packed, 0, (count + 3) / 4);
    for (i = 0; i < count; i++) {
        const unsigned code = ternary[i] > 0 ? 1u : (ternary[i] < 0 ? 2u : 0u);
        packed[i >> 2] = (uint8_t)(packed[i >> 2] | (code << (2 * (i & 3))));
    }
}

static int run_pointwise_ternary(const char *out_dir)
{
    tensor x = read_input("x", "int8");
    tensor w = read_input("weights", "int8");
    tensor bias = read_input("bias", "int32");
    tensor mult = read_input("multiplier", "int32");
    tensor shift = read_input("shift", "int32");
    const int32_t r = rounding_mode();
    const int32_t zx = (int32_t)need_int("in_zero_point"), zp = (int32_t)need_int("out_zero_point");
    const int32_t lo = (int32_t)need_int("out_min"), hi = (int32_t)need_int("out_max");
    const int32_t cout = (int32_t)w.dims[0], cin = (int32_t)w.dims[1];
    const size_t pixels = x.count / (size_t)cin;
    const int32_t *b = bias.data, *m = mult.data, *s = shift.data;
    uint8_t *packed = malloc(w.count / 4 + 2);
    int32_t *folded = malloc((size_t)cout * sizeof *folded + 1);
    int8_t *ones = malloc((size_t)cin + 1), *y = malloc(pixels * (size_t)cout + 1);
    int32_t o;
    size_t i;
    if (w.ndims != 2 || x.dims[x.ndims - 1] != cin || bias.count != (size_t)cout || mult.count != (size_t)cout ||
        shift.count != (size_t)cout)
        die("pointwise_ternary: inconsistent shapes", NULL);
    if (!packed || !folded || !ones || !y)
        die("out of memory", NULL);
    for (i = 0; i < w.count; i++)
        if (((const int8_t *)w.data)[i] < -1 || ((const int8_t *)w.data)[i] > 1)
            die("pointwise_ternary: weights must be in {-1, 0, 1}", NULL);
    pack_ternary(w.data, w.count, packed);
    /* the generator folds the input zero point into the bias: bias[o] - zx * sum_c t[o][c], the sum
     * being the runtime's ternary dot product with an all-ones input */
    memset(ones, 1, (size_t)cin);
    for (o = 0; o < cout; o++)
        folded[o] = b[o] - zx * prom_ternary_dot(ones, packed, (uint32_t)(o * cin), cin);
#ifdef WRONG_ROUNDING /* the runtime's dot product, the broken requantization */
    for (i = 0; i < pixels; i++) {
        const int8_t *px = (const int8_t *)x.data + i * (size_t)cin;
        for (o = 0; o < cout; o++)
            y[i * (size_t)cout + (size_t)o] = requantize(folded[o] + prom_ternary_dot(px, packed, (uint32_t)(o * cin), cin),
                                                         m[o], s[o], zp, lo, hi, r);
    }
#else
    {
        const prom_ternary_params p = {(int32_t)pixels, cin, cout, zp, lo, hi, r, packed, folded, m, s};
        prom_pointwise_ternary(&p, x.data, y);
    }
#endif
    write_output(out_dir, "y", y, pixels * (size_t)cout);
    return 0;
}

int main(int argc, char **argv)
{
    char path[4096];
    const char *slash, *op;
    size_t dir_len;
    if (argc == 2 && strcmp(argv[1], "--supported-ops") == 0) {
        printf("requantize pointwise_ternary\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s REQUEST.json OUT_DIR | --supported-ops\n", argv[0]);
        return 2;
    }
    /* params.txt lies next to request.json */
    slash = strrchr(argv[1], '/');
    dir_len = slash ? (size_t)(slash - argv[1]) + 1 : 0;
    if (dir_len + 11 > sizeof path)
        die("path too long", argv[1]);
    memcpy(path, argv[1], dir_len);
    strcpy(path + dir_len, "params.txt");
    load_params(path);
    op = need("op");
    if (strcmp(op, "requantize") == 0)
        return run_requantize(argv[2]);
    if (strcmp(op, "pointwise_ternary") == 0)
        return run_pointwise_ternary(argv[2]);
    fprintf(stderr, "prom_conformance: op %s not supported\n", op);
    return EXIT_UNSUPPORTED;
}
