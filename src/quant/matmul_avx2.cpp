// The AVX2 + FMA + F16C matmul kernels (matmul_avx_impl.inc). sources.cmake
// compiles this file alone with -mavx2 -mfma -mf16c; avx2_kernels() hands the
// table out only after the CPU said it has all three.
#include "quant/matmul_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LLMKIT_QMM_TABLE_NAME "avx2"
#include "quant/matmul_avx_impl.inc"

namespace llmkit::quant::mm {
// A variable, not a function: reading it runs no code compiled for AVX2.
extern const kernel_table *const avx2_table = &k_table;
}  // namespace llmkit::quant::mm
#else
namespace llmkit::quant::mm {
extern const kernel_table *const avx2_table = nullptr;
}  // namespace llmkit::quant::mm
#endif
