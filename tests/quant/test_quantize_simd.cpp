// The AVX2 quantizers against the baseline ones, byte for byte, on random
// rows built to reach every branch of the fits: flat groups, all-positive
// and all-negative groups (the min clamped to 0), zeros, ties, repeated
// values, wide and tiny ranges, with and without an importance matrix (with
// zero weights too). The baseline paths are the ones checked against ggml's
// own bytes (test_gguf_blocks.cpp, bench/bench_quant.py, bench_imatrix.py),
// so equal bytes here carry that agreement over to the AVX2 paths.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "quant/gguf_blocks.hpp"
#include "quant/quantize.hpp"

namespace {

using namespace llmkit::quant;

// Restores the default (AVX2 allowed) however the test ends.
struct baseline_only {
    baseline_only() { set_avx2_quantizers(false); }
    ~baseline_only() { set_avx2_quantizers(true); }
};

std::vector<uint8_t> quantize(const type_traits &t, const std::vector<float> &x, int64_t rows, int64_t n,
                              const float *imatrix) {
    std::vector<uint8_t> out(rows_bytes(t, rows, n));
    f32_rows src;
    src.data = x.data();
    src.rows = rows;
    src.n = n;
    src.row_stride = n;
    quantize_rows(t, src, out.data(), 1, imatrix);
    return out;
}

// Row r of n floats, drawn by one of several recipes (r % 10); every group of
// 16 also gets, now and then, a special shape of its own.
std::vector<float> make_rows(int64_t rows, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    std::vector<float> x(size_t(rows * n));
    for (int64_t r = 0; r < rows; ++r) {
        float *row = x.data() + r * n;
        const float scale = std::ldexp(1.0f, int(r % 23) - 12);  // 2^-12 .. 2^10
        for (int64_t j = 0; j < n; ++j) {
            const float g = normal(rng);
            switch (r % 10) {
            case 0: row[j] = g * scale; break;
            case 1: row[j] = std::fabs(g) * scale + scale; break;    // all positive
            case 2: row[j] = -std::fabs(g) * scale - scale; break;   // all negative
            case 3: row[j] = float(int(g * 3)) * scale; break;       // few values: ties
            case 4: row[j] = uniform(rng) < 0.7f ? 0.0f : g; break;  // mostly zeros
            case 5: row[j] = g * g * g * scale; break;               // heavy tails
            case 6: row[j] = (g + 4.0f) * 1e-3f; break;              // narrow range away from 0
            case 7: row[j] = g * 1e4f; break;
            case 8: row[j] = std::round(g * 8) / 8; break;           // exact eighths
            default: row[j] = uniform(rng) * 2 - 1; break;
            }
        }
        for (int64_t g0 = 0; g0 + 16 <= n; g0 += 16) {
            const float u = uniform(rng);
            if (u < 0.05f)
                for (int j = 0; j < 16; ++j) row[g0 + j] = row[g0];  // flat group
            else if (u < 0.08f)
                for (int j = 0; j < 16; ++j) row[g0 + j] = 0.0f;
            else if (u < 0.10f)
                for (int j = 0; j < 16; ++j) row[g0 + j] = -0.0f;
            else if (u < 0.13f)
                row[g0 + 3] = -row[g0 + 7];  // a tie for the largest magnitude, maybe
        }
    }
    return x;
}

}  // namespace

