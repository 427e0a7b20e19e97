// TQ1_0, TQ2_0 and MXFP4 (src/quant/gguf_blocks_tq_mxfp4.cpp) from their
// definitions: hand-computed packings, the round trip of values already on the
// grid, and MXFP4's code search (AVX2 and portable) against the plain scan over
// all 16 codes that ggml's quantizer runs. Byte-exactness with gguf-py on
// random and edge-case rows is in tests/python/test_quant_tq_mxfp4.py.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/gguf_blocks.hpp"

namespace {

using namespace llmkit::quant;

constexpr int8_t k_e2m1_doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// The first code with the smallest rounded error, over all 16 in table order.
uint8_t scan_all_codes(float x, float d) {
    int best = 0;
    float best_err = std::fabs(float(k_e2m1_doubled[0]) * d - x);
    for (int c = 1; c < 16; ++c) {
        const float err = std::fabs(float(k_e2m1_doubled[c]) * d - x);
        if (err < best_err) {
            best_err = err;
            best = c;
        }
    }
    return uint8_t(best);
}

}  // namespace

TEST_CASE("MXFP4 code search equals the scan over all 16 codes, AVX2 and portable", "[quant]") {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> level(-24, 24), e_dist(0, 252), kind(0, 3);
    int blocks = 0;
    for (int trial = 0; trial < 4000; ++trial) {
        const int e = e_dist(rng);
        uint32_t bits = e < 2 ? uint32_t(0x00200000) << e : uint32_t(e - 1) << 23;
        float d;
        std::memcpy(&d, &bits, 4);
        float x[32];
        for (float &v : x) {
            switch (kind(rng)) {
            case 0: v = normal(rng) * 4.0f * d; break;     // ordinary values
            case 1: v = float(level(rng)) * 0.5f * d; break;  // on a level or exactly halfway
            case 2: v = (kind(rng) ? -0.0f : 0.0f); break;
            default: v = normal(rng) * 1e-3f * d; break;  // near zero, both signs
            }
        }
        uint8_t fast[32], portable[32];
        mxfp4_nearest_codes(x, d, fast);
        set_avx2_quantizers(false);  // the scalar loop
        mxfp4_nearest_codes(x, d, portable);
        set_avx2_quantizers(true);
        for (int j = 0; j < 32; ++j) {
            INFO("trial " << trial << " e " << e << " x " << x[j]);
            const uint8_t want = scan_all_codes(x[j], d);
            REQUIRE(fast[j] == want);
            REQUIRE(portable[j] == want);
        }
        ++blocks;
    }
    CHECK(blocks == 4000);
}

TEST_CASE("MXFP4: E2M1 values on a power-of-two scale come back exactly", "[quant]") {
    // absmax 3.0 -> e = floor(log2 3) - 2 + 127 = 126, scale 2^-1: levels 0 .. 3.
    std::vector<float> x(64);
    const float grid[8] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.5f, 2.0f, 3.0f};
    for (size_t j = 0; j < x.size(); ++j) x[j] = grid[j % 8] * (j % 3 ? 1.0f : -1.0f);
    x[7] = 3.0f;
    x[39] = -3.0f;
    std::vector<uint8_t> q(2 * 17);
    quantize_mxfp4(x.data(), q.data(), 64);
    CHECK(q[0] == 126);
    CHECK(q[17] == 126);
    // Values 7 and 23 are both +3.0 = 6 x 2^-1 (code 7): byte 7 holds them in
    // its low and high nibble. Value 39 (block 2's value 7) is -3.0 (code 15).
    CHECK(q[1 + 7] == 0x77);
    CHECK((q[17 + 1 + 7] & 0x0f) == 15);
    std::vector<float> back(64);
    dequantize_mxfp4(q.data(), back.data(), 64);
    for (size_t j = 0; j < x.size(); ++j) {
        INFO(j);
        CHECK(back[j] == x[j]);
    }
}

TEST_CASE("TQ1_0 and TQ2_0: hand-packed bytes and exact ternary round trips", "[quant]") {
    const float d = 0.75f;  // exact in f16
    std::vector<float> plus(256, d), zero(256, 0.0f), minus(256, -d);
    std::vector<uint8_t> q1(54), q2(66);
    // All +1: five digits 2 -> v = 2 * 121 = 242 -> ceil(242 * 256 / 243) = 255;
    // the four-digit qh bytes: v = 2 * 120 = 240 -> ceil(240 * 256 / 243) = 253.
    quantize_tq1_0(plus.data(), q1.data(), 256);
    for (int j = 0; j < 48; ++j) CHECK(q1[size_t(j)] == 255);
    for (int j = 48; j < 52; ++j) CHECK(q1[size_t(j)] == 253);
    // TQ2_0: digit 2 in each 2-bit field.
    quantize_tq2_0(plus.data(), q2.data(), 256);
    for (int j = 0; j < 64; ++j) CHECK(q2[size_t(j)] == 0xAA);
    // All -1: digits 0 -> bytes 0 (and 0x00 in TQ2_0).
    minus[0] = -d;
    quantize_tq1_0(minus.data(), q1.data(), 256);
    for (int j = 0; j < 52; ++j) CHECK(q1[size_t(j)] == 0);
    // All zero: d = 0, every digit 1 -> v = 121 -> ceil(121 * 256 / 243) = 128;
    // qh: v = 120 -> 127 (126.4 rounded up); TQ2_0: 0x55; the f16 scale 0.
    quantize_tq1_0(zero.data(), q1.data(), 256);
    for (int j = 0; j < 48; ++j) CHECK(q1[size_t(j)] == 128);
    for (int j = 48; j < 52; ++j) CHECK(q1[size_t(j)] == 127);
    CHECK((q1[52] == 0 && q1[53] == 0));
    quantize_tq2_0(zero.data(), q2.data(), 256);
    for (int j = 0; j < 64; ++j) CHECK(q2[size_t(j)] == 0x55);

    // Any ternary row with its maximum present comes back exactly, whichever
    // digit sits in which of the three packing regions.
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> t(-1, 1);
    for (int trial = 0; trial < 50; ++trial) {
        std::vector<float> x(512);
        for (float &v : x) v = float(t(rng)) * d;
        x[0] = d;
        x[300] = -d;
        std::vector<uint8_t> a(2 * 54), b(2 * 66);
        std::vector<float> ya(512), yb(512);
        quantize_tq1_0(x.data(), a.data(), 512);
        dequantize_tq1_0(a.data(), ya.data(), 512);
        quantize_tq2_0(x.data(), b.data(), 512);
        dequantize_tq2_0(b.data(), yb.data(), 512);
        CHECK(ya == x);
        CHECK(yb == x);
    }
}
