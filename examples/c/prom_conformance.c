/*
 * prom_conformance.c - a driver that speaks promref's conformance subprocess protocol
 * (docs/conformance.md) for the kernels in prom_kernels.c.
 *
 *   prom_conformance --supported-ops          prints "requantize pointwise_ternary"
 *   prom_conformance REQUEST.json OUT_DIR     runs one case
 *
 * It never parses JSON: it reads params.txt, the flat key=value twin of request.json
 * that the checker writes next to it.  Inputs are .npy files (the header is skipped,
 * its dtype checked); each output is written raw (little-endian) as OUT_DIR/<name>.bin.
 * Exit status: 0 done, 77 op not supported, 2 error (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom_kernels.h"

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

static prom_rounding rounding_mode(void)
{
    const char *r = need("rounding");
    if (strcmp(r, "single") == 0)
        return PROM_ROUND_SINGLE;
    if (strcmp(r, "double") == 0)
        return PROM_ROUND_DOUBLE;
    die("unknown rounding mode", r);
    return PROM_ROUND_SINGLE;
}

static int run_requantize(const char *out_dir)
{
    tensor acc = read_input("acc", "int32");
    tensor mult = read_input("multiplier", "int32");
    tensor shift = read_input("shift", "int32");
    prom_rounding r = rounding_mode();
    const int32_t zp = (int32_t)need_int("out_zero_point");
    const int32_t lo = (int32_t)need_int("out_min"), hi = (int32_t)need_int("out_max");
    const size_t channels = mult.count;
    const int32_t *a = acc.data, *m = mult.data, *s = shift.data;
    int8_t *y = malloc(acc.count + 1);
    size_t i;
    if (!y || channels == 0 || shift.count != channels || acc.dims[acc.ndims - 1] != (long)channels)
        die("requantize: multiplier/shift must match the last axis of acc", NULL);
    for (i = 0; i < acc.count; i++)
        y[i] = prom_requantize(a[i], m[i % channels], (int)s[i % channels], zp, lo, hi, r);
    write_output(out_dir, "y", y, acc.count);
    return 0;
}

static int run_pointwise_ternary(const char *out_dir)
{
    tensor x = read_input("x", "int8");
    tensor w = read_input("weights", "int8");
    tensor bias = read_input("bias", "int32");
    tensor mult = read_input("multiplier", "int32");
    tensor shift = read_input("shift", "int32");
    prom_rounding r = rounding_mode();
    const int32_t zx = (int32_t)need_int("in_zero_point"), zp = (int32_t)need_int("out_zero_point");
    const int32_t lo = (int32_t)need_int("out_min"), hi = (int32_t)need_int("out_max");
    const int cout = (int)w.dims[0], cin = (int)w.dims[1];
    const size_t pixels = x.count / (size_t)cin;
    const int8_t *t = w.data;
    uint8_t *packed = malloc(w.count / 4 + 2);
    int32_t *folded = malloc((size_t)cout * sizeof *folded + 1);
    int8_t *y = malloc(pixels * (size_t)cout + 1);
    size_t i;
    if (w.ndims != 2 || x.dims[x.ndims - 1] != cin || bias.count != (size_t)cout || mult.count != (size_t)cout ||
        shift.count != (size_t)cout)
        die("pointwise_ternary: inconsistent shapes", NULL);
    if (!packed || !folded || !y)
        die("out of memory", NULL);
    for (i = 0; i < w.count; i++)
        if (t[i] < -1 || t[i] > 1)
            die("pointwise_ternary: weights must be in {-1, 0, 1}", NULL);
    prom_pack_ternary(t, w.count, packed); /* what a deployed model would store */
    prom_fold_bias(bias.data, packed, cout, cin, zx, folded);
    prom_pointwise_ternary(x.data, pixels, cin, packed, cout, folded, mult.data, shift.data, zp, lo, hi, r, y);
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
