// The same kernels as matmul_avx2.cpp (matmul_avx_impl.inc), compiled with
// AVX512-VNNI, VL and BW besides AVX2 + FMA + F16C: the integer lanes that are
// plain sums of byte products come from one 256-bit vpdpbusd instead of
// vpmaddubsw + vpmaddwd, and the K-quant blocks take two sub-blocks per
// vpdpwssd. 256-bit there: the tiles stay those of the AVX2 kernels (two rows
// of folded lanes per register), and on CPUs that split 512-bit operations in
// two (AMD Zen 4) a zmm register would not do more work per cycle. One kernel
// of its own, the K-quant GEMM (kvnni_gemm), puts 16 activation rows in the
// lanes of a zmm register, where the wider register halves the loads per
// product. The results are the AVX2 kernels' bits (exact integers, the same
// float operations). avx512vnni_kernels() hands the table out only after the
// CPU said it has every one of these extensions.
#include "quant/matmul_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVX512VNNI__) && \
    defined(__AVX512VL__) && defined(__AVX512BW__)
#define LLMKIT_QMM_TABLE_NAME "avx512vnni"
// GCC 12 reports its own 512-bit intrinsics' deliberately undefined registers.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "quant/matmul_avx_impl.inc"

namespace llmkit::quant::mm {
extern const kernel_table *const avx512vnni_table = &k_table;
}  // namespace llmkit::quant::mm
#else
namespace llmkit::quant::mm {
extern const kernel_table *const avx512vnni_table = nullptr;
}  // namespace llmkit::quant::mm
#endif
