// Shared by the libFuzzer harnesses that drive the C API with tensors
// (fuzz_attention, fuzz_sampling): the input read as a script of choices,
// host tensors over heap buffers of exactly the bytes their shapes and
// strides reach (so ASan sees any access past them), and the checks every
// call's status must pass.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "llmkit/llmkit.h"

namespace llmkit_fuzz {


// Reads the input in order; zeros once it runs out (so the harnesses make 0
// the well-formed choice).
struct script {
    const uint8_t *p;
    size_t n, i = 0;
    uint8_t u8() { return i < n ? p[i++] : 0; }
    uint32_t u16() { return u8() | uint32_t(u8()) << 8; }
    bool bit() { return u8() & 1; }
    int pick(int k) { return u8() % k; }
};

[[noreturn]] inline void fail(const char *what) {
    std::fprintf(stderr, "fuzz: %s\n", what);
    std::abort();
}

// A failed call: a documented status and a message naming the problem.
inline void check_status(llmkit_status s) {
#ifdef FUZZ_VERBOSE
    std::fprintf(stderr, "status %d %s\n", int(s), s == LLMKIT_OK ? "" : llmkit_last_error_message());
#endif
    if (s == LLMKIT_OK) return;
    if (s < LLMKIT_ERROR_CANCELLED || s > LLMKIT_ERROR_INVALID_ARGUMENT) fail("undocumented status");
    if (s == LLMKIT_ERROR_INTERNAL) {
        std::fprintf(stderr, "%s\n", llmkit_last_error_message());
        fail("internal error");
    }
    const char *m = llmkit_last_error_message();
    if (!m || !*m) fail("error without a message");
}

inline uint16_t to_half_bits(float f, bool bf16) {
    if (bf16) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        return uint16_t(u >> 16);
    }
    // Small finite values only: sign, a biased exponent in 5 bits, 10 bits of mantissa.
    const uint16_t sign = f < 0 ? 0x8000 : 0;
    const float a = std::fabs(f);
    if (a < 6.1e-5f) return sign;
    int e;
    const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    return uint16_t(sign | uint16_t((e + 14) << 10) | uint16_t(int((m * 2 - 1) * 1024) & 0x3FF));
}

// A tensor over its own heap buffer: the buffer spans exactly the elements
// the shape and strides reach (byte_offset places the lowest one at the
// buffer's start, as negative strides need).
struct fuzz_tensor {
    int64_t shape[8] = {}, strides[8] = {}, compact[8] = {};
    llmkit_tensor t{};
    std::unique_ptr<uint8_t[]> buf;
    size_t bytes = 0;
    int elem = 4;
    int kind_index = 0;     // the kind below
    bool poisoned = false;  // holds a NaN or an infinity that some index reaches
    bool hostile = false;   // strides whose byte offsets overflow int64: must be refused unread
};

enum class kind { f32, bf16, f16, i32, i64, f64, i8 };

inline llmkit_dtype dtype_of(kind k) {
    switch (k) {
    case kind::f32: return LLMKIT_DTYPE_F32;
    case kind::bf16: return LLMKIT_DTYPE_BF16;
    case kind::f16: return LLMKIT_DTYPE_F16;
    case kind::i32: return LLMKIT_DTYPE_I32;
    case kind::i64: return LLMKIT_DTYPE_I64;
    case kind::i8: return llmkit_dtype{LLMKIT_DTYPE_INT, 8, 1};
    default: return llmkit_dtype{LLMKIT_DTYPE_FLOAT, 64, 1};
    }
}

inline int elem_bytes(kind k) {
    return k == kind::i8 ? 1 : k == kind::bf16 || k == kind::f16 ? 2 : k == kind::i64 || k == kind::f64 ? 8 : 4;
}

template <typename T>
T load(const uint8_t *p) {
    T x;
    std::memcpy(&x, p, sizeof x);
    return x;
}

