/* startup.c - minimal Cortex-M reset code for the MPS2 boards under QEMU: vector table,
 * .data copied from flash, .bss zeroed, main(), then a semihosting exit. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

static void sh_exit(uint32_t reason)
{
    semihost(SH_EXIT, (const void *)reason); /* AArch32: the reason itself, not a pointer */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst;
    for (dst = &_sdata; dst < &_edata;)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    sh_exit(main() == 0 ? SH_EXIT_OK : SH_EXIT_ERROR);
}

void Fault_Handler(void)
{
    semihost(SH_WRITE0, "prom_mcu: fault\n");
    sh_exit(SH_EXIT_ERROR);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
