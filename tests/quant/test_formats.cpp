// Non-GGUF formats through the C API: FP8 rounding against a float64
// reference written here from the OCP FP8 spec (over a sweep of float32 bit
// patterns), NF4/FP4 against bitsandbytes' tables, int8 and int4 error bounds,
// plane layouts, conversions, and every error case of the new entry points.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.h"
#include "support/test_support.hpp"
#include "quant/formats.hpp"

namespace {

using llmkit_test::f32_tensor;

// float32 -> FP8 from the spec, in float64: enumerate the finite values, take
// the nearest, ties to the even code. Out of range as torch's casts do it:
// E4M3 saturates to the largest finite value 448 (code 0x7e, infinities
// too); E5M2 rounds into its infinity 0x7c (a virtual slot at 65536).
uint8_t fp8_reference(float x, bool e4m3) {
    const int ebits = e4m3 ? 4 : 5, mbits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
    const uint8_t sign = std::signbit(x) ? 0x80 : 0;
    const int top = e4m3 ? 0x7e : 0x7c;  // E4M3: saturate at 448; E5M2: the infinity slot
    if (std::isnan(x)) return uint8_t(sign | 0x7f);
    const double a = std::fabs(double(x));
    double best = -1, best_d = INFINITY;
    int best_code = 0;
    for (int code = 0; code <= top; ++code) {
        const int e = code >> mbits, m = code & ((1 << mbits) - 1);
        double v = e == 0 ? m * std::ldexp(1.0, 1 - bias - mbits) : (1 + m / double(1 << mbits)) * std::ldexp(1.0, e - bias);
        (void)ebits;
        const double d = std::fabs(v - a);
        if (d < best_d || (d == best_d && code % 2 == 0)) best_d = d, best = v, best_code = code;
    }
    (void)best;
    if (a >= (e4m3 ? 448.0 : 65536.0)) best_code = top;
    return uint8_t(sign | best_code);
}

float bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

std::vector<float> weights(int64_t rows, int64_t n, uint32_t seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<float> w(size_t(rows * n));
    for (auto &v : w) v = nd(gen);
    return w;
}

std::vector<uint8_t> quantize(int32_t type, std::vector<float> &x, int64_t rows, int64_t n,
                              const llmkit_quantize_options *o = nullptr) {
    const int64_t shape[2] = {rows, n};
    llmkit_tensor t = f32_tensor(x.data(), shape, 2);
    size_t need = 0;
    REQUIRE(llmkit_quantize(&need, type, &t, nullptr, 0, o) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    std::vector<uint8_t> out(need);
    REQUIRE(llmkit_quantize(&need, type, &t, out.data(), out.size(), o) == LLMKIT_OK);
    return out;
}

std::vector<float> dequantize(int32_t type, const std::vector<uint8_t> &q, int64_t rows, int64_t n) {
    std::vector<float> y(size_t(rows * n));
    const int64_t shape[2] = {rows, n};
    llmkit_tensor t = f32_tensor(y.data(), shape, 2);
    REQUIRE(llmkit_dequantize(type, q.data(), q.size(), &t, nullptr) == LLMKIT_OK);
    return y;
}

std::vector<llmkit_quant_plane> planes(int32_t type, int64_t rows, int64_t n) {
    size_t count = 0;
    REQUIRE(llmkit_quant_planes(nullptr, 0, &count, type, rows, n) == LLMKIT_OK);
    std::vector<llmkit_quant_plane> p(count);
    REQUIRE(llmkit_quant_planes(p.data(), p.size(), &count, type, rows, n) == LLMKIT_OK);
    return p;
}

}  // namespace

TEST_CASE("fp8: float32 -> e4m3 / e5m2 rounding equals the float64 spec reference", "[formats][fp8]") {
    // Every 4099th bit pattern (all exponents, signs, NaNs and infinities),
    // plus every float within 3 ulps of each midpoint between FP8 values.
    std::vector<float> xs;
    for (uint64_t u = 0; u <= 0xffffffffull; u += 4099) xs.push_back(bits_to_float(uint32_t(u)));
    for (int e4 = 0; e4 < 2; ++e4) {
        for (int c = 0; c < 0x7f; ++c) {
            const float a = e4 ? llmkit::quant::e4m3_to_f32(uint8_t(c)) : llmkit::quant::e5m2_to_f32(uint8_t(c));
            const float b = e4 ? llmkit::quant::e4m3_to_f32(uint8_t(c + 1)) : llmkit::quant::e5m2_to_f32(uint8_t(c + 1));
            if (!std::isfinite(b)) continue;
            float mid = float((double(a) + double(b)) / 2);
            for (int k = 0; k < 3; ++k) mid = std::nextafter(mid, 0.0f);
            for (int k = 0; k < 7; ++k, mid = std::nextafter(mid, INFINITY)) {
                xs.push_back(mid);
                xs.push_back(-mid);
            }
        }
    }
    size_t bad4 = 0, bad5 = 0;
    for (float x : xs) {
        bad4 += llmkit::quant::f32_to_e4m3(x) != fp8_reference(x, true);
        bad5 += llmkit::quant::f32_to_e5m2(x) != fp8_reference(x, false);
    }
    CHECK(bad4 == 0);
    CHECK(bad5 == 0);
    CHECK(xs.size() > 1000000);
}

TEST_CASE("fp8: decoding tables", "[formats][fp8]") {
    using namespace llmkit::quant;
    CHECK(e4m3_to_f32(0x7e) == 448.0f);
    CHECK(std::isnan(e4m3_to_f32(0x7f)));
    CHECK(std::isnan(e4m3_to_f32(0xff)));
    CHECK(e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));
    CHECK(e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));
    CHECK(e5m2_to_f32(0x7b) == 57344.0f);
    CHECK(std::isinf(e5m2_to_f32(0x7c)));
    CHECK(std::isnan(e5m2_to_f32(0x7d)));
    CHECK(e5m2_to_f32(0x01) == std::ldexp(1.0f, -16));
    CHECK(e5m2_to_f32(0xc0) == -2.0f);
    // Round trips: every finite code decodes to a float that encodes back to it.
    for (int c = 0; c < 256; ++c) {
        const float a = e4m3_to_f32(uint8_t(c)), b = e5m2_to_f32(uint8_t(c));
        if (!std::isnan(a)) CHECK(f32_to_e4m3(a) == c);
        if (!std::isnan(b)) CHECK(f32_to_e5m2(b) == c);
    }
}

