// Q2_K's and Q3_K's kernels of matmul_avx512vnni.cpp built with GFNI as well:
// vgf2p8affineqb moves any bit of each byte to any other in one operation,
// where a shift and a mask (Q2_K's fourth 2-bit field) or a nibble mask and a
// vpshufb table (Q3_K's hmask bit) took two or three. The same exact integers,
// so the same bits as every other set. Only these two kinds are in the table
// (LLMKIT_QMM_GFNI_KINDS_ONLY); avx512vnni_gfni_kernels() (matmul.cpp) puts
// them into the VNNI table when the CPU has GFNI. CPUs with AVX512-VNNI and no
// GFNI (Cascade Lake) keep the plain VNNI kernels.
#include "quant/matmul_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVX512VNNI__) && \
    defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__GFNI__)
#define LLMKIT_QMM_TABLE_NAME "avx512vnni+gfni"
#define LLMKIT_QMM_GFNI_KINDS_ONLY 1
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The helpers of the kinds not built here.
#pragma GCC diagnostic ignored "-Wunused-function"
#include "quant/matmul_avx_impl.inc"

namespace llmkit::quant::mm {
extern const kernel_table *const avx512vnni_gfni_table = &k_table;
}  // namespace llmkit::quant::mm
#else
namespace llmkit::quant::mm {
extern const kernel_table *const avx512vnni_gfni_table = nullptr;
}  // namespace llmkit::quant::mm
#endif
