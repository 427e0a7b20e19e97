// isa_rates [millions of iterations]: how fast this core runs the 512-bit
// instructions the attention and quantization kernels are built from, so that
// what the docs say bounds a kernel ("two vpdpwssd per cycle", "vdpbf16ps one
// every 2.2 cycles") can be checked on any machine.
//
// Rate: 14 independent chains of one instruction (more than its latency
// times its issue rate, so the ports are the limit), ns per instruction.
// Latency: one dependent chain, ns per instruction. Cycles are counted on
// the clock that vfmadd231ps's latency gives, taken as 4 cycles (as on every
// Intel core since Skylake and on Zen 4), so the turbo clock of the moment
// needs no counter.
//
// x86-64 with GCC or Clang only (AT&T inline assembly); instructions the CPU
// lacks are reported as such and not run.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

namespace {

double seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Rate: fourteen independent destinations (zmm0-zmm13), sources zmm14 and
// zmm15 (never written, so nothing chains through them). Latency: the same
// instruction twelve times on zmm0, whose result is the next one's input
// (through the accumulator, or a source where there is none). AT&T operand
// order: "src2, src1, dst".
#define LLMKIT_ISA_RATE_KERNELS(X)                                                                         \
    X(vfmadd231ps, "vfmadd231ps %%zmm14, %%zmm15, %%zmm", "vfmadd231ps %%zmm14, %%zmm15, %%zmm0", "avx512f") \
    X(vpdpwssd, "vpdpwssd %%zmm14, %%zmm15, %%zmm", "vpdpwssd %%zmm14, %%zmm15, %%zmm0", "avx512vnni")     \
    X(vpdpbusd, "vpdpbusd %%zmm14, %%zmm15, %%zmm", "vpdpbusd %%zmm14, %%zmm15, %%zmm0", "avx512vnni")     \
    X(vdpbf16ps, "vdpbf16ps %%zmm14, %%zmm15, %%zmm", "vdpbf16ps %%zmm14, %%zmm15, %%zmm0", "avx512bf16")  \
    X(vpmaddwd, "vpmaddwd %%zmm14, %%zmm15, %%zmm", "vpmaddwd %%zmm14, %%zmm0, %%zmm0", "avx512bw")        \
    X(vpunpcklwd, "vpunpcklwd %%zmm14, %%zmm15, %%zmm", "vpunpcklwd %%zmm14, %%zmm0, %%zmm0", "avx512bw")  \
    X(vpslld, "vpslld $16, %%zmm15, %%zmm", "vpslld $16, %%zmm0, %%zmm0", "avx512f")                       \
    X(vpmovsxbw, "vpmovsxbw %%ymm15, %%zmm", "vpmovsxbw %%ymm0, %%zmm0", "avx512bw")

#define LLMKIT_REG(op, r) op #r "\n\t"
#define LLMKIT_FOURTEEN(op)                                                                                \
    LLMKIT_REG(op, 0) LLMKIT_REG(op, 1) LLMKIT_REG(op, 2) LLMKIT_REG(op, 3) LLMKIT_REG(op, 4)             \
    LLMKIT_REG(op, 5) LLMKIT_REG(op, 6) LLMKIT_REG(op, 7) LLMKIT_REG(op, 8) LLMKIT_REG(op, 9)             \
    LLMKIT_REG(op, 10) LLMKIT_REG(op, 11) LLMKIT_REG(op, 12) LLMKIT_REG(op, 13)
#define LLMKIT_ONE(op) op "\n\t"
#define LLMKIT_CHAIN(op)                                                                                   \
    LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op)             \
    LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op) LLMKIT_ONE(op)
#define LLMKIT_CLOBBERS \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"

// rate_<name>(n) and latency_<name>(n): ns per instruction over n blocks of
// 14 and 12 instructions; has_<name>(): whether the CPU has the instruction.
#define LLMKIT_DEFINE(name, op, chain, isa)                                                   \
    double rate_##name(long n) {                                                              \
        const double t = seconds();                                                           \
        for (long k = 0; k < n; ++k) __asm__ volatile(LLMKIT_FOURTEEN(op)::: LLMKIT_CLOBBERS); \
        return (seconds() - t) / (double(n) * 14) * 1e9;                                      \
    }                                                                                         \
    double latency_##name(long n) {                                                           \
        const double t = seconds();                                                           \
        for (long k = 0; k < n; ++k) __asm__ volatile(LLMKIT_CHAIN(chain)::: "xmm0");         \
        return (seconds() - t) / (double(n) * 12) * 1e9;                                      \
    }                                                                                         \
    bool has_##name() { return __builtin_cpu_supports(isa); }
LLMKIT_ISA_RATE_KERNELS(LLMKIT_DEFINE)

struct row {
    const char *name, *isa;
    double (*rate)(long), (*latency)(long);
    bool (*has)();
};
#define LLMKIT_ROW(name, op, chain, isa) {#name, isa, rate_##name, latency_##name, has_##name},
const row k_rows[] = {LLMKIT_ISA_RATE_KERNELS(LLMKIT_ROW)};

}  // namespace

int main(int argc, char **argv) {
    const double millions = argc > 1 ? std::atof(argv[1]) : 2.0;
    if (!(millions > 0 && millions <= 1e5)) {
        std::fprintf(stderr, "usage: %s [millions of instructions per measurement, > 0 and <= 100000]\n", argv[0]);
        return 2;
    }
    const long n = long(millions * 1e6 / 14) + 1;
    __builtin_cpu_init();
    if (!k_rows[0].has()) {  // vfmadd231ps: AVX-512F
        std::printf("isa_rates: this CPU has no AVX-512; nothing to measure\n");
        return 0;
    }
    // Best of three runs each: the first also brings the core to its AVX-512 clock.
    const auto best = [&](double (*f)(long)) {
        double b = f(n);
        for (int r = 0; r < 2; ++r) {
            const double t = f(n);
            if (t < b) b = t;
        }
        return b;
    };
    const double fma_rate = best(k_rows[0].rate), fma_latency = best(k_rows[0].latency);
    // Every core we know runs vfmadd231ps with a latency of 4 cycles: the
    // clock the cycle columns assume.
    const double ns_per_cycle = fma_latency / 4;
    std::printf("clock from vfmadd231ps's latency (4 cycles): %.2f GHz\n", 1 / ns_per_cycle);
    std::printf("%-12s %-11s %12s %12s %12s %14s\n", "instruction", "needs", "ns/op (rate)", "ops/cycle",
                "ns (latency)", "latency cycles");
    for (const row &r : k_rows) {
        if (!r.has()) {
            std::printf("%-12s %-11s %12s\n", r.name, r.isa, "not on this CPU");
            continue;
        }
        const double rate = r.rate == k_rows[0].rate ? fma_rate : best(r.rate);
        const double latency = r.latency == k_rows[0].latency ? fma_latency : best(r.latency);
        std::printf("%-12s %-11s %12.3f %12.2f %12.3f %14.1f\n", r.name, r.isa, rate, ns_per_cycle / rate, latency,
                    latency / ns_per_cycle);
    }
    std::printf("isa_rates: done\n");
    return 0;
}

#else

int main() {
    std::printf("isa_rates: x86-64 with GCC or Clang only; nothing to measure\n");
    return 0;
}

#endif
