// Core pieces: the thread pool, tensor validation, option structs, versions.
#include <catch2/catch.hpp>

#include <atomic>
#include <cfenv>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <stdexcept>

#include "core/error.hpp"
#include "core/file.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"
#include "core/tensor.hpp"
#include "llmkit/llmkit.hpp"
#include "support/test_support.hpp"

using namespace llmkit;

TEST_CASE("parallel_for runs every index exactly once and rethrows", "[core][threads]") {
    for (int threads : {1, 2, 4, 7}) {
        std::vector<std::atomic<int>> hits(1000);
        core::parallel_for(1000, threads, [&](int64_t i) { hits[size_t(i)]++; });
        for (auto &h : hits) CHECK(h.load() == 1);
    }
    CHECK_THROWS_AS(core::parallel_for(100, 3,
                                       [](int64_t i) {
                                           if (i == 42) throw std::runtime_error("task 42");
                                       }),
                    std::runtime_error);
    // The pool still works after a failure, and nested calls run serially.
    std::atomic<int> total{0};
    core::parallel_for(8, 4, [&](int64_t) { core::parallel_for(10, 4, [&](int64_t) { total++; }); });
    CHECK(total.load() == 80);
}

TEST_CASE("tensor_view validates and names the argument", "[core][tensor]") {
    float data[6] = {};
    int64_t shape[2] = {2, 3};
    llmkit_tensor t{data, {LLMKIT_DEVICE_CPU, 0}, 2, {LLMKIT_DTYPE_FLOAT, 32, 1}, shape, nullptr, 0};
    const auto v = core::tensor_view::from(&t, "x");
    CHECK(v.numel() == 6);
    CHECK(v.strides[0] == 3);
    CHECK(v.strides[1] == 1);
    CHECK(v.is_compact());
    CHECK(v.span_bytes() == 24);

    auto throws_status = [](const llmkit_tensor *tt, llmkit_status want, const char *needle) {
        try {
            core::tensor_view::from(tt, "x");
            FAIL("accepted");
        } catch (const core::error &e) {
            CHECK(e.status() == want);
            CHECK(std::string(e.what()).find(needle) != std::string::npos);
        }
    };
    throws_status(nullptr, LLMKIT_ERROR_NULL_POINTER, "x: tensor pointer is NULL");
    llmkit_tensor bad = t;
    bad.ndim = 9;
    throws_status(&bad, LLMKIT_ERROR_SHAPE, "ndim");
    bad = t;
    bad.dtype.lanes = 4;
    throws_status(&bad, LLMKIT_ERROR_DTYPE, "lanes");
    bad = t;
    int64_t neg[2] = {2, -1};
    bad.shape = neg;
    throws_status(&bad, LLMKIT_ERROR_SHAPE, "negative");
    bad = t;
    bad.data = nullptr;
    throws_status(&bad, LLMKIT_ERROR_NULL_POINTER, "data is NULL");
    bad = t;
    bad.device.device_type = 7;  // Vulkan in DLPack
    throws_status(&bad, LLMKIT_ERROR_NO_DEVICE, "device type 7");
    int64_t huge[2] = {int64_t(1) << 40, int64_t(1) << 40};
    bad = t;
    bad.shape = huge;
    throws_status(&bad, LLMKIT_ERROR_SHAPE, "overflows");
}

TEST_CASE("an option struct from an older header keeps the newer fields' defaults", "[core][abi]") {
    // Pretend a caller compiled against a header where llmkit_sample_params
    // ended after top_k: struct_size covers only that prefix.
    std::vector<float> logits{0.0f, 5.0f, 1.0f};
    int32_t tok = -1;
    llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
    p.temperature = 0.0f;
    p.top_p = 123.0f;  // invalid, but outside the declared prefix: must be ignored
    p.struct_size = uint32_t(offsetof(llmkit_sample_params, top_p));
    CHECK(llmkit_sample(f32(logits.data(), {3}).get(), i32(&tok, {}).get(), &p) == LLMKIT_OK);
    CHECK(tok == 1);
}

TEST_CASE("version information is consistent", "[core]") {
    CHECK(version() == LLMKIT_VERSION_STRING);
    CHECK(llmkit_version_number() == LLMKIT_VERSION_MAJOR * 10000 + LLMKIT_VERSION_MINOR * 100 + LLMKIT_VERSION_PATCH);
    for (int s = 0; s >= -14; --s) CHECK(std::string(llmkit_status_string(llmkit_status(s))).rfind("LLMKIT_", 0) == 0);
}