TEST_CASE("AVX2 quantizers write the baseline quantizers' bytes", "[quant]") {
    if (!set_avx2_quantizers(true)) WARN("this CPU or build has no AVX2 quantizers: both runs take the same path");
    // n: 11 blocks of 32 (8 fitted together, 3 alone) or 2 super-blocks of 256.
    const char *names[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K",   "q3_K",  "q4_K",
                           "q5_K", "q6_K", "iq4_nl", "iq4_xs", "mxfp4", "f16", "bf16"};
    const int64_t rows = 40;
    std::mt19937 rng(99);
    std::gamma_distribution<float> gamma(0.3f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    for (const char *name : names) {
        const type_traits *t = find_type(name);
        REQUIRE(t != nullptr);
        const int64_t n = t->block_elems == 1 ? 331 : t->block_elems == 32 ? 352 : 512;  // 331: a tail after 8s
        const auto x = make_rows(rows, n, 5u + uint32_t(t->id));
        std::vector<float> imatrix(static_cast<size_t>(n)), sparse(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
            imatrix[size_t(j)] = gamma(rng) * 100;
            sparse[size_t(j)] = uniform(rng) < 0.5f ? 0.0f : imatrix[size_t(j)];
        }
        const std::vector<const float *> weightings = {nullptr, imatrix.data(), sparse.data()};
        for (const float *w : weightings) {
            INFO(name << (w == nullptr ? " without imatrix" : w == imatrix.data() ? " with imatrix" : " with a sparse imatrix"));
            std::vector<uint8_t> base;
            {
                const baseline_only off;
                base = quantize(*t, x, rows, n, w);
            }
            const auto simd = quantize(*t, x, rows, n, w);
            REQUIRE(simd.size() == base.size());
            const size_t rb = row_bytes(*t, n);
            int64_t bad_rows = 0, first_bad = -1;
            for (int64_t r = 0; r < rows; ++r)
                if (!std::equal(simd.begin() + r * rb, simd.begin() + (r + 1) * rb, base.begin() + r * rb)) {
                    if (first_bad < 0) first_bad = r;
                    ++bad_rows;
                }
            INFO(bad_rows << " of " << rows << " rows differ, the first is row " << first_bad);
            CHECK(bad_rows == 0);
        }
    }
}

namespace {

// Every float with the given top bits (sign, exponent, the mantissa bits that
// stay) and, below them, each of `tails` in the `dropped` bits that rounding
// removes: just below, at and above half, and the extremes. Encoded by the
// type's row quantizer on both paths (NaN included: quantize_rows would refuse
// it, the row quantizer takes it) and compared with `reference`.
template <typename Reference>
void check_rounding(const char *type, unsigned dropped, std::initializer_list<uint32_t> tails, Reference reference) {
    const size_t per_tail = size_t(1) << (32 - dropped);
    std::vector<float> x(per_tail * tails.size());
    size_t k = 0;
    for (uint32_t top = 0; top < per_tail; ++top)
        for (uint32_t tail : tails) {
            const uint32_t bits = top << dropped | tail;
            std::memcpy(&x[k++], &bits, 4);
        }
    const type_traits *t = find_type(type);
    REQUIRE(t != nullptr);
    for (bool avx2 : {true, false}) {
        INFO(type << (avx2 ? ", AVX2 path" : ", baseline path"));
        set_avx2_quantizers(avx2);
        std::vector<uint8_t> out(x.size() * 2);
        t->quantize_row(x.data(), out.data(), int64_t(x.size()));
        set_avx2_quantizers(true);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            uint16_t got;
            std::memcpy(&got, out.data() + 2 * i, 2);
            if (got != reference(x[i]) && bad++ == 0) first = i;
        }
        uint32_t first_bits;
        std::memcpy(&first_bits, &x[first], 4);
        INFO(bad << " values differ, the first has bits 0x" << std::hex << first_bits);
        CHECK(bad == 0);
    }
}

}  // namespace

TEST_CASE("block scales and F16 round exactly as core::f32_to_f16 at every rounding boundary", "[quant]") {
    // Every block quantizer stores its scales through an inline f16 rounding
    // (gguf_blocks.cpp); the F16 type's baseline path stores through it too,
    // its AVX2 path through F16C. 13 bits are rounded away.
    check_rounding("f16", 13, {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff},
                   [](float v) { return llmkit::core::f32_to_f16(v); });
}

TEST_CASE("BF16 rounds exactly as core::f32_to_bf16 at every rounding boundary, NaN included", "[quant]") {
    check_rounding("bf16", 16, {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff},
                   [](float v) { return llmkit::core::f32_to_bf16(v); });
}

TEST_CASE("F16 decodes every half exactly as core::f16_to_f32 (the F16C path and the baseline)", "[quant]") {
    // All 65536 halves, NaNs (quiet and signalling) and subnormals included,
    // in an order that puts NaNs next to ordinary values in the groups of 8.
    std::vector<uint16_t> h(65536);
    for (uint32_t i = 0; i < 65536; ++i) h[i] = uint16_t(i * 40503u);  // odd multiplier: a permutation
    const type_traits *t = find_type("f16");
    REQUIRE(t != nullptr);
    for (bool avx2 : {true, false}) {
        INFO((avx2 ? "AVX2 path" : "baseline path"));
        set_avx2_quantizers(avx2);
        std::vector<float> y(h.size());
        t->dequantize_row(h.data(), y.data(), int64_t(h.size()) - 3);  // a tail after the groups of 8
        t->dequantize_row(h.data() + h.size() - 3, y.data() + h.size() - 3, 3);
        set_avx2_quantizers(true);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < h.size(); ++i) {
            const float want = llmkit::core::f16_to_f32(h[i]);
            if (std::memcmp(&y[i], &want, 4) != 0 && bad++ == 0) first = i;
        }
        INFO(bad << " halves differ, the first is 0x" << std::hex << h[first]);
        CHECK(bad == 0);
    }
}
