/*
 * prom_mcu.c - runs the generated library on a Cortex-M under QEMU, I/O by semihosting.
 *
 * Reads PROM_MCU_IN (default "images.bin": N images of PROM_INPUT_SIZE bytes), writes every
 * layer's output of every image, in execution order, to PROM_MCU_OUT (default "trace.bin"),
 * then prints "stack_bytes=S arena_bytes=A images=N".  The stack is painted at start and
 * its high-water mark measured at the end.
 */
#include <stdint.h>

#include "../prom_model.h"
#include "semihost.h"

#ifndef PROM_MCU_IN
#define PROM_MCU_IN "images.bin"
#endif
#ifndef PROM_MCU_OUT
#define PROM_MCU_OUT "trace.bin"
#endif
#define PAINT 0xA5A5A5A5u

extern uint32_t _sstack, _estack;
static union { uint32_t align; uint8_t bytes[PROM_ARENA_BYTES]; } arena;
static int8_t image[PROM_INPUT_SIZE];
static int8_t logits[PROM_OUTPUT_SIZE];
static int32_t out_handle;
static int failed;

static uint32_t length(const char *s)
{
    uint32_t n = 0;
    while (s[n])
        n++;
    return n;
}

static int32_t sh_open(const char *path, uint32_t mode)
{
    const uint32_t args[3] = {(uint32_t)path, mode, length(path)};
    return semihost(SH_OPEN, args);
}

static void write_layer(int32_t layer, const int8_t *output, uint32_t size, void *user)
{
    const uint32_t args[3] = {(uint32_t)out_handle, (uint32_t)output, size};
    (void)layer;
    (void)user;
    if (semihost(SH_WRITE, args) != 0) /* returns the bytes NOT written */
        failed = 1;
}

static void print_number(const char *label, uint32_t v)
{
    char text[48];
    char digits[12];
    uint32_t n = 0, i = 0, k;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    for (k = 0; label[k]; k++)
        text[i++] = label[k];
    while (n)
        text[i++] = digits[--n];
    text[i++] = ' ';
    text[i] = '\0';
    semihost(SH_WRITE0, text);
}

static void paint_stack(void)
{
    volatile uint32_t *p = &_sstack;
    uint32_t here = (uint32_t)&p;
    while ((uint32_t)p < here - 256u)
        *p++ = PAINT;
}

static uint32_t stack_used(void)
{
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == PAINT)
        p++;
    return (uint32_t)((const uint8_t *)&_estack - (const uint8_t *)p);
}

int main(void)
{
    int32_t in = sh_open(PROM_MCU_IN, SH_MODE_RB);
    int32_t total, images, n;
    paint_stack();
    out_handle = sh_open(PROM_MCU_OUT, SH_MODE_WB);
    if (in < 0 || out_handle < 0) {
        semihost(SH_WRITE0, "prom_mcu: cannot open " PROM_MCU_IN " or " PROM_MCU_OUT "\n");
        return 1;
    }
    total = semihost(SH_FLEN, &in);
    if (total < 0 || total % PROM_INPUT_SIZE != 0) {
        semihost(SH_WRITE0, "prom_mcu: input is not a whole number of images\n");
        return 1;
    }
    images = total / PROM_INPUT_SIZE;
    for (n = 0; n < images && !failed; n++) {
        const uint32_t args[3] = {(uint32_t)in, (uint32_t)image, PROM_INPUT_SIZE};
        if (semihost(SH_READ, args) != 0)
            failed = 1;
        else
            prom_run_traced(image, logits, arena.bytes, write_layer, 0);
    }
    semihost(SH_CLOSE, &in);
    semihost(SH_CLOSE, &out_handle);
    print_number("stack_bytes=", stack_used());
    print_number("arena_bytes=", PROM_ARENA_BYTES);
    print_number("images=", (uint32_t)n);
    semihost(SH_WRITE0, failed ? "FAILED\n" : "done\n");
    return failed;
}
