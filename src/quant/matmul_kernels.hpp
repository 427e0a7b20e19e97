// Internal interface between the matmul driver (matmul.cpp) and its kernels:
// the portable scalar ones (matmul_scalar.cpp), the AVX2 ones
// (matmul_avx2.cpp, compiled with -mavx2 -mfma -mf16c) and the same with
// AVX512-VNNI (matmul_avx512vnni.cpp; both from matmul_avx_impl.inc). Plain structs and
// function pointers only: this header is included by translation units built
// for different ISAs, so it must not define any inline function (the linker
// could keep the AVX2 copy and run it on a CPU without AVX2).
//
// The arithmetic, identical in every kernel (this is what makes the paths
// bit-identical and the result independent of threads and tiling):
//
//  * Activations: each block of B elements of an x row (B = 32, or 256 for
//    the K-quants and IQ4_XS) gets d = amax / 127 and id = 1 / d (d = id = 0 when amax is
//    0 or 1 / d overflows), and q = round-half-even(x * id) as int8. sum16
//    holds the integer sums of q over each 16 consecutive elements, sum32
//    over each 32 (the pairs of sum16 added; |sum| <= 32 * 127 fits int16).
//  * Integer part: a weight block times an activation block gives 8 int32
//    "lanes"; lane l sums, over each 32-element sub-block, the products of
//    elements 4l..4l+3, times the sub-block's integer scale for the K-quants
//    (Q6_K, Q2_K, Q3_K: the scale of the 16-element group the lane is in).
//    These are exact. IQ4_NL and MXFP4 levels are their codebooks' int8
//    entries (MXFP4's E2M1 values doubled, 0..12, with dw the E8M0 scale
//    halved: exact).
//  * Per type, levels (what the lanes multiply), integer scales, and the
//    offset term (bias_mult per group, against sum16 or sum32, and bias_w):
//      Q5_1    levels 0..31 (nibble | qh bit << 4), 8 lanes as Q5_0; bias:
//              sum32 of the block times m, i.e. bias_w = m (as Q4_1).
//      Q2_K    levels 0..3 (qs[32h + l] >> 2j & 3 is element 128h + 32j + l),
//              multiplier of group g = scales[g] & 15; bias_mult = scales[g]
//              >> 4 against sum16, bias_w = -dmin (value d*sc*q - dmin*m).
//      Q3_K    levels 0..7 (the 2 low bits as Q2_K's, bit 4h + j of hmask[l]
//              as bit 2), multiplier = the signed 6-bit scale sc (-32..31);
//              bias_mult = 4 * sc against sum16, bias_w = -d (value
//              d * sc * (q - 4): the -4 of a clear hmask bit moves into the
//              offset term, as Q6_K's -32 does).
//      IQ4_XS  levels = IQ4_NL's codebook (signed int8), sub-block j of 32
//              (16 bytes of nibbles: low = elements 0..15, high = 16..31)
//              with multiplier ls - 32 (6 bits: 4 from scales_l, 2 from
//              scales_h); no offset term.
//    Q4_0, Q4_1, IQ4_NL and MXFP4 have 4 "folded" lanes instead: lane l
//    (0..3) sums the products of elements 4l..4l+3 and 16+4l..16+4l+3 (Q4_0
//    with its levels q - 8, IQ4_NL and MXFP4 with their codebook entries).
//    Their 16 bytes of nibbles then need no reordering: the low nibbles
//    (elements 0..15) and the high ones (16..31) go through vpmaddubsw or
//    vpdpbusd separately, and two weight rows (or two activation rows) share
//    one register, one conversion and one fmadd.
//  * Float part, per block, for each lane l (32-element blocks):
//        acc[l] = fmaf(float(lane[l]), s, acc[l])        s = dw * dx (a float product)
//    256-element blocks (the K-quants and IQ4_XS) first add their 8 lanes into
//    the block's one exact integer T (|T| < 2^31 for every type) and keep one
//    accumulator:
//        acc = fmaf(float(T), s, acc)
//    so that a kernel may sum a block in any order or layout (the AVX512-VNNI
//    GEMM puts activation rows in the lanes, not element positions); and,
//    for types with an offset term, one more accumulator:
//        bias = fmaf(float(t), sb, bias)                  (t exact, sb a float product)
//  * Result: ((acc0+acc4) + (acc2+acc6)) + ((acc1+acc5) + (acc3+acc7)) + bias
//    (folded lanes: ((acc0+acc2) + (acc1+acc3)) + bias; 256-element blocks:
//    acc + bias), then times the row's scale for int8 rows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llmkit::quant::mm {

