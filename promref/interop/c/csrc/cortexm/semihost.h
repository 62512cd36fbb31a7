/* semihost.h - the few ARM semihosting calls the Cortex-M driver needs (no newlib):
 * "bkpt 0xab" with the operation in r0 and a pointer to its arguments in r1;
 * QEMU runs them on the host with -semihosting-config enable=on,target=native. */
#ifndef PROM_SEMIHOST_H
#define PROM_SEMIHOST_H
#include <stdint.h>

#define SH_OPEN 0x01
#define SH_CLOSE 0x02
#define SH_WRITE0 0x04
#define SH_WRITE 0x05
#define SH_READ 0x06
#define SH_FLEN 0x0C
#define SH_EXIT 0x18
#define SH_MODE_RB 1u    /* fopen modes: "rb" */
#define SH_MODE_WB 5u    /* "wb" */
#define SH_EXIT_OK 0x20026u    /* ADP_Stopped_ApplicationExit: QEMU exits 0 */
#define SH_EXIT_ERROR 0x20023u /* ADP_Stopped_RunTimeErrorUnknown: QEMU exits 1 */

static inline int32_t semihost(uint32_t op, const void *args)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

#endif
