// The table of non-GGUF formats, their plane layouts, the quantize /
// dequantize dispatch and conversions between any two types.
#include "quant/formats.hpp"

#include <cmath>
#include <cstring>
#include <strings.h>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"
#include "quant/format_kernels.hpp"

namespace llmkit::quant {

namespace {

constexpr format_traits k_formats[] = {
    {f_int8, "int8", family::int8, 0, false, 0},
    {f_int8_g32, "int8_g32", family::int8, 32, false, 0},
    {f_int8_g64, "int8_g64", family::int8, 64, false, 0},
    {f_int8_g128, "int8_g128", family::int8, 128, false, 0},
    {f_int8_asym, "int8_asym", family::int8, 0, true, 0},
    {f_int8_asym_g32, "int8_asym_g32", family::int8, 32, true, 0},
    {f_int8_asym_g64, "int8_asym_g64", family::int8, 64, true, 0},
    {f_int8_asym_g128, "int8_asym_g128", family::int8, 128, true, 0},
    {f_nf4, "nf4", family::bnb4, 64, false, 0},
    {f_fp4, "fp4", family::bnb4, 64, false, 1},
    {f_fp8_e4m3, "fp8_e4m3", family::fp8, -1, false, 0},
    {f_fp8_e5m2, "fp8_e5m2", family::fp8, -1, false, 1},
    {f_fp8_e4m3_channel, "fp8_e4m3_channel", family::fp8, 0, false, 0},
    {f_fp8_e5m2_channel, "fp8_e5m2_channel", family::fp8, 0, false, 1},
    {f_gptq_int4, "gptq_int4", family::gptq, 0, false, 0},
    {f_gptq_int4_g32, "gptq_int4_g32", family::gptq, 32, false, 0},
    {f_gptq_int4_g64, "gptq_int4_g64", family::gptq, 64, false, 0},
    {f_gptq_int4_g128, "gptq_int4_g128", family::gptq, 128, false, 0},
    {f_awq_int4_g32, "awq_int4_g32", family::awq, 32, false, 0},
    {f_awq_int4_g64, "awq_int4_g64", family::awq, 64, false, 0},
    {f_awq_int4_g128, "awq_int4_g128", family::awq, 128, false, 0},
};

constexpr size_t k_align = 16;

// a * b with an overflow check (both non-negative).
size_t mul(size_t a, size_t b, const char *name) {
    if (b != 0 && a > SIZE_MAX / b) core::fail(LLMKIT_ERROR_SHAPE, name, ": the tensor's size overflows size_t");
    return a * b;
}

void add_plane(std::vector<plane> &out, size_t &cursor, const char *fmt, const char *name, uint8_t code,
               uint8_t bits, int64_t d0, int64_t d1 = -1) {
    plane p;
    p.name = name;
    p.dtype_code = code;
    p.dtype_bits = bits;
    p.ndim = d1 < 0 ? 1 : 2;
    p.shape[0] = d0;
    p.shape[1] = d1 < 0 ? 0 : d1;
    p.bytes = mul(mul(size_t(d0), d1 < 0 ? 1 : size_t(d1), fmt), bits / 8, fmt);
    if (cursor > SIZE_MAX - k_align) core::fail(LLMKIT_ERROR_SHAPE, fmt, ": the tensor's size overflows size_t");
    cursor = (cursor + k_align - 1) / k_align * k_align;
    p.offset = cursor;
    if (p.bytes > SIZE_MAX - cursor) core::fail(LLMKIT_ERROR_SHAPE, fmt, ": the tensor's size overflows size_t");
    cursor += p.bytes;
    out.push_back(p);
}

// Groups along a row: n / group, 1 for a whole row; checks divisibility.
int64_t groups_per_row(const format_traits &f, int64_t n) {
    if (f.group <= 0) return 1;
    if (n % f.group != 0)
        core::fail(LLMKIT_ERROR_SHAPE, f.name, ": a row of ", n, " elements is not a multiple of the group size ",
                   f.group);
    return n / f.group;
}

constexpr uint8_t k_int = LLMKIT_DTYPE_INT, k_uint = LLMKIT_DTYPE_UINT, k_float = LLMKIT_DTYPE_FLOAT;

}  // namespace

const format_traits *find_format(int32_t id) noexcept {
    for (const auto &f : k_formats)
        if (f.id == id) return &f;
    return nullptr;
}

const format_traits *find_format(const char *name) noexcept {
    if (!name) return nullptr;
    for (const auto &f : k_formats)
        if (strcasecmp(f.name, name) == 0) return &f;
    return nullptr;
}

const format_traits *all_formats(size_t *count) noexcept {
    if (count) *count = sizeof(k_formats) / sizeof(k_formats[0]);
    return k_formats;
}

std::vector<plane> planes(const format_traits &f, int64_t rows, int64_t n) {
    if (rows < 0 || n < 0) core::fail(LLMKIT_ERROR_SHAPE, f.name, ": shape [", rows, ", ", n, "] is negative");
    std::vector<plane> out;
    size_t cur = 0;
    switch (f.fam) {
    case family::int8: {
        const int64_t g = groups_per_row(f, n);
        add_plane(out, cur, f.name, "weight", k_int, 8, rows, n);
        add_plane(out, cur, f.name, "scales", k_float, 32, rows, g);
        if (f.asymmetric) add_plane(out, cur, f.name, "zeros", k_int, 8, rows, g);
        break;
    }
    case family::bnb4: {
        // bitsandbytes flattens the tensor: blocks of 64 run across row ends.
        const size_t total = mul(size_t(rows), size_t(n), f.name);
        add_plane(out, cur, f.name, "weight", k_uint, 8, int64_t((total + 1) / 2));
        add_plane(out, cur, f.name, "absmax", k_float, 32, int64_t((total + 63) / 64));
        break;
    }
    case family::fp8:
        add_plane(out, cur, f.name, "weight", k_uint, 8, rows, n);
        add_plane(out, cur, f.name, "scales", k_float, 32, f.group < 0 ? 1 : rows);
        break;
    case family::gptq:
    case family::awq: {
        if (n % 8 != 0 || rows % 8 != 0)
            core::fail(LLMKIT_ERROR_SHAPE, f.name, ": both dimensions must be multiples of 8 (8 nibbles per int32), got [",
                       rows, ", ", n, "]");
        const int64_t g = groups_per_row(f, n);
        if (f.fam == family::gptq) {
            add_plane(out, cur, f.name, "qweight", k_int, 32, n / 8, rows);
            add_plane(out, cur, f.name, "qzeros", k_int, 32, g, rows / 8);
            add_plane(out, cur, f.name, "scales", k_float, 16, g, rows);
            add_plane(out, cur, f.name, "g_idx", k_int, 32, n);
        } else {
            add_plane(out, cur, f.name, "qweight", k_int, 32, n, rows / 8);
            add_plane(out, cur, f.name, "qzeros", k_int, 32, g, rows / 8);
            add_plane(out, cur, f.name, "scales", k_float, 16, g, rows);
        }
        break;
    }
    }
    return out;
}

size_t format_bytes(const format_traits &f, int64_t rows, int64_t n) {
    const auto p = planes(f, rows, n);
    return p.back().offset + p.back().bytes;
}

void quantize_format(const format_traits &f, const f32_rows &src, void *dst, const format_options &o, int n_threads) {
    const auto p = planes(f, src.rows, src.n);
    require_finite_rows(f.name, src, n_threads);
    auto *base = static_cast<uint8_t *>(dst);
    std::memset(base, 0, p.back().offset + p.back().bytes);
    switch (f.fam) {
    case family::int8: kernels::quantize_int8(f, src, base, p, n_threads); break;
    case family::bnb4: kernels::quantize_bnb4(f, src, base, p, n_threads); break;
    case family::fp8: kernels::quantize_fp8(f, src, base, p, n_threads); break;
    case family::gptq:
    case family::awq: kernels::quantize_int4(f, src, base, o, n_threads); break;
    }
}

void dequantize_format(const format_traits &f, const void *src, int64_t rows, int64_t n, float *dst,
                       int64_t row_stride, int64_t col_stride, int n_threads) {
    const auto p = planes(f, rows, n);
    const auto *base = static_cast<const uint8_t *>(src);
    const kernels::out_rows out{dst, rows, n, row_stride, col_stride};
    switch (f.fam) {
    case family::int8: kernels::dequantize_int8(f, base, p, out, n_threads); break;
    case family::bnb4: kernels::dequantize_bnb4(f, base, p, out, n_threads); break;
    case family::fp8: kernels::dequantize_fp8(f, base, p, out, n_threads); break;
    case family::gptq:
    case family::awq: kernels::dequantize_int4(f, base, out, n_threads); break;
    }
}

// --- Conversions -------------------------------------------------------------

size_t type_bytes(int32_t type, int64_t rows, int64_t n) {
    if (const format_traits *f = find_format(type)) return format_bytes(*f, rows, n);
    if (const type_traits *t = find_type(type)) return rows_bytes(*t, rows, n);
    core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "quantization type ", type, " is not one llmkit implements");
}

