// CPU features that __builtin_cpu_supports cannot name with every compiler
// llmkit is built with (x86 only; the callers check the architecture), and
// the cap a user can put on the kernel sets chosen at run time.
#pragma once

namespace llmkit::core {

// Kernel-set levels, in order.
enum class isa_level : int { generic = 0, avx2 = 1, avx512 = 2 };

// The highest kernel set the run-time dispatchers (attention, quantized
// matmul) may pick: the environment variable LLMKIT_MAX_CPU_ISA, read once,
// as "generic", "avx2" or "avx512" (any case); unset or anything else means
// no cap. Like oneDNN's ONEDNN_MAX_CPU_ISA: for comparing the kernel sets on
// one machine, or for reproducing another machine's bits.
isa_level max_cpu_isa() noexcept;

}  // namespace llmkit::core

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>

namespace llmkit::core {

// F16C (vcvtps2ph / vcvtph2ps). clang 14's __builtin_cpu_supports knows no
// "f16c", so this reads CPUID leaf 1, ECX bit 29.
inline bool cpu_has_f16c() noexcept {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    return (c & (1u << 29)) != 0;
}

// The family of an AMD CPU (CPUID leaf 1: the base family plus the extended
// family; 19h is Zen 3 and Zen 4, 1Ah Zen 5), 0 for any other vendor. For the
// kernel choices that depend on the core, not on its instruction set.
inline unsigned cpu_amd_family() noexcept {
    unsigned a = 0, b = 0, c = 0, d = 0;
    // "AuthenticAMD" in EBX, EDX, ECX
    if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u || d != 0x69746e65u || c != 0x444d4163u) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned base = (a >> 8) & 0xFu;
    return base == 0xFu ? base + ((a >> 20) & 0xFFu) : base;
}

}  // namespace llmkit::core
#endif
