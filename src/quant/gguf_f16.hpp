// The f16 fields of GGUF blocks (scales, mins): little-endian IEEE half,
// written with round to nearest even. Shared by the block-format files.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/tensor.hpp"

namespace llmkit::quant {

// core::f32_to_f16 (round to nearest even), with the common case inline and
// branch-free: values in half's normal range. Its rounding branch mispredicted
// on every other block, and the call itself cost Q4_1 (two per block) more
// than the block's arithmetic. Same formula, so the same bits.
inline uint16_t f32_to_f16_bits(float v) {
    uint32_t x;
    std::memcpy(&x, &v, 4);
    const uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a - 0x38800000u < 0x477ff000u - 0x38800000u) {  // 2^-14 <= |v| < 65520
        uint32_t r = (a >> 13) - (112u << 10);
        const uint32_t rem = a & 0x1fffu;
        r += uint32_t(rem > 0x1000u) | (uint32_t(rem == 0x1000u) & r);  // up past half, or at half to even
        return uint16_t(sign | r);
    }
    return core::f32_to_f16(v);
}
inline void put_f16(uint8_t *p, float v) {
    const uint16_t h = f32_to_f16_bits(v);
    std::memcpy(p, &h, 2);
}
inline float get_f16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return core::f16_to_f32(h);
}

}  // namespace llmkit::quant
