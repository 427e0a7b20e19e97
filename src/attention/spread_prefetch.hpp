// Prefetches paced over a decode kernel's work, shared by the AVX2 and AVX-512
// kernel sets. Plain x86 code (SSE's prefetch only), so it inlines into either
// set's functions.
#pragma once

#include <cstdint>
#include <xmmintrin.h>

#include "attention/kernels.hpp"

namespace llmkit::attention {

// Whether decode's paced prefetches go to L1 (T0) instead of L2 (T1): on AMD
// Zen 5 (family 1Ah), where T0 16 KiB ahead decoded a cache at batch 16 with
// 8k keys 1.05-1.06x faster than T1 in bf16, 1.06-1.11x in float32 and
// 1.06-1.12x in int8 (2-core EPYC VM, 1 and 2 threads, alternated runs; T1
// there was slower than no software prefetch at all for int8; its int8 decode
// asks half as far ahead, 1.01-1.10x more). Read once.
bool decode_prefetch_into_l1();

// The start of the 64-byte line p lies in.
inline const char *line_of(const char *p) {
    return reinterpret_cast<const char *>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63));
}

// Asks for the lines from p (64-byte aligned) up to stop, into L1 (T0) or L2
// (T1); leaves p past them.
inline void ask_lines(const char *&p, const char *stop, bool l1) {
    if (l1)
        for (; p < stop; p += 64) _mm_prefetch(p, _MM_HINT_T0);
    else
        for (; p < stop; p += 64) _mm_prefetch(p, _MM_HINT_T1);
}

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
        p = line_of(pf);
        end = pf + bytes;
        slice = ((end - p) / (steps > 0 ? steps : 1) + 63) & ~int64_t(63);
        l1 = decode_prefetch_into_l1();
    }
    void step() { ask_lines(p, end - p > slice ? p + slice : end, l1); }
    void rest() { ask_lines(p, end, l1); }
};

// spread_prefetch over several ranges in turn (the runs of rows a call over
// several blocks of a paged cache reads next): step() asks for the next slice
// of their lines, `steps` slices in all.
struct ranges_prefetch {
    const byte_range *r = nullptr;
    int n = 0, i = -1;
    const char *p = nullptr, *end = nullptr;
    int64_t slice = 0;
    bool l1 = false;
    ranges_prefetch(const byte_range *ranges, int count, int64_t steps) : r(ranges), n(count) {
        int64_t total = 0;
        for (int k = 0; k < n; ++k) total += r[k].bytes > 0 ? r[k].bytes : 0;
        slice = (total / (steps > 0 ? steps : 1) + 63) & ~int64_t(63);
        l1 = decode_prefetch_into_l1();
        next();
    }
    // Moves to the next range that has bytes (p = end = null past the last).
    void next() {
        p = end = nullptr;
        while (++i < n)
            if (r[i].p && r[i].bytes > 0) {
                p = line_of(r[i].p);
                end = r[i].p + r[i].bytes;
                return;
            }
    }
    // Asks for up to `budget` bytes of lines, across ranges.
    void ask(int64_t budget) {
        while (p && budget > 0) {
            const char *from = p, *stop = end - p > budget ? p + budget : end;
            ask_lines(p, stop, l1);
            budget -= p - from;
            if (p >= end) next();
        }
    }
    void step() { ask(slice); }
    void rest() { ask(INT64_MAX); }
};

// Two ranges taken as one stream (a decode call's own rows, front to back,
// then the rows read after the call, [next, next + next_bytes)), asked for
// `ahead` bytes past the position the call has read up to (upto()). The
// first `ahead` bytes count as asked for already: the call before ran its
// own stream into them.
struct stream_prefetch {
    const char *a = nullptr, *b = nullptr;
    int64_t na = 0, nb = 0, ahead = 0, asked = 0;
    bool l1 = false;
    stream_prefetch(const char *own, int64_t own_bytes, const char *next, int64_t next_bytes, int64_t ahead_bytes)
        : a(own), b(next), na(own_bytes), nb(next && next_bytes > 0 ? next_bytes : 0), ahead(ahead_bytes),
          asked(ahead_bytes < own_bytes ? ahead_bytes : own_bytes), l1(decode_prefetch_into_l1()) {}
    // The call has read `done` bytes of its own rows (in stream order).
    void upto(int64_t done) {
        int64_t pos = done + ahead;
        if (pos > na + nb) pos = na + nb;
        if (pos <= asked) return;
        if (asked < na) {
            const char *p = line_of(a + asked);
            ask_lines(p, a + (pos < na ? pos : na), l1);
        }
        if (pos > na) {
            const char *p = line_of(b + (asked > na ? asked - na : 0));
            ask_lines(p, b + (pos - na), l1);
        }
        asked = pos;
    }
};

}  // namespace llmkit::attention
