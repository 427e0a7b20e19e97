// Non-GGUF quantization formats: int8 (per channel / per group, symmetric or
// with a zero point), bitsandbytes' NF4 and FP4, FP8 E4M3 / E5M2 with scales,
// and the int4 group-wise packings of GPTQ and AWQ checkpoints.
//
// Unlike GGUF blocks, these formats keep their scales in side arrays, as the
// checkpoints that use them do. A quantized tensor is therefore a list of
// "planes" (the quantized weight, the scales, the zero points...) stored one
// after the other, each starting at a multiple of 16 bytes. planes() says
// where each one is, so callers can hand them to other tools unchanged.
//
// Type ids start at 1000, outside ggml's range (ggml_type < 64).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant/quantize.hpp"

namespace llmkit::quant {

enum format_id : int32_t {
    f_int8 = 1000,  // int8 symmetric, one scale per row (output channel)
    f_int8_g32 = 1001,
    f_int8_g64 = 1002,
    f_int8_g128 = 1003,
    f_int8_asym = 1004,  // int8 with a zero point, one scale per row
    f_int8_asym_g32 = 1005,
    f_int8_asym_g64 = 1006,
    f_int8_asym_g128 = 1007,
    f_nf4 = 1010,  // bitsandbytes NF4, blockwise absmax, block 64
    f_fp4 = 1011,  // bitsandbytes FP4 (e2m1), blockwise absmax, block 64
    f_fp8_e4m3 = 1020,  // one scale for the tensor
    f_fp8_e5m2 = 1021,
    f_fp8_e4m3_channel = 1022,  // one scale per row
    f_fp8_e5m2_channel = 1023,
    f_gptq_int4 = 1030,  // GPTQ packing, one group per row (group_size -1)
    f_gptq_int4_g32 = 1031,
    f_gptq_int4_g64 = 1032,
    f_gptq_int4_g128 = 1033,
    f_awq_int4_g32 = 1041,  // AWQ (GEMM) packing
    f_awq_int4_g64 = 1042,
    f_awq_int4_g128 = 1043,
};

enum class family { int8, bnb4, fp8, gptq, awq };

struct format_traits {
    int32_t id;
    const char *name;   // lower case; lookups ignore case
    family fam;
    int64_t group;      // elements per scale along a row; 0 = the whole row, -1 = the whole tensor
    bool asymmetric;    // int8: a zero point per group
    int variant;        // bnb4: 0 NF4, 1 FP4; fp8: 0 E4M3, 1 E5M2
};

const format_traits *find_format(int32_t id) noexcept;
const format_traits *find_format(const char *name) noexcept;
const format_traits *all_formats(size_t *count) noexcept;

// Element types of planes, DLPack-style (code as llmkit_dtype_code).
struct plane {
    const char *name;
    size_t offset = 0, bytes = 0;
    uint8_t dtype_code = 0, dtype_bits = 8;
    int ndim = 1;
    int64_t shape[2] = {0, 0};
};

// The planes of a [rows, n] tensor; throws SHAPE when the shape does not fit
// the format (n not a multiple of the group, rows not a multiple of 8 for the
// int4 packings...) or the sizes overflow.
std::vector<plane> planes(const format_traits &f, int64_t rows, int64_t n);
size_t format_bytes(const format_traits &f, int64_t rows, int64_t n);

// How the int4 packings choose their zero points.
enum class zero_point { format_default = 0, symmetric = 1, asymmetric = 2 };

struct format_options {
    zero_point zp = zero_point::format_default;
};

// Quantizes src into format_bytes(f, rows, n) bytes at dst (padding zeroed).
// Throws NON_FINITE before writing when src holds NaN or an infinity.
void quantize_format(const format_traits &f, const f32_rows &src, void *dst, const format_options &o, int n_threads);
// Decodes the planes at src into dst [rows, n] (float32, strided).
void dequantize_format(const format_traits &f, const void *src, int64_t rows, int64_t n, float *dst,
                       int64_t row_stride, int64_t col_stride, int n_threads);

// --- Scalar codecs, exposed for tests and for GPTQ / AWQ --------------------

// FP8 E4M3 ("fn": no infinity, NaN = 0x7f / 0xff, largest 448) and E5M2
// (IEEE-like, infinity 0x7c). Round to nearest even, as torch's (2.x, CPU)
// float32 -> float8 casts: E4M3 saturates (magnitudes from 448 up, and
// infinities, give +-448), E5M2 does not (from 61440 up: infinity); NaN stays
// NaN with its sign.
uint8_t f32_to_e4m3(float x) noexcept;
uint8_t f32_to_e5m2(float x) noexcept;
float e4m3_to_f32(uint8_t c) noexcept;
float e5m2_to_f32(uint8_t c) noexcept;
// The scale that maps a group's largest magnitude amax onto the format's
// largest finite value (variant 0: E4M3's 448, 1: E5M2's 57344): amax / max.
float fp8_scale(float amax, int variant) noexcept;

// bitsandbytes' 4-bit code tables (value of each 4-bit index, in [-1, 1]).
extern const float nf4_code[16];
extern const float fp4_code[16];
// The index of the code nearest to y (y = x / absmax of its block), as
// bitsandbytes' kernels pick it: exact midpoints, ties to the lower code.
uint8_t nf4_index(float y) noexcept;
uint8_t fp4_index(float y) noexcept;
// The indices of one block of up to 64 values as quantize stores them
// (variant 0: NF4, 1: FP4; amax = the block's absmax): each is nf4_index /
// fp4_index of the value times 1 / amax, computed branch-free for a whole block.
void bnb4_block_indices(int variant, const float *x, int len, float amax, uint8_t *idx);

// Int4 groups of a [rows, n] weight in a layout-neutral form: q[r * n + i] in
// 0..15, and per (row, group) a scale (already rounded to f16) and a zero
// point, group of column i = g_idx[i]; w ~ scale * (q - zero).
struct int4_groups {
    int64_t rows = 0, n = 0, group = 0, n_groups = 0;
    std::vector<uint8_t> q;        // [rows, n]
    std::vector<float> scale;      // [rows, n_groups]
    std::vector<uint8_t> zero;     // [rows, n_groups]
    std::vector<int32_t> g_idx;    // [n]
};

// The scale and zero point a group of values gets, as GPTQ's quantizer
// (asymmetric: zero in 1..15, see the header) or AWQ's fit them; scale is
// rounded to f16. Throws OUT_OF_RANGE when the scale overflows f16.
void fit_int4(const float *x, int64_t len, int64_t stride, family fam, bool symmetric, float &scale, uint8_t &zero);
uint8_t quantize_int4(float x, float scale, uint8_t zero) noexcept;
// d[k] = w[k] - scale * (quantize_int4(c[k], scale, zero) - zero) in float64
// (the float product widened), for k < len: AWQ's clipping search on a
// group. The same levels as quantize_int4, vectorized.
void int4_rounding_error(const float *w, const float *c, int64_t len, float scale, uint8_t zero, double *d) noexcept;

// Writes / reads the planes of a gptq_int4* or awq_int4* tensor.
void pack_int4(const format_traits &f, const int4_groups &g, void *dst);
// Writes symmetric group-32 int4 (every zero 8, g_idx = i / 32) as GGUF Q4_0
// blocks, which hold the same numbers; returns false (writing nothing) otherwise.
bool write_q4_0(const int4_groups &g, void *dst);
int4_groups unpack_int4(const format_traits &f, const void *src, int64_t rows, int64_t n);

// Conversion between any two types (GGUF or not) through float, except where
// a direct repacking is exact (GPTQ int4 group 32 with every zero point 8 and
// g_idx = i / 32 <-> Q4_0). Reports the error of dequantize(dst) against
// dequantize(src).
struct convert_stats {
    bool lossless = false;
    double max_abs_error = 0, rms_error = 0, max_abs_value = 0;
};
size_t type_bytes(int32_t type, int64_t rows, int64_t n);  // any type; throws INVALID_ARGUMENT / SHAPE
convert_stats convert(int32_t src_type, const void *src, int32_t dst_type, void *dst, int64_t rows, int64_t n,
                      const format_options &o, int n_threads);

}  // namespace llmkit::quant