TEST_CASE("fp8: scaled tensors stay in range and within half an ulp", "[formats][fp8]") {
    for (int32_t type : {LLMKIT_QUANT_FP8_E4M3, LLMKIT_QUANT_FP8_E5M2, LLMKIT_QUANT_FP8_E4M3_CHANNEL,
                         LLMKIT_QUANT_FP8_E5M2_CHANNEL}) {
        auto w = weights(16, 64, 7);
        w[5] = 300.0f;  // one huge outlier
        for (int j = 0; j < 64; ++j) w[size_t(3 * 64 + j)] = 0.0f;  // an all-zero row
        const auto q = quantize(type, w, 16, 64);
        const auto y = dequantize(type, q, 16, 64);
        const bool e4 = type == LLMKIT_QUANT_FP8_E4M3 || type == LLMKIT_QUANT_FP8_E4M3_CHANNEL;
        const double rel = e4 ? 1.0 / 16 : 1.0 / 8;
        const auto p = planes(type, 16, 64);
        for (int64_t r = 0; r < 16; ++r) {
            float s;
            const bool channel = p[1].shape[0] == 16;
            std::memcpy(&s, q.data() + p[1].offset + (channel ? size_t(r) * 4 : 0), 4);
            for (int64_t j = 0; j < 64; ++j) {
                const double x = w[size_t(r * 64 + j)], e = std::fabs(double(y[size_t(r * 64 + j)]) - x);
                CHECK(std::isfinite(y[size_t(r * 64 + j)]));
                const double sub = (e4 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -17)) * s;
                CHECK(e <= std::max(rel * std::fabs(x), sub) * (1 + 1e-6));
            }
        }
    }
}