namespace {

void dequantize_any(int32_t type, const void *src, int64_t rows, int64_t n, float *dst, int n_threads) {
    if (const format_traits *f = find_format(type))
        dequantize_format(*f, src, rows, n, dst, n, 1, n_threads);
    else
        dequantize_rows(*find_type(type), src, rows, n, dst, n, 1, n_threads);
}

void quantize_any(int32_t type, const float *x, int64_t rows, int64_t n, void *dst, const format_options &o,
                  int n_threads) {
    f32_rows src{x, rows, n, n, 1};
    if (const format_traits *f = find_format(type))
        quantize_format(*f, src, dst, o, n_threads);
    else
        quantize_rows(*find_type(type), src, dst, n_threads);
}

// GPTQ group-32 symmetric <-> Q4_0: both store x = d * (q - 8) with an f16 d
// per 32 consecutive elements of a row, so the bits carry over unchanged.
bool gptq32_to_q4_0(const void *src, int64_t rows, int64_t n, void *dst) {
    return write_q4_0(unpack_int4(*find_format(f_gptq_int4_g32), src, rows, n), dst);
}

void q4_0_to_gptq32(const void *src, int64_t rows, int64_t n, void *dst) {
    const format_traits &f = *find_format(f_gptq_int4_g32);
    int4_groups g;
    g.rows = rows;
    g.n = n;
    g.group = 32;
    g.n_groups = n / 32;
    g.q.resize(size_t(rows * n));
    g.scale.resize(size_t(rows * g.n_groups));
    g.zero.assign(size_t(rows * g.n_groups), 8);
    g.g_idx.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) g.g_idx[size_t(i)] = int32_t(i / 32);
    const auto *in = static_cast<const uint8_t *>(src);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < g.n_groups; ++b) {
            const uint8_t *blk = in + size_t(r * g.n_groups + b) * 18;
            uint16_t h;
            std::memcpy(&h, blk, 2);
            g.scale[size_t(r * g.n_groups + b)] = core::f16_to_f32(h);
            uint8_t *q = &g.q[size_t(r * n + b * 32)];
            for (int j = 0; j < 16; ++j) {
                q[j] = blk[2 + j] & 0x0f;
                q[j + 16] = blk[2 + j] >> 4;
            }
        }
    }
    pack_int4(f, g, dst);
}

}  // namespace