TEST_CASE("require_finite names the first NaN or infinity in index order, for any strides and 16-bit types",
          "[core][finite]") {
    std::mt19937 rng(29);
    const float specials[4] = {NAN, INFINITY, -INFINITY, -NAN};
    for (core::dtype t : {core::dtype::f32, core::dtype::bf16, core::dtype::f16})
        for (int trial = 0; trial < 60; ++trial) {
            // A 3-D view [a, b, n] into a larger buffer: rows padded, and
            // every fourth trial a last stride of 2.
            const int64_t a = 1 + trial % 3, b = 1 + (trial * 7) % 5, n = 1 + (trial * 13) % 70;
            const int64_t step = trial % 4 == 3 ? 2 : 1, pad = trial % 2;
            const int64_t s1 = n * step + pad, s0 = b * s1 + pad;
            const size_t es = t == core::dtype::f32 ? 4 : 2;
            std::vector<unsigned char> buf(size_t(a * s0) * es);
            std::normal_distribution<float> normal(0.0f, 100.0f);
            auto put = [&](int64_t off, float v) {
                if (t == core::dtype::f32) std::memcpy(buf.data() + size_t(off) * es, &v, 4);
                else {
                    const uint16_t u = t == core::dtype::bf16 ? core::f32_to_bf16(v) : core::f32_to_f16(v);
                    std::memcpy(buf.data() + size_t(off) * es, &u, 2);
                }
            };
            // Padding holds NaN: it must never be read.
            for (int64_t i = 0; i < a * s0; ++i) put(i, NAN);
            for (int64_t i = 0; i < a; ++i)
                for (int64_t j = 0; j < b; ++j)
                    for (int64_t k = 0; k < n; ++k) put(i * s0 + j * s1 + k * step, normal(rng));
            core::tensor_view v;
            v.name = "x";
            v.data = reinterpret_cast<char *>(buf.data());
            v.type = t;
            v.elem_size = es;
            v.ndim = 3;
            v.shape[0] = a, v.shape[1] = b, v.shape[2] = n;
            v.strides[0] = s0, v.strides[1] = s1, v.strides[2] = step;
            CHECK_NOTHROW(core::require_finite(v, 2));
            // Up to three bad values; the reference is the first in index order.
            std::uniform_int_distribution<int64_t> pick(0, a * b * n - 1);
            int64_t first = a * b * n;
            const int bad = 1 + trial % 3;
            for (int m = 0; m < bad; ++m) {
                const int64_t e = pick(rng);
                first = std::min(first, e);
                put((e / (b * n)) * s0 + (e / n % b) * s1 + (e % n) * step, specials[(trial + m) % 4]);
            }
            const std::string want = "x[" + std::to_string(first / (b * n)) + ", " + std::to_string(first / n % b) + ", " +
                                     std::to_string(first % n) + "] = ";
            try {
                core::require_finite(v, 1 + trial % 3);
                FAIL("no error for " << bad << " non-finite values");
            } catch (const core::error &err) {
                INFO("dtype " << core::dtype_name(t) << " message: " << err.what() << ", expected " << want);
                CHECK(err.status() == LLMKIT_ERROR_NON_FINITE);
                CHECK(std::string(err.what()).find(want) != std::string::npos);
            }
        }
    // The check reads bits: infinity and NaN raise no floating-point
    // exception flag (a trap enabled by the caller would fire on one).
    {
        std::vector<float> f(100, 1.5f);
        f[40] = INFINITY;
        f[41] = NAN;
        f[99] = -INFINITY;
        std::feclearexcept(FE_ALL_EXCEPT);
        CHECK_FALSE(core::all_finite(f.data(), int64_t(f.size())));
        CHECK(std::fetestexcept(FE_INVALID) == 0);
    }
    // Past the 8-, 16- and 32-value blocks of the vector loops, at every position.
    for (int64_t n : {7, 8, 9, 16, 17, 31, 32, 33, 64, 65, 95}) {
        for (int64_t pos = 0; pos < n; ++pos) {
            std::vector<float> f(size_t(n), 1.5f);
            std::vector<uint16_t> h(size_t(n), core::f32_to_bf16(1.5f)), g(size_t(n), core::f32_to_f16(1.5f));
            CHECK(core::all_finite(f.data(), n));
            CHECK(core::all_finite(h.data(), n, core::dtype::bf16));
            CHECK(core::all_finite(g.data(), n, core::dtype::f16));
            f[size_t(pos)] = -INFINITY;
            h[size_t(pos)] = core::f32_to_bf16(NAN);
            g[size_t(pos)] = core::f32_to_f16(INFINITY);
            CHECK_FALSE(core::all_finite(f.data(), n));
            CHECK(core::no_nan_or_positive_infinity(f.data(), n));  // -inf passes in a mask
            CHECK_FALSE(core::all_finite(h.data(), n, core::dtype::bf16));
            CHECK_FALSE(core::all_finite(g.data(), n, core::dtype::f16));
            f[size_t(pos)] = INFINITY;
            CHECK_FALSE(core::all_finite(f.data(), n));
            CHECK_FALSE(core::no_nan_or_positive_infinity(f.data(), n));
            f[size_t(pos)] = NAN;
            CHECK_FALSE(core::all_finite(f.data(), n));
            CHECK_FALSE(core::no_nan_or_positive_infinity(f.data(), n));
            f[size_t(pos)] = -NAN;
            CHECK_FALSE(core::all_finite(f.data(), n));
            // -0 and the smallest subnormal pass.
            f[size_t(pos)] = -0.0f;
            CHECK(core::all_finite(f.data(), n));
            f[size_t(pos)] = -1.4e-45f;
            CHECK(core::all_finite(f.data(), n));
            // The largest finite values pass.
            f[size_t(pos)] = 3.4028235e38f;
            h[size_t(pos)] = 0x7f7f;  // bf16 max
            g[size_t(pos)] = 0x7bff;  // f16 max (65504)
            CHECK(core::all_finite(f.data(), n));
            CHECK(core::all_finite(h.data(), n, core::dtype::bf16));
            CHECK(core::all_finite(g.data(), n, core::dtype::f16));
            // Negative: the most negative finite values pass; -inf and a
            // negative NaN (sign bit set) fail, as do the positive ones.
            f[size_t(pos)] = -3.4028235e38f;
            h[size_t(pos)] = 0xff7f;
            g[size_t(pos)] = 0xfbff;
            CHECK(core::all_finite(f.data(), n));
            CHECK(core::all_finite(h.data(), n, core::dtype::bf16));
            CHECK(core::all_finite(g.data(), n, core::dtype::f16));
            h[size_t(pos)] = 0xff80;  // bf16 -inf
            g[size_t(pos)] = 0xfe01;  // f16 negative NaN
            CHECK_FALSE(core::all_finite(h.data(), n, core::dtype::bf16));
            CHECK_FALSE(core::all_finite(g.data(), n, core::dtype::f16));
            h[size_t(pos)] = 0xffc1;  // bf16 negative NaN
            g[size_t(pos)] = 0xfc00;  // f16 -inf
            CHECK_FALSE(core::all_finite(h.data(), n, core::dtype::bf16));
            CHECK_FALSE(core::all_finite(g.data(), n, core::dtype::f16));
        }
    }
}

