// Prefetches paced over a decode kernel's work, shared by the AVX2 and AVX-512
// kernel sets. Plain x86 code (SSE's prefetch only), so it inlines into either
// set's functions.
#pragma once

#include <cstdint>
#include <xmmintrin.h>

namespace llmkit::attention {

// Whether decode's paced prefetches go to L1 (T0) instead of L2 (T1): on AMD
// Zen 5 (family 1Ah), where T0 16 KiB ahead decoded a cache at batch 16 with
// 8k keys 1.05-1.06x faster than T1 in bf16, 1.06-1.11x in float32 and
// 1.06-1.12x in int8 (2-core EPYC VM, 1 and 2 threads, alternated runs; T1
// there was slower than no software prefetch at all for int8; its int8 decode
// asks half as far ahead, 1.01-1.10x more). Read once.
bool decode_prefetch_into_l1();

// Asks for the cache lines of [p, p + bytes) a slice per step(), `steps`
// slices in all: a decode kernel calls step() once per block of its work, so
// the rows it reads next are on their way while it computes, a few lines at a
// time (a burst of a whole run of rows would fill the core's miss buffers and
// stall it instead).
//
// The lines go to L2 (T1), not L1: L2 can hold many more lines in flight, and
// a decode that keeps ~16 KiB on their way reads 1.3-1.5x faster than one that
// keeps 4 KiB on their way to L1 (B = 16, 8k context, 2-core Zen 4: fp32 at 2
// threads 22.9 -> 31-39 GB/s; bf16 at 1 thread 11-12 -> 15-17 GB/s); into L1,
// more than 4 KiB ahead only evicts the rows being read. Zen 5 is the
// exception (decode_prefetch_into_l1()).
struct spread_prefetch {
    const char *p = nullptr, *end = nullptr;
    int64_t slice = 0;
    bool l1 = false;
    spread_prefetch(const char *pf, int64_t bytes, int64_t steps) {
        if (!pf || bytes <= 0) return;
        p = reinterpret_cast<const char *>(reinterpret_cast<uintptr_t>(pf) & ~uintptr_t(63));
        end = pf + bytes;
        slice = ((end - p) / (steps > 0 ? steps : 1) + 63) & ~int64_t(63);
        l1 = decode_prefetch_into_l1();
    }
    void step() {
        const char *stop = end - p > slice ? p + slice : end;
        if (l1)
            for (; p < stop; p += 64) _mm_prefetch(p, _MM_HINT_T0);
        else
            for (; p < stop; p += 64) _mm_prefetch(p, _MM_HINT_T1);
    }
    void rest() {
        if (l1)
            for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T0);
        else
            for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T1);
    }
};

}  // namespace llmkit::attention
