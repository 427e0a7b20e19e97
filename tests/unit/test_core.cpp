// Core pieces: the thread pool, tensor validation, option structs, versions.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <stdexcept>

#include "core/threads.hpp"
#include "core/tensor.hpp"
#include "llmkit/llmkit.hpp"

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