bool write_q4_0(const int4_groups &g, void *dst) {
    if (g.n % 32 != 0 || g.n_groups != g.n / 32) return false;
    for (int64_t i = 0; i < g.n; ++i)
        if (g.g_idx[size_t(i)] != i / 32) return false;
    for (uint8_t z : g.zero)
        if (z != 8) return false;
    auto *out = static_cast<uint8_t *>(dst);
    for (int64_t r = 0; r < g.rows; ++r) {
        for (int64_t b = 0; b < g.n / 32; ++b) {
            uint8_t *blk = out + size_t(r * (g.n / 32) + b) * 18;
            const uint16_t h = core::f32_to_f16(g.scale[size_t(r * g.n_groups + b)]);
            std::memcpy(blk, &h, 2);
            const uint8_t *q = &g.q[size_t(r * g.n + b * 32)];
            for (int j = 0; j < 16; ++j) blk[2 + j] = uint8_t(q[j] | (q[j + 16] << 4));  // Q4_0: j low, j + 16 high
        }
    }
    return true;
}

convert_stats convert(int32_t src_type, const void *src, int32_t dst_type, void *dst, int64_t rows, int64_t n,
                      const format_options &o, int n_threads) {
    const size_t count = size_t(rows) * size_t(n);
    std::vector<float> a(count), b(count);
    dequantize_any(src_type, src, rows, n, a.data(), n_threads);
    bool direct = false;
    if (src_type == f_gptq_int4_g32 && dst_type == t_q4_0) direct = gptq32_to_q4_0(src, rows, n, dst);
    if (src_type == t_q4_0 && dst_type == f_gptq_int4_g32 && rows % 8 == 0) {
        q4_0_to_gptq32(src, rows, n, dst);
        direct = true;
    }
    if (!direct) quantize_any(dst_type, a.data(), rows, n, dst, o, n_threads);
    dequantize_any(dst_type, dst, rows, n, b.data(), n_threads);
    convert_stats s;
    s.lossless = true;
    double sq = 0;
    for (size_t i = 0; i < count; ++i) {
        // Bit equality, so that -0 vs +0 or a NaN pattern also count as a change.
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) s.lossless = false;
        const double e = std::fabs(double(a[i]) - double(b[i]));
        s.max_abs_error = std::max(s.max_abs_error, e);
        s.max_abs_value = std::max(s.max_abs_value, std::fabs(double(a[i])));
        sq += e * e;
    }
    s.rms_error = count ? std::sqrt(sq / double(count)) : 0.0;
    return s;
}

}  // namespace llmkit::quant