TEST_CASE("read_file and read_rest read whole files, pipes and the rest after a head", "[core][file]") {
    std::string contents;
    for (int i = 0; i < 200000; ++i) contents += char('a' + i * 7 % 26);  // larger than read_rest's 64 KiB chunk
    llmkit_test::temp_file f(contents);
    CHECK(llmkit::core::read_file(f.path) == contents);
    std::FILE *fp = std::fopen(f.path.c_str(), "rb");
    REQUIRE(fp);
    char head[100];
    REQUIRE(std::fread(head, 1, sizeof head, fp) == sizeof head);
    CHECK(llmkit::core::read_rest(fp, f.path) == contents.substr(sizeof head));
    std::fclose(fp);
    // A pipe cannot seek: read in chunks.
    std::FILE *pipe = popen("head -c 150000 /dev/zero", "r");
    REQUIRE(pipe);
    CHECK(llmkit::core::read_rest(pipe, "pipe") == std::string(150000, '\0'));
    pclose(pipe);
    llmkit_test::temp_file empty("");
    CHECK(llmkit::core::read_file(empty.path).empty());
    try {
        llmkit::core::read_file(f.path + ".missing");
        FAIL("no error");
    } catch (const llmkit::core::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_IO);
        CHECK_THAT(e.what(), Catch::Contains("cannot open") && Catch::Contains(".missing"));
    }
}