// The element at byte b of f's buffer, as a double.
inline double read_at(const fuzz_tensor &f, size_t b) {
    const uint8_t *p = f.buf.get() + b;
    switch (kind(f.kind_index)) {
    case kind::f32: return load<float>(p);
    case kind::i32: return load<int32_t>(p);
    case kind::i64: return double(load<int64_t>(p));
    case kind::i8: return load<int8_t>(p);
    case kind::f64: return load<double>(p);
    case kind::bf16: {
        const uint32_t u = uint32_t(load<uint16_t>(p)) << 16;  // a bf16 is a float32's high half
        return load<float>(reinterpret_cast<const uint8_t *>(&u));
    }
    default: {
        const uint16_t h = load<uint16_t>(p);
        const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
        const double mag = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
        return h & 0x8000 ? -mag : mag;
    }
    }
}

// The element at index idx (f.t.ndim entries) as a double.
inline double value_at(const fuzz_tensor &f, const int64_t *idx) {
    const int64_t *st = f.t.strides ? f.strides : f.compact;
    int64_t off = 0;
    for (int d = 0; d < f.t.ndim; ++d) off += idx[d] * st[d];
    return read_at(f, size_t(int64_t(f.t.byte_offset) + off * f.elem));
}

inline constexpr int64_t k_max_elems = 1 << 16;

// Fills t with `dims` (rank = dims.size()), the input's strides or compact
// ones, and values: floats finite in [-3.9, 3.9] (one NaN or infinity when
// poison), int32 and int64 in [0, int_hi), int8 anything. False when the
// span is too big to allocate here (the caller then skips the call).
inline bool make_tensor(script &s, fuzz_tensor &f, const std::vector<int64_t> &dims, kind k, bool poison,
                        int64_t int_hi = 1000) {
    const int nd = int(dims.size());
    f.elem = elem_bytes(k);
    f.kind_index = int(k);
    f.t.device = LLMKIT_DEVICE_HOST;
    f.t.ndim = nd;
    f.t.dtype = dtype_of(k);
    f.t.shape = f.shape;
    const bool custom = s.bit();
    int64_t compact = 1;
    for (int d = nd - 1; d >= 0; --d) {
        f.shape[d] = dims[size_t(d)];
        f.strides[d] = f.compact[d] = compact;
        compact *= dims[size_t(d)] > 0 ? dims[size_t(d)] : 1;
    }
    if (custom) {
        // Strides from the input: small multiples of the compact ones, zero,
        // negative, or a stride of 2 on the last dim (unsupported).
        for (int d = 0; d < nd; ++d) {
            switch (s.pick(8)) {
            case 0: f.strides[d] = 0; break;
            case 1: f.strides[d] = -f.strides[d]; break;
            case 2: f.strides[d] *= 2; break;
            case 3: f.strides[d] = f.strides[d] + 1; break;
            case 4:
                // (extent - 1) * elem >= 2 steps of +-(2^63 - 1) bytes: past
                // any int64 offset (one step of a 1-byte element is not).
                if (s.pick(8) == 7 && (f.shape[d] - 1) * f.elem >= 2) {
                    f.strides[d] = s.bit() ? INT64_MAX : INT64_MIN + 1;
                    f.hostile = true;
                }
                break;
            default: break;
            }
        }
    }
    f.t.strides = custom ? f.strides : nullptr;
    if (f.hostile) {
        bool empty = false;
        for (int d = 0; d < nd; ++d) empty = empty || f.shape[d] <= 0;
        if (empty) return false;
        // A few bytes: the call must fail before it reads any element.
        f.bytes = 64;
        f.buf.reset(new uint8_t[f.bytes]());
        f.t.data = f.buf.get();
        return true;
    }
    // The span: lowest and highest element offsets.
    int64_t lo = 0, hi = 0, count = 1;
    for (int d = 0; d < nd; ++d) {
        if (f.shape[d] <= 0) {
            count = 0;
            continue;
        }
        if (f.shape[d] > k_max_elems) return false;
        const int64_t st = f.strides[d];
        const int64_t ext = (f.shape[d] - 1) * st;
        (ext < 0 ? lo : hi) += ext;
        count *= f.shape[d];
        if (count > k_max_elems) return false;
    }
    const int64_t span = count == 0 ? 1 : hi - lo + 1;
    if (span > 4 * k_max_elems) return false;
    f.bytes = size_t(span) * size_t(f.elem);
    f.buf.reset(new uint8_t[f.bytes]);
    f.t.data = f.buf.get();
    f.t.byte_offset = uint64_t(-lo) * uint64_t(f.elem);
    // Values: small finite numbers from a seed.
    uint32_t seed = s.u16() * 2654435761u + 1;
    for (int64_t i = 0; i < span; ++i) {
        seed = seed * 1664525u + 1013904223u;
        const float x = float(int32_t(seed >> 8) % 2001 - 1000) / 256.0f;  // [-3.9, 3.9]
        const int64_t n = int_hi > 0 ? int64_t(seed >> 8) % int_hi : 0;
        uint8_t *p = f.buf.get() + i * f.elem;
        switch (k) {
        case kind::f32: std::memcpy(p, &x, 4); break;
        case kind::f64: {
            const double y = x;
            std::memcpy(p, &y, 8);
            break;
        }
        case kind::i32: {
            const int32_t y = int32_t(n);
            std::memcpy(p, &y, 4);
            break;
        }
        case kind::i64: std::memcpy(p, &n, 8); break;
        case kind::i8: *p = uint8_t(seed >> 16); break;
        default: {
            const uint16_t h = to_half_bits(x, k == kind::bf16);
            std::memcpy(p, &h, 2);
        }
        }
    }
    f.poisoned = poison && count > 0 && k != kind::i32 && k != kind::i64 && k != kind::i8;
    if (f.poisoned) {
        // One element (the lowest address, which some index reaches) a NaN or an infinity.
        if (k == kind::f32) {
            const float bad = s.bit() ? NAN : INFINITY;
            std::memcpy(f.buf.get(), &bad, 4);
        } else if (k == kind::f64) {
            const double bad = s.bit() ? NAN : INFINITY;
            std::memcpy(f.buf.get(), &bad, 8);
        } else {
            const uint16_t bad = k == kind::bf16 ? 0x7FC0 : 0x7C00;
            std::memcpy(f.buf.get(), &bad, 2);
        }
    }
    return true;
}

