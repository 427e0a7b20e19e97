// linalg's kernels for AVX2 + FMA (this file alone is compiled with -mavx2
// -mfma; see src/quant/sources.cmake) and only called after a CPU check
// (linalg_generic.cpp). Eigen's namespace is renamed so that none of its
// templates instantiated here can stand in for the baseline copies.
#include "quant/linalg_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#define Eigen llmkit_eigen_avx2
#define LLMKIT_LINALG_NS avx2
#define LLMKIT_LINALG_NAME "avx2"
#include "quant/linalg_kernels_impl.inc"

namespace llmkit::quant::linalg {
extern const kernel_table *const avx2_table = &avx2::table;
}
#else
namespace llmkit::quant::linalg {
extern const kernel_table *const avx2_table = nullptr;
}
#endif
