// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011): a counter-based generator, so any draw can be computed directly from
// (key, counter) without carrying state. That is what makes sampling reproducible
// whatever the thread count or batch composition, and identical on the GPU.
#pragma once

#include <cstdint>

namespace llmkit::core {

struct philox_block {
    uint32_t v[4];
};

inline philox_block philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2]) {
    constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // multipliers
    constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // Weyl key increments
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(M0) * c0;
        const uint64_t p1 = uint64_t(M1) * c2;
        const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
        const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
        const uint32_t n0 = hi1 ^ c1 ^ k0;
        const uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    return {{c0, c1, c2, c3}};
}

// The draw llmkit uses everywhere: key = seed, counter = (draw index, step,
// sequence low word, sequence high word). Returns a double in [0, 1) with 53
// random bits.
inline double philox_uniform(uint64_t seed, uint64_t seq, uint64_t step, uint32_t draw) {
    const uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
    // The step only gets 32 bits of counter; sequences get 64.
    const uint32_t ctr[4] = {draw, uint32_t(step), uint32_t(seq), uint32_t(seq >> 32)};
    const philox_block b = philox4x32_10(ctr, key);
    const uint64_t bits53 = (uint64_t(b.v[0] >> 5) << 26) | uint64_t(b.v[1] >> 6);
    return double(bits53) * (1.0 / 9007199254740992.0);  // 2^-53
}

}  // namespace llmkit::core
