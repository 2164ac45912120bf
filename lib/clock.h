/* SPDX-License-Identifier: MIT */
/* Monotonic time and the spin-wait hint, shared by the hardware layer, the
 * drivers and the tools. */
#ifndef MIC_LIB_CLOCK_H
#define MIC_LIB_CLOCK_H

#include <stdint.h>

/* Monotonic time in nanoseconds / milliseconds. */
uint64_t now_ns(void);
static inline uint64_t now_ms(void) { return now_ns() / 1000000u; }

/* Inside a busy-wait loop: lets the sibling hyperthread run and saves
 * power; no effect on other architectures. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

#endif
