// CPU features that __builtin_cpu_supports cannot name with every compiler
// llmkit is built with (x86 only; the callers check the architecture).
#pragma once

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

}  // namespace llmkit::core
#endif
