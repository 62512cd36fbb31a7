/*
 * prom_host.c - a host driver for the generated library (not part of the library: it uses stdio).
 *
 *   prom_host IMAGES.bin OUT.bin [trace]
 *
 * IMAGES.bin holds N int8 images of PROM_INPUT_SIZE bytes each (HWC, pixel - 128).
 * For each image OUT.bin gets the PROM_OUTPUT_SIZE int8 logits, or with "trace"
 * every layer's int8 output in execution order (prom_layer_sizes[] bytes each).
 */
#include <stdio.h>
#include <string.h>

#include "../prom_model.h"

static union { uint32_t align; uint8_t bytes[PROM_ARENA_BYTES]; } arena; /* the one static arena */
static int8_t image[PROM_INPUT_SIZE];
static int8_t logits[PROM_OUTPUT_SIZE];

static void write_layer(int32_t layer, const int8_t *output, uint32_t size, void *user)
{
    (void)layer;
    if (fwrite(output, 1, size, (FILE *)user) != size) {
        fprintf(stderr, "prom_host: write failed\n");
        fclose((FILE *)user);
    }
}

int main(int argc, char **argv)
{
    FILE *in, *out;
    int trace = argc == 4 && strcmp(argv[3], "trace") == 0;
    size_t got;
    if (argc != 3 && !trace) {
        fprintf(stderr, "usage: %s IMAGES.bin OUT.bin [trace]\n", argv[0]);
        return 2;
    }
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "prom_host: cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    while ((got = fread(image, 1, sizeof image, in)) == sizeof image) {
        if (trace) {
            prom_run_traced(image, logits, arena.bytes, write_layer, out);
        } else {
            prom_run(image, logits, arena.bytes);
            if (fwrite(logits, 1, sizeof logits, out) != sizeof logits)
                return 2;
        }
    }
    if (got != 0 || ferror(in)) {
        fprintf(stderr, "prom_host: %s is not a whole number of %d-byte images\n", argv[1], PROM_INPUT_SIZE);
        return 2;
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : 2;
}
