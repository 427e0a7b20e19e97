// Helpers shared by the Catch2 test executables: whole-file reads, scratch
// files, UTF-8 encoding, and llmkit_tensor views of plain float arrays. Header-only; every
// test target has tests/ on its include path (#include "support/test_support.hpp").
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "llmkit/llmkit.h"

namespace llmkit_test {

// The whole file as bytes; a missing file fails the test that asked.
inline std::string read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    INFO("reading " << path);
    REQUIRE(f.good());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A scratch file in the working directory, removed when it goes out of scope.
// The name carries the process id and the object's address, so scratch files
// of tests running at once (ctest -j, threads) never clash.
struct temp_file {
    std::string path;
    explicit temp_file(const std::string &contents, const char *ext = ".tmp") {
        path = "llmkit_test_" + std::to_string(long(getpid())) + "_" +
               std::to_string(reinterpret_cast<uintptr_t>(this)) + ext;
        std::ofstream(path, std::ios::binary) << contents;
    }
    temp_file(const temp_file &) = delete;
    temp_file &operator=(const temp_file &) = delete;
    ~temp_file() { std::remove(path.c_str()); }
};

// A host tensor of any dtype over data; strides in elements, nullptr for contiguous.
inline llmkit_tensor host_tensor(void *data, const int64_t *shape, int ndim, llmkit_dtype dtype,
                                 const int64_t *strides = nullptr) {
    llmkit_tensor t;
    t.data = data;
    t.device = LLMKIT_DEVICE_HOST;
    t.ndim = ndim;
    t.dtype = dtype;
    t.shape = shape;
    t.strides = strides;
    t.byte_offset = 0;
    return t;
}

// Appends code point cp (at most 0x10FFFF) to s as UTF-8.
inline void append_utf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
        s += char(cp);
    } else if (cp < 0x800) {
        s += char(0xC0 | cp >> 6);
        s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += char(0xE0 | cp >> 12);
        s += char(0x80 | (cp >> 6 & 0x3F));
        s += char(0x80 | (cp & 0x3F));
    } else {
        s += char(0xF0 | cp >> 18);
        s += char(0x80 | (cp >> 12 & 0x3F));
        s += char(0x80 | (cp >> 6 & 0x3F));
        s += char(0x80 | (cp & 0x3F));
    }
}

// A host float32 tensor over data; strides in elements, nullptr for contiguous.
inline llmkit_tensor f32_tensor(float *data, const int64_t *shape, int ndim, const int64_t *strides = nullptr) {
    return host_tensor(data, shape, ndim, LLMKIT_DTYPE_F32, strides);
}

}  // namespace llmkit_test
