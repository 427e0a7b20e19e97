// GGUF block formats: a table of type traits (ggml's names, block sizes and
// bytes per block) with one quantize_row / dequantize_row pair per type.
//
// The quantizers reproduce ggml's reference quantizers (quantize_row_<type>_ref,
// i.e. what ggml_quantize_chunk does without an importance matrix) byte for
// byte, the weighted quantizers what it does with one (quantize_row_<type>_impl),
// and the dequantizers reproduce ggml's to_float bit for bit. That needs
// the same float operations in the same order, no -ffast-math and no FMA
// contraction (sources.cmake builds these files with -ffp-contract=off).
//
// Type ids are ggml's ggml_type values, so GGUF tensor types map directly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llmkit::quant {

// ggml_type numbering.
enum type_id : int32_t {
    t_f32 = 0,
    t_f16 = 1,
    t_q4_0 = 2,
    t_q4_1 = 3,
    t_q5_0 = 6,
    t_q5_1 = 7,
    t_q8_0 = 8,
    t_q8_1 = 9,
    t_q2_k = 10,
    t_q3_k = 11,
    t_q4_k = 12,
    t_q5_k = 13,
    t_q6_k = 14,
    t_q8_k = 15,
    t_iq4_nl = 20,
    t_iq4_xs = 23,
    t_bf16 = 30,
    t_tq1_0 = 34,
    t_tq2_0 = 35,
    t_mxfp4 = 39,
};

// Quantizes n floats (n a multiple of block_elems) into n / block_elems blocks.
using quantize_fn = void (*)(const float *x, void *dst, int64_t n);
// Decodes n / block_elems blocks into n floats.
using dequantize_fn = void (*)(const void *src, float *y, int64_t n);
// Quantizes one whole row of n floats with importance weights (n of them, one
// per column: an imatrix), as ggml_quantize_chunk does when given one.
using quantize_weighted_fn = void (*)(const float *x, void *dst, int64_t n, const float *importance);

struct type_traits {
    int32_t id;
    const char *name;  // as ggml spells it: "q4_K", "bf16"
    int64_t block_elems;
    int64_t block_bytes;
    quantize_fn quantize_row;
    dequantize_fn dequantize_row;
    // nullptr for the types whose quantizer ggml runs without the weights
    // (Q8_0, the float types, the intermediate Q8_1 / Q8_K, TQ1_0, TQ2_0, MXFP4).
    quantize_weighted_fn quantize_row_weighted;
};

// The traits of a type, or nullptr when llmkit does not implement it.
const type_traits *find_type(int32_t id) noexcept;
// Case-insensitive lookup by ggml's name; nullptr when unknown.
const type_traits *find_type(const char *name) noexcept;
// Every implemented type, in id order.
const type_traits *all_types(size_t *count) noexcept;

// The formats without a fitted scale (gguf_blocks_tq_mxfp4.cpp): ternary
// TQ1_0 / TQ2_0 and MXFP4.
void quantize_tq1_0(const float *x, void *dst, int64_t n);
void dequantize_tq1_0(const void *src, float *y, int64_t n);
void quantize_tq2_0(const float *x, void *dst, int64_t n);
void dequantize_tq2_0(const void *src, float *y, int64_t n);
void quantize_mxfp4(const float *x, void *dst, int64_t n);
void dequantize_mxfp4(const void *src, float *y, int64_t n);
// MXFP4's search for the nearest code of each of 32 values at scale d (half
// the E8M0 scale): AVX2 where avx2_quantizers_enabled(), else a scalar loop.
void mxfp4_nearest_codes(const float *x, float d, uint8_t *code);

// One Q4_K super-block (144 bytes), for quantizers that choose the levels
// themselves (GPTQ): sub-block j's (0..7) scale d and min m as the decoder
// computes them (x = d * level - m), and the 256 levels (0..15) packed in.
void q4_k_sub_block(const uint8_t *block, int j, float &d, float &m) noexcept;
void q4_k_put_levels(const uint8_t *levels, uint8_t *block) noexcept;

// For tests: false makes every quantizer take its baseline path (scalar or
// SSE2) even on an AVX2 CPU, true (the default) lets them use AVX2 where the
// CPU has it, so the two can be compared byte for byte. Returns whether this
// build and CPU have the AVX2 paths at all. Not for use while quantizing.
bool set_avx2_quantizers(bool enabled) noexcept;
// Whether the quantizers take their AVX2 paths now: the CPU has AVX2 and
// set_avx2_quantizers has not turned them off. The one switch every AVX2
// quantizer checks, in whichever file it lives.
bool avx2_quantizers_enabled() noexcept;

// ggml's nearest_int: round to nearest (ties to even) through the float
// magic-number trick; valid for |x| <= 4194303.
int nearest_int(float x) noexcept;

}  // namespace llmkit::quant
