// The VNNI kernels of matmul_avx512vnni.cpp built a second time with GFNI:
// vgf2p8affineqb multiplies every byte by an 8x8 bit matrix, so it moves any
// bit of a byte to any other in one operation. A high nibble ((q >> 4) & 15:
// Q4_0, Q4_1, IQ4_NL, MXFP4, Q4_K, Q5_K, IQ4_XS), Q2_K's fourth 2-bit field,
// Q3_K's hmask bit and Q6_K's two high bits then take one operation where a
// shift and a mask, or nibble masks and a vpshufb table, took two or three
// (high_nibbles, move_bit, q6_levels4). The same exact integers, so the same
// bits as every other set. avx512vnni_kernels() (matmul.cpp) takes this
// table where the CPU has GFNI; a CPU with AVX512-VNNI and no GFNI (Cascade
// Lake) keeps the plain one.
#include "quant/matmul_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVX512VNNI__) && \
    defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__GFNI__)
#define LLMKIT_QMM_TABLE_NAME "avx512vnni+gfni"
// GCC 12 reports its own 512-bit intrinsics' deliberately undefined registers.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "quant/matmul_avx_impl.inc"

namespace llmkit::quant::mm {
extern const kernel_table *const avx512vnni_gfni_table = &k_table;
}  // namespace llmkit::quant::mm
#else
namespace llmkit::quant::mm {
extern const kernel_table *const avx512vnni_gfni_table = nullptr;
}  // namespace llmkit::quant::mm
#endif
