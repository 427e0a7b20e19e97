// The fixed tables of GGUF's codebook block formats (part of the file format,
// as ggml-common.h defines them), one copy for the quantizers
// (gguf_blocks*.cpp) and the matmul kernels (matmul_*.cpp).
#pragma once

#include <cstdint>
#include <cstring>

namespace llmkit::quant {

// IQ4_NL / IQ4_XS: the 16 int8 levels a 4-bit index selects.
inline constexpr int8_t k_iq4_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// MXFP4: the E2M1 values 0, 0.5, 1, 1.5, 2, 3, 4, 6 doubled, so that they are
// integers (indices 8-15 negated); e8m0_half halves the scale to match.
inline constexpr int8_t k_e2m1_doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// 2^(e - 128), half of the E8M0 scale 2^(e - 127), as a float: subnormal for
// e < 2 (ggml's E8M0_TO_FP32_HALF). Exact for every e.
inline float e8m0_half(uint8_t e) {
    const uint32_t bits = e < 2 ? uint32_t(0x00200000) << e : uint32_t(e - 1) << 23;
    float d;
    std::memcpy(&d, &bits, 4);
    return d;
}

}  // namespace llmkit::quant
