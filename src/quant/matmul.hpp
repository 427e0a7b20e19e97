// Quantized matmul on the CPU: y[m, n] = x[m, k] · Wᵀ, with W [n rows, k] in a
// GGUF block format (rows back to back, as ggml stores tensors) or in int8 with
// one float scale per row, and x, y in float32.
//
// As ggml does, the activations x are quantized on the fly to int8 blocks
// (Q8_0-style blocks of 32 for the 32-element formats, Q8_K-style blocks of 256
// with sums over 16 for the K-quants and IQ4_XS) so the inner loops are integer dot
// products; block results are accumulated in float32.
//
// Every output element is computed by one fixed sequence of float operations
// (see "The arithmetic" in matmul_kernels.hpp), whatever the ISA, the thread
// count, m or the tiling: the scalar and SIMD paths give bit-identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llmkit::quant {

// Which kernels run. `automatic` picks the best the CPU supports (and
// LLMKIT_MAX_CPU_ISA allows); tests force the others to compare the paths,
// which give the same bits. `avx512vnni` is built with GFNI as well and runs
// that build where the CPU has it; `avx512vnni_no_gfni` is the build without,
// for tests and benchmarks on such a CPU only (automatic never picks it).
enum class matmul_isa : int { automatic = 0, scalar = 1, avx2 = 2, avx512vnni = 3, avx512vnni_no_gfni = 4 };

// Whether `isa` is one of the AVX512-VNNI sets (the activations they read are laid out for them).
constexpr bool is_vnni(matmul_isa isa) { return isa == matmul_isa::avx512vnni || isa == matmul_isa::avx512vnni_no_gfni; }

// The kernels the next matmul call uses (never `automatic`).
matmul_isa matmul_active_isa() noexcept;
// Forces an ISA (for tests and benchmarks; process-wide). Returns false, and
// changes nothing, when the CPU cannot run it.
bool matmul_force_isa(matmul_isa isa) noexcept;
const char *matmul_isa_name(matmul_isa isa) noexcept;

// GGUF types with a matmul kernel: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS.
bool matmul_supports(int32_t type) noexcept;

// Elements per block of the weights (32 or 256) for a supported type.
int64_t matmul_block_elems(int32_t type) noexcept;

// The problem, already validated by the caller (bindings/c/quant_matmul.cpp).
struct matmul_problem {
    // x [m, k]: element (i, j) at x[i * x_row_stride + j * x_col_stride].
    const float *x = nullptr;
    int64_t m = 0, k = 0;
    int64_t x_row_stride = 0, x_col_stride = 1;
    // The weights: n rows of k, `w_row_bytes` apart.
    int32_t type = 0;  // a GGUF type id, or `int8_rows`
    const void *w = nullptr;
    size_t w_row_bytes = 0;
    int64_t n = 0;
    const float *w_scales = nullptr;  // int8_rows: one scale per row
    int64_t w_scale_stride = 1;
    // y [m, n]: element (i, r) at y[i * y_row_stride + r * y_col_stride].
    float *y = nullptr;
    int64_t y_row_stride = 0, y_col_stride = 1;
};

// The `type` of int8 weights with one float scale per row (not a ggml type;
// ggml's ids stay below 64).
constexpr int32_t int8_rows = -1;

// Computes y. The caller has checked shapes, strides and that x is finite;
// k is a multiple of matmul_block_elems(type) (32 for int8_rows).
void matmul(const matmul_problem &p, int n_threads);

// int8_rows weights with x rounded to 7-bit integers once per row
// (LLMKIT_QUANT_X_ROWS): y = (d_x[i] * scale[r]) * (exact int32 sum), by
// llmkit's VNNI tiles on the AVX512-VNNI kernel set, else by oneDNN's integer
// matmul when llmkit is built with it and m >= 24, else by llmkit's own
// loops; the same bits every way (matmul_int8_rows.cpp). The caller has
// checked k * 127^2 < 2^31.
void matmul_int8_x_rows(const matmul_problem &p, int n_threads);
// Lets (true) or stops (false) matmul_int8_x_rows using oneDNN, for tests
// that compare the two ways (process-wide). Returns false when asked to
// enable oneDNN in a build without it.
bool int8_x_rows_onednn(bool enable) noexcept;
// The largest k whose int32 sums cannot overflow: k * 127 * 127 < 2^31.
constexpr int64_t int8_x_rows_max_k = 133144;

}  // namespace llmkit::quant