TEST_CASE("nf4 / fp4: levels, nearest-level choice, packing order", "[formats][bnb4]") {
    using namespace llmkit::quant;
    // The levels are sorted (NF4) and the choice is the nearest level.
    std::mt19937 gen(3);
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    for (int i = 0; i < 100000; ++i) {
        const float y = ud(gen);
        double best = INFINITY;
        int bi = 0;
        for (int k = 0; k < 16; ++k)
            if (std::fabs(double(nf4_code[k]) - y) < best) best = std::fabs(double(nf4_code[k]) - y), bi = k;
        REQUIRE(std::fabs(double(nf4_code[nf4_index(y)]) - y) <= best + 1e-7);
        (void)bi;
        double bf = INFINITY;
        for (int k = 0; k < 16; ++k) bf = std::min(bf, std::fabs(double(fp4_code[k]) - y));
        REQUIRE(std::fabs(double(fp4_code[fp4_index(y)]) - y) <= bf + 1e-7);
    }
    CHECK(nf4_index(0.0f) == 7);
    CHECK(nf4_index(1.0f) == 15);
    CHECK(nf4_index(-1.0f) == 0);
    CHECK(fp4_index(1.0f) == 3);
    CHECK(fp4_index(-1.0f) == 11);
    CHECK(fp4_index(0.0f) == 0);
    // Packing: first element in the high nibble.
    std::vector<float> x(64, 0.0f);
    x[0] = -1.0f;
    x[1] = 1.0f;
    const auto q = quantize(LLMKIT_QUANT_NF4, x, 1, 64);
    CHECK(q[0] == 0x0f);
    CHECK(q[1] == 0x77);
}

TEST_CASE("int8: round trip within half a step; zero groups; outliers", "[formats][int8]") {
    for (int32_t type : {LLMKIT_QUANT_INT8, LLMKIT_QUANT_INT8_G32, LLMKIT_QUANT_INT8_G128, LLMKIT_QUANT_INT8_ASYM,
                         LLMKIT_QUANT_INT8_ASYM_G64}) {
        auto w = weights(8, 256, 11);
        w[3] = 1e30f;
        for (int j = 0; j < 256; ++j) w[size_t(256 + j)] = 0.0f;
        const auto q = quantize(type, w, 8, 256);
        const auto y = dequantize(type, q, 8, 256);
        const auto p = planes(type, 8, 256);
        const int64_t groups = p[1].shape[1], g = 256 / groups;
        const bool asym = p.size() == 3;
        for (int64_t r = 0; r < 8; ++r)
            for (int64_t j = 0; j < 256; ++j) {
                float s;
                std::memcpy(&s, q.data() + p[1].offset + size_t(r * groups + j / g) * 4, 4);
                const double e = std::fabs(double(y[size_t(r * 256 + j)]) - w[size_t(r * 256 + j)]);
                REQUIRE(e <= double(s) * (asym ? 1.0 : 0.5) * (1 + 1e-5) + 1e-37);
                if (r == 1) REQUIRE(y[size_t(r * 256 + j)] == 0.0f);
            }
    }
}