// Quantized activations: m rows of k int8 values with their block scales.
struct act_rows {
    const int8_t *q = nullptr;       // [m, k]
    const float *d = nullptr;        // [m, k / block]
    const int16_t *sum16 = nullptr;  // [m, k / 16]
    const int16_t *sum32 = nullptr;  // [m, k / 32]
    // Q4_0, IQ4_NL and MXFP4 only (else nullptr): per block, 8 * the sum of q
    // over elements {2i, 2i+1, 16+2i, 16+2i+1} for i = 0..7, the offset of
    // int16 i of a folded-lane block (see above). [m, k / 32, 8]
    const int16_t *fold8 = nullptr;
    // The same kinds: the same offsets as VNNI's vpdpbusd starts them, per
    // block the 4 folded lanes' int32 -(fold8[2l] + fold8[2l + 1]) (IQ4_NL and
    // MXFP4 start from 16 times that: their levels go in as w + 128). [m, k / 32, 4]
    const int32_t *fold32 = nullptr;
    // IQ4_XS only: q with the two sub-blocks of each 64 elements interleaved
    // by halves, [0..15, 32..47, 16..31, 48..63], the order of an IQ4_XS
    // sub-block pair's low nibbles then high nibbles. [m, k]
    const int8_t *q_pairs = nullptr;
    int64_t m = 0, k = 0, block = 32;
};

// One task: `rows` weight rows starting at `w`, against every activation row.
struct kernel_args {
    const uint8_t *w = nullptr;
    size_t w_row_bytes = 0;
    int64_t rows = 0;
    const float *row_scale = nullptr;  // int8 rows only: scale of the first row
    int64_t row_scale_stride = 1;
    act_rows act;
    float *y = nullptr;  // y of the first weight row, activation row 0
    int64_t y_row_stride = 0, y_col_stride = 1;
};

using kernel_fn = void (*)(const kernel_args &);
// Quantizes one row of k contiguous floats in blocks of `block` (32 or 256)
// into q [k] and d [k / block].
using quantize_act_fn = void (*)(const float *x, int64_t k, int64_t block, int8_t *q, float *d);

// The 32-element kinds first: `kind >= k_q4_k` means 256-element blocks.
enum kernel_kind : int {
    k_q4_0, k_q4_1, k_q5_0, k_q5_1, k_q8_0, k_i8_rows, k_iq4_nl, k_mxfp4,
    k_q4_k, k_q5_k, k_q6_k, k_q2_k, k_q3_k, k_iq4_xs, k_count
};

// The kinds with 4 folded lanes per 32-element block (see the contract above).
constexpr bool folded_lanes(kernel_kind k) { return k == k_q4_0 || k == k_q4_1 || k == k_iq4_nl || k == k_mxfp4; }
// Of those, the ones whose kernels take the folded lanes' offsets (act_rows::fold8, fold32).
constexpr bool has_fold_offsets(kernel_kind k) { return folded_lanes(k) && k != k_q4_1; }

struct kernel_table {
    const char *name;
    quantize_act_fn quantize_act;
    kernel_fn kernels[k_count];
};

const kernel_table &scalar_kernels();
// The AVX2 table as compiled (nullptr when the compiler could not target
// AVX2); only usable after checking the CPU: see avx2_kernels().
extern const kernel_table *const avx2_table;
// avx2_table when the CPU has AVX2, FMA and F16C, else nullptr (matmul.cpp).
const kernel_table *avx2_kernels();
// The same with AVX512-VNNI, VL and BW (nullptr when not compiled or the CPU
// lacks any of them).
extern const kernel_table *const avx512vnni_table;
const kernel_table *avx512vnni_plain_kernels();
// The same kernels built with GFNI as well (vgf2p8affineqb moves bit fields
// in one operation; nullptr when not compiled); avx512vnni_gfni_kernels()
// hands it out only when the CPU has GFNI too.
extern const kernel_table *const avx512vnni_gfni_table;
const kernel_table *avx512vnni_gfni_kernels();
// The VNNI set matmul_isa::avx512vnni runs: with the GFNI kernels where the CPU has them.
const kernel_table *avx512vnni_kernels();

}  // namespace llmkit::quant::mm