// Every element out's shape and strides reach is finite (checked only where
// a call succeeded on finite inputs).
inline void check_finite(const fuzz_tensor &f) {
    for (size_t i = 0; i < f.bytes; i += size_t(f.elem))
        if (!std::isfinite(read_at(f, i))) fail("a successful call wrote a non-finite output");
}

// Whether two elements of f share memory (strides that overlap without
// being 0, which llmkit cannot tell cheaply and so does not refuse): which
// write lands last is then not defined, and the harnesses check no values.
inline bool self_overlapping(const fuzz_tensor &f) {
    if (f.hostile) return true;
    std::vector<uint8_t> seen(f.bytes / size_t(f.elem), 0);
    const int64_t *st = f.t.strides ? f.strides : f.compact;
    int64_t idx[8] = {};
    for (int d = 0; d < f.t.ndim; ++d)
        if (f.shape[d] <= 0) return false;
    for (;;) {
        int64_t off = int64_t(f.t.byte_offset) / f.elem;
        for (int d = 0; d < f.t.ndim; ++d) off += idx[d] * st[d];
        if (seen[size_t(off)]++) return true;
        int d = f.t.ndim - 1;
        for (; d >= 0 && ++idx[d] == f.shape[d]; --d) idx[d] = 0;
        if (d < 0) return false;
    }
}

// Fills every element of an output buffer with a finite sentinel first, so
// that check_finite reads defined values (unreached elements keep it).
inline void clear(fuzz_tensor &f) { std::memset(f.buf.get(), 0, f.bytes); }


// Mostly well-formed dims with the input's tweaks: a wrong rank, a zero or
// negative extent, a mismatched head count.
inline int64_t dim(script &s, int64_t base) {
    switch (s.pick(16)) {  // an exhausted input (zeros) keeps the base
    case 15: return 0;
    case 14: return -1;
    case 13: return base + 1;
    default: return base;
    }
}

// float32, bfloat16 or float16.
inline kind pick_kind(script &s) { return kind(s.pick(3)); }

}  // namespace llmkit_fuzz