TEST_CASE("gptq / awq int4: planes, round trip, lossless Q4_0 conversion", "[formats][int4]") {
    auto w = weights(16, 128, 5);
    const auto g = quantize(LLMKIT_QUANT_GPTQ_INT4_G32, w, 16, 128);
    const auto p = planes(LLMKIT_QUANT_GPTQ_INT4_G32, 16, 128);
    REQUIRE(p.size() == 4);
    CHECK(std::string(p[0].name) == "qweight");
    CHECK(p[0].shape[0] == 16);  // 128 / 8
    CHECK(p[0].shape[1] == 16);
    CHECK(p[2].dtype.bits == 16);
    CHECK(std::string(p[3].name) == "g_idx");
    const auto y = dequantize(LLMKIT_QUANT_GPTQ_INT4_G32, g, 16, 128);

    size_t need = 0;
    llmkit_quant_convert_stats st = LLMKIT_QUANT_CONVERT_STATS_INIT;
    REQUIRE(llmkit_quant_convert(&need, LLMKIT_QUANT_Q4_0, nullptr, 0, LLMKIT_QUANT_GPTQ_INT4_G32, g.data(), g.size(),
                                 16, 128, nullptr, &st) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(need == 16 * 4 * 18);
    std::vector<uint8_t> q4(need);
    REQUIRE(llmkit_quant_convert(&need, LLMKIT_QUANT_Q4_0, q4.data(), q4.size(), LLMKIT_QUANT_GPTQ_INT4_G32, g.data(),
                                 g.size(), 16, 128, nullptr, &st) == LLMKIT_OK);
    CHECK(st.lossless == 1);
    CHECK(st.max_abs_error == 0.0);
    CHECK(dequantize(LLMKIT_QUANT_Q4_0, q4, 16, 128) == y);

    // Asymmetric GPTQ -> Q4_0 goes through float: lossy, and the stats say how much.
    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.zero_point = LLMKIT_QUANT_ZERO_POINT_ASYMMETRIC;
    const auto ga = quantize(LLMKIT_QUANT_GPTQ_INT4_G32, w, 16, 128, &o);
    REQUIRE(llmkit_quant_convert(&need, LLMKIT_QUANT_Q4_0, q4.data(), q4.size(), LLMKIT_QUANT_GPTQ_INT4_G32, ga.data(),
                                 ga.size(), 16, 128, nullptr, &st) == LLMKIT_OK);
    CHECK(st.lossless == 0);
    const auto ya = dequantize(LLMKIT_QUANT_GPTQ_INT4_G32, ga, 16, 128), yq = dequantize(LLMKIT_QUANT_Q4_0, q4, 16, 128);
    double m = 0;
    for (size_t i = 0; i < ya.size(); ++i) m = std::max(m, std::fabs(double(ya[i]) - yq[i]));
    CHECK(st.max_abs_error == m);
    CHECK(m > 0);

    // AWQ round trip within half a step (plus the f16 scale's rounding).
    const auto a = quantize(LLMKIT_QUANT_AWQ_INT4_G128, w, 16, 128);
    const auto ay = dequantize(LLMKIT_QUANT_AWQ_INT4_G128, a, 16, 128);
    for (int64_t r = 0; r < 16; ++r) {
        float lo = INFINITY, hi = -INFINITY;
        for (int j = 0; j < 128; ++j) lo = std::min(lo, w[size_t(r * 128 + j)]), hi = std::max(hi, w[size_t(r * 128 + j)]);
        for (int j = 0; j < 128; ++j)
            REQUIRE(std::fabs(ay[size_t(r * 128 + j)] - w[size_t(r * 128 + j)]) <= 0.51 * (hi - lo) / 15 + 1e-6);
    }
}

TEST_CASE("formats: C API errors", "[formats][errors]") {
    std::vector<float> x(8 * 128, 1.0f);
    const int64_t shape[2] = {8, 128};
    llmkit_tensor t = f32_tensor(x.data(), shape, 2);
    std::vector<uint8_t> buf(1 << 16);
    size_t need = 0;
    int32_t id = 0;
    REQUIRE(llmkit_quant_type_from_name(&id, "GPTQ_int4_G128") == LLMKIT_OK);
    CHECK(id == LLMKIT_QUANT_GPTQ_INT4_G128);
    CHECK(std::string(llmkit_quant_type_name(LLMKIT_QUANT_FP8_E4M3)) == "fp8_e4m3");
    CHECK(llmkit_quant_type_name(1099) == nullptr);
    CHECK(llmkit_quant_block_size(nullptr, nullptr, LLMKIT_QUANT_NF4) == LLMKIT_ERROR_UNSUPPORTED);
    CHECK(llmkit_quant_row_bytes(&need, LLMKIT_QUANT_INT8, 128) == LLMKIT_ERROR_UNSUPPORTED);
    CHECK(llmkit_quant_tensor_bytes(nullptr, LLMKIT_QUANT_INT8, 8, 128) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_quant_tensor_bytes(&need, 1099, 8, 128) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_quant_tensor_bytes(&need, LLMKIT_QUANT_INT8_G128, 8, 96) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_quant_tensor_bytes(&need, LLMKIT_QUANT_GPTQ_INT4_G32, 4, 128) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_quant_tensor_bytes(&need, LLMKIT_QUANT_INT8, -1, 128) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_quant_tensor_bytes(&need, LLMKIT_QUANT_INT8, INT64_MAX / 2, INT64_MAX / 2) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_quant_tensor_bytes(&need, LLMKIT_QUANT_NF4, INT64_MAX, 4) == LLMKIT_ERROR_SHAPE);
    REQUIRE(llmkit_quant_tensor_bytes(&need, LLMKIT_QUANT_Q8_0, 8, 128) == LLMKIT_OK);
    CHECK(need == 8 * 4 * 34);
    llmkit_quant_plane one;
    size_t count = 0;
    CHECK(llmkit_quant_planes(&one, 1, &count, LLMKIT_QUANT_INT8, 8, 128) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(count == 2);
    REQUIRE(llmkit_quant_planes(&one, 1, &count, LLMKIT_QUANT_Q4_K, 8, 256) == LLMKIT_OK);
    CHECK(std::string(one.name) == "blocks");
    CHECK(one.bytes == 8 * 144);

    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.zero_point = 3;
    CHECK(llmkit_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &t, buf.data(), buf.size(), &o) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    // A zero-point choice for a type without one is refused, not ignored:
    // the int8, NF4 and FP8 formats, the GGUF blocks, and conversions to them.
    o.zero_point = LLMKIT_QUANT_ZERO_POINT_ASYMMETRIC;
    for (int32_t type : {int32_t(LLMKIT_QUANT_INT8), int32_t(LLMKIT_QUANT_NF4), int32_t(LLMKIT_QUANT_FP8_E4M3),
                         int32_t(LLMKIT_QUANT_Q8_0)}) {
        CHECK(llmkit_quantize(&need, type, &t, buf.data(), buf.size(), &o) == LLMKIT_ERROR_UNSUPPORTED);
        CHECK(std::string(llmkit_last_error_message()).find("zero_point applies to the int4 packings") !=
              std::string::npos);
    }
    {
        std::vector<uint8_t> q8(8 * 4 * 34), q4(8 * 4 * 18);
        REQUIRE(llmkit_quantize(&need, LLMKIT_QUANT_Q8_0, &t, q8.data(), q8.size(), nullptr) == LLMKIT_OK);
        CHECK(llmkit_quant_convert(&need, LLMKIT_QUANT_Q4_0, q4.data(), q4.size(), LLMKIT_QUANT_Q8_0, q8.data(),
                                   q8.size(), 8, 128, &o, nullptr) == LLMKIT_ERROR_UNSUPPORTED);
        // into an int4 packing the choice applies
        CHECK(llmkit_quant_convert(&need, LLMKIT_QUANT_GPTQ_INT4_G32, nullptr, 0, LLMKIT_QUANT_Q8_0, q8.data(),
                                   q8.size(), 8, 128, &o, nullptr) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
        std::vector<uint8_t> g(need);
        CHECK(llmkit_quant_convert(&need, LLMKIT_QUANT_GPTQ_INT4_G32, g.data(), g.size(), LLMKIT_QUANT_Q8_0, q8.data(),
                                   q8.size(), 8, 128, &o, nullptr) == LLMKIT_OK);
    }
    o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.struct_size = sizeof(o) + 4;
    CHECK(llmkit_quantize(&need, LLMKIT_QUANT_INT8, &t, buf.data(), buf.size(), &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
    // An options struct from before zero_point existed still works.
    o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.struct_size = uint32_t(offsetof(llmkit_quantize_options, zero_point));
    CHECK(llmkit_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &t, buf.data(), buf.size(), &o) == LLMKIT_OK);
    CHECK(llmkit_quantize(&need, LLMKIT_QUANT_NF4, nullptr, buf.data(), buf.size(), nullptr) == LLMKIT_ERROR_NULL_POINTER);
    // No rows: int8 (row scales) needs 0 bytes, and then NULL buffers are fine
    // both ways (the quantizer cleared a NULL dst of 0 bytes with memset,
    // undefined behaviour; found by fuzz_quant_api under UBSan); the others
    // still need the bytes of their scales or column arrays.
    {
        const int64_t empty_shape[2] = {0, 128};
        llmkit_tensor empty = f32_tensor(x.data(), empty_shape, 2);
        for (int32_t type : {LLMKIT_QUANT_INT8, LLMKIT_QUANT_GPTQ_INT4_G32, LLMKIT_QUANT_NF4, LLMKIT_QUANT_FP8_E4M3}) {
            need = 1;
            const llmkit_status probe = llmkit_quantize(&need, type, &empty, nullptr, 0, nullptr);
            INFO("type " << type << ", " << need << " bytes: " << llmkit_last_error_message());
            if (type == LLMKIT_QUANT_INT8) CHECK(need == 0);
            CHECK(probe == (need == 0 ? LLMKIT_OK : LLMKIT_ERROR_BUFFER_TOO_SMALL));
            std::vector<uint8_t> q(need);
            CHECK(llmkit_quantize(&need, type, &empty, need ? q.data() : nullptr, need, nullptr) == LLMKIT_OK);
            CHECK(llmkit_dequantize(type, need ? q.data() : nullptr, need, &empty, nullptr) == LLMKIT_OK);
        }
    }
    CHECK(llmkit_quantize(&need, LLMKIT_QUANT_NF4, &t, buf.data(), 10, nullptr) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(need == 512 + 16 * 4);  // 512 packed bytes, then 16 absmax floats at offset 512
    x[77] = NAN;
    CHECK(llmkit_quantize(&need, LLMKIT_QUANT_FP8_E4M3, &t, buf.data(), buf.size(), nullptr) == LLMKIT_ERROR_NON_FINITE);
    CHECK(std::string(llmkit_last_error_message()).find("src[0, 77]") != std::string::npos);
    x[77] = 1.0f;
    const int64_t big[2] = {8, 128};
    llmkit_tensor d = f32_tensor(x.data(), big, 2);
    CHECK(llmkit_dequantize(LLMKIT_QUANT_INT8, buf.data(), 5, &d, nullptr) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_dequantize(LLMKIT_QUANT_INT8, nullptr, 8 * 128 + 32, &d, nullptr) == LLMKIT_ERROR_NULL_POINTER);

    // A GPTQ tensor whose g_idx points outside the groups is a format error.
    auto w = weights(8, 128, 1);
    auto g = quantize(LLMKIT_QUANT_GPTQ_INT4_G32, w, 8, 128);
    const auto p = planes(LLMKIT_QUANT_GPTQ_INT4_G32, 8, 128);
    const int32_t bad = 9;
    std::memcpy(g.data() + p[3].offset + 4 * 5, &bad, 4);
    std::vector<float> y(8 * 128);
    llmkit_tensor yt = f32_tensor(y.data(), big, 2);
    CHECK(llmkit_dequantize(LLMKIT_QUANT_GPTQ_INT4_G32, g.data(), g.size(), &yt, nullptr) == LLMKIT_ERROR_FORMAT);
    CHECK(std::string(llmkit_last_error_message()).find("g_idx[5] = 9") != std::string::npos);

    // Conversion errors.
    llmkit_quant_convert_stats st = LLMKIT_QUANT_CONVERT_STATS_INIT;
    CHECK(llmkit_quant_convert(&need, LLMKIT_QUANT_Q4_0, buf.data(), buf.size(), LLMKIT_QUANT_GPTQ_INT4_G32, g.data(),
                               g.size() - 1, 8, 128, nullptr, &st) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_quant_convert(&need, 1099, buf.data(), buf.size(), LLMKIT_QUANT_GPTQ_INT4_G32, g.data(), g.size(), 8,
                               128, nullptr, &st) == LLMKIT_ERROR_INVALID_ARGUMENT);
    st.struct_size = 2;
    CHECK(llmkit_quant_convert(&need, LLMKIT_QUANT_Q8_0, buf.data(), buf.size(), LLMKIT_QUANT_INT8, buf.data(),
                               8 * 128 + 32, 8, 128, nullptr, &st) == LLMKIT_ERROR_INVALID_ARGUMENT);
    // A stats struct from an older header gets only its own fields.
    llmkit_quant_convert_stats old = LLMKIT_QUANT_CONVERT_STATS_INIT;
    old.struct_size = uint32_t(offsetof(llmkit_quant_convert_stats, rms_error));
    old.rms_error = -7.0;
    auto q8 = quantize(LLMKIT_QUANT_INT8, w, 8, 128);
    REQUIRE(llmkit_quant_convert(&need, LLMKIT_QUANT_Q8_0, buf.data(), buf.size(), LLMKIT_QUANT_INT8, q8.data(),
                                 q8.size(), 8, 128, nullptr, &old) == LLMKIT_OK);
    CHECK(old.rms_error == -7.0);
    CHECK(old.max_abs_error > 0);
}

TEST_CASE("nf4 / fp4: the block kernel picks nf4_index / fp4_index of every value", "[formats][bnb4]") {
    using namespace llmkit::quant;
    // Values: random, every threshold exactly (amax 1, so y = x) and its float
    // neighbours, the levels themselves, +-0, +-inf and NaN.
    std::vector<float> vals;
    std::mt19937 gen(11);
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    for (int i = 0; i < 20000; ++i) vals.push_back(ud(gen));
    for (const float *code : {nf4_code, fp4_code})
        for (int k = 0; k < 16; ++k)
            for (int m = 0; m < 16; ++m) {
                const float t = float((double(code[k]) + double(code[m])) / 2.0);
                vals.insert(vals.end(), {t, std::nextafter(t, 2.0f), std::nextafter(t, -2.0f), code[k]});
            }
    vals.insert(vals.end(), {0.0f, -0.0f, INFINITY, -INFINITY, NAN});
    for (int variant = 0; variant < 2; ++variant)
        for (float amax : {1.0f, 0.37f, 1e-39f /* 1 / amax overflows: divides */}) {
            for (size_t at = 0; at < vals.size(); at += 61) {
                const int len = int(std::min<size_t>(61, vals.size() - at));  // odd lengths too
                std::vector<float> x(vals.begin() + std::ptrdiff_t(at), vals.begin() + std::ptrdiff_t(at) + len);
                for (float &v : x) v *= amax;  // y = x / amax is the value again (up to rounding)
                uint8_t idx[64];
                bnb4_block_indices(variant, x.data(), len, amax, idx);
                const float inv = 1.0f / amax;
                for (int k = 0; k < len; ++k) {
                    const float y = std::isinf(inv) ? x[size_t(k)] / amax : x[size_t(k)] * inv;
                    INFO("variant " << variant << ", amax " << amax << ", y = " << y);
                    REQUIRE(int(idx[k]) == int(variant == 0 ? nf4_index(y) : fp4_index(y)));
                }
            }
        }
    uint8_t idx[3];
    const float zeros[3] = {0.0f, -0.0f, 0.0f};
    bnb4_block_indices(0, zeros, 3, 0.0f, idx);  // an all-zero block: the index of 0
    CHECK((idx[0] == 7 && idx[1] == 7 && idx[2] == 7));
}
