// The llmkit_gguf_* C ABI: handles, value getters (nested arrays included),
// the writer, and the errors every entry point must report instead of crashing.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "llmkit/llmkit.h"

namespace {

struct file_ptr {
    llmkit_gguf_file *f = nullptr;
    ~file_ptr() { llmkit_gguf_close(f); }
};
struct writer_ptr {
    llmkit_gguf_writer *w = nullptr;
    writer_ptr() { REQUIRE(llmkit_gguf_writer_new(&w) == LLMKIT_OK); }
    ~writer_ptr() { llmkit_gguf_writer_free(w); }
};

std::string temp_path(const char *tag) {
    return "/tmp/llmkit_gguf_capi_" + std::to_string(::getpid()) + "_" + tag + ".gguf";
}

}  // namespace

TEST_CASE("C ABI: write, reopen from disk and memory, read every kind of value", "[gguf]") {
    writer_ptr w;
    const uint32_t n_layers = 7;
    REQUIRE(llmkit_gguf_writer_set_kv(w.w, "llama.block_count", LLMKIT_GGUF_UINT32, &n_layers, 4) == LLMKIT_OK);
    REQUIRE(llmkit_gguf_writer_set_kv(w.w, "general.name", LLMKIT_GGUF_STRING, "tiny", 4) == LLMKIT_OK);
    const uint8_t yes = 1;
    REQUIRE(llmkit_gguf_writer_set_kv(w.w, "flag", LLMKIT_GGUF_BOOL, &yes, 1) == LLMKIT_OK);
    const uint64_t big = ~0ull;
    REQUIRE(llmkit_gguf_writer_set_kv(w.w, "big", LLMKIT_GGUF_UINT64, &big, 8) == LLMKIT_OK);
    const double d = -2.5;
    REQUIRE(llmkit_gguf_writer_set_kv(w.w, "d", LLMKIT_GGUF_FLOAT64, &d, 8) == LLMKIT_OK);
    const int16_t shorts[3] = {-1, 2, -3};
    REQUIRE(llmkit_gguf_writer_set_array(w.w, "shorts", LLMKIT_GGUF_INT16, shorts, 3) == LLMKIT_OK);
    const char *strs[2] = {"a", "bc"};
    REQUIRE(llmkit_gguf_writer_set_string_array(w.w, "strs", strs, nullptr, 2) == LLMKIT_OK);
    REQUIRE(llmkit_gguf_writer_set_kv(w.w, "gone", LLMKIT_GGUF_UINT32, &n_layers, 4) == LLMKIT_OK);
    REQUIRE(llmkit_gguf_writer_remove_kv(w.w, "gone") == LLMKIT_OK);
    const float x[64] = {1.0f};
    const int64_t dims[2] = {32, 2};
    REQUIRE(llmkit_gguf_writer_add_tensor(w.w, "w", LLMKIT_QUANT_F32, dims, 2, x, sizeof x) == LLMKIT_OK);
    const std::string path = temp_path("rt");
    REQUIRE(llmkit_gguf_writer_write(w.w, path.c_str()) == LLMKIT_OK);

    file_ptr f;
    REQUIRE(llmkit_gguf_open(&f.f, path.c_str(), nullptr) == LLMKIT_OK);
    llmkit_gguf_file_info info;
    REQUIRE(llmkit_gguf_file_get_info(&info, f.f) == LLMKIT_OK);
    CHECK(info.version == 3);
    CHECK(info.n_metadata == 7);
    CHECK(info.n_tensors == 1);
    CHECK(info.alignment == 32);

    int64_t i = -2;
    REQUIRE(llmkit_gguf_find_key(&i, f.f, "llama.block_count") == LLMKIT_OK);
    REQUIRE(i == 0);
    const char *key = nullptr;
    size_t key_len = 0;
    REQUIRE(llmkit_gguf_metadata_key(&key, &key_len, f.f, i) == LLMKIT_OK);
    CHECK(std::string(key) == "llama.block_count");
    CHECK(key_len == 17);
    const llmkit_gguf_value *v = nullptr;
    REQUIRE(llmkit_gguf_metadata_value(&v, f.f, i) == LLMKIT_OK);
    int32_t type = -1, elem = 0;
    uint64_t count = 0;
    REQUIRE(llmkit_gguf_value_type(&type, &elem, &count, v) == LLMKIT_OK);
    CHECK(type == LLMKIT_GGUF_UINT32);
    CHECK(elem == -1);
    CHECK(count == 1);
    int64_t iv = 0;
    REQUIRE(llmkit_gguf_value_int(&iv, v) == LLMKIT_OK);
    CHECK(iv == 7);
    const char *s = nullptr;
    size_t n = 0;
    CHECK(llmkit_gguf_value_string(&s, &n, v) == LLMKIT_ERROR_DTYPE);
    CHECK(std::string(llmkit_last_error_message()).find("uint32") != std::string::npos);

    REQUIRE(llmkit_gguf_find_key(&i, f.f, "big") == LLMKIT_OK);
    REQUIRE(llmkit_gguf_metadata_value(&v, f.f, i) == LLMKIT_OK);
    CHECK(llmkit_gguf_value_int(&iv, v) == LLMKIT_ERROR_OUT_OF_RANGE);
    uint64_t uv = 0;
    REQUIRE(llmkit_gguf_value_uint(&uv, v) == LLMKIT_OK);
    CHECK(uv == ~0ull);

    REQUIRE(llmkit_gguf_find_key(&i, f.f, "d") == LLMKIT_OK);
    REQUIRE(llmkit_gguf_metadata_value(&v, f.f, i) == LLMKIT_OK);
    double dv = 0;
    REQUIRE(llmkit_gguf_value_float(&dv, v) == LLMKIT_OK);
    CHECK(dv == -2.5);

    REQUIRE(llmkit_gguf_find_key(&i, f.f, "shorts") == LLMKIT_OK);
    REQUIRE(llmkit_gguf_metadata_value(&v, f.f, i) == LLMKIT_OK);
    const void *raw = nullptr;
    REQUIRE(llmkit_gguf_value_array_data(&raw, &count, v) == LLMKIT_OK);
    REQUIRE(count == 3);
    int16_t back[3];
    std::memcpy(back, raw, sizeof back);
    CHECK(back[2] == -3);
    CHECK(llmkit_gguf_value_array_string(&s, &n, v, 0) == LLMKIT_ERROR_DTYPE);

    REQUIRE(llmkit_gguf_find_key(&i, f.f, "strs") == LLMKIT_OK);
    REQUIRE(llmkit_gguf_metadata_value(&v, f.f, i) == LLMKIT_OK);
    REQUIRE(llmkit_gguf_value_array_string(&s, &n, v, 1) == LLMKIT_OK);
    CHECK(std::string(s, n) == "bc");
    CHECK(llmkit_gguf_value_array_string(&s, &n, v, 2) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(llmkit_gguf_value_array_data(&raw, &count, v) == LLMKIT_ERROR_DTYPE);

    REQUIRE(llmkit_gguf_find_key(&i, f.f, "gone") == LLMKIT_OK);
    CHECK(i == -1);

    llmkit_gguf_tensor_info t;
    REQUIRE(llmkit_gguf_find_tensor(&i, f.f, "w") == LLMKIT_OK);
    REQUIRE(llmkit_gguf_tensor(&t, f.f, i) == LLMKIT_OK);
    CHECK(std::string(t.name) == "w");
    CHECK(t.n_dims == 2);
    CHECK(t.dims[0] == 32);
    CHECK(t.dims[1] == 2);
    CHECK(t.dims[2] == 1);
    CHECK(t.nbytes == 256);
    CHECK(std::memcmp(t.data, x, sizeof x) == 0);
    CHECK(llmkit_gguf_tensor(&t, f.f, 1) == LLMKIT_ERROR_OUT_OF_RANGE);

    // The same bytes through open_memory, and a copy of every value through set_value.
    std::vector<uint8_t> bytes(size_t(info.file_size));
    FILE *fp = std::fopen(path.c_str(), "rb");
    REQUIRE(fp);
    REQUIRE(std::fread(bytes.data(), 1, bytes.size(), fp) == bytes.size());
    std::fclose(fp);
    std::remove(path.c_str());
    file_ptr m;
    REQUIRE(llmkit_gguf_open_memory(&m.f, bytes.data(), bytes.size(), nullptr) == LLMKIT_OK);
    writer_ptr copy;
    for (int64_t k = 0; k < info.n_metadata; ++k) {
        REQUIRE(llmkit_gguf_metadata_key(&key, nullptr, m.f, k) == LLMKIT_OK);
        REQUIRE(llmkit_gguf_metadata_value(&v, m.f, k) == LLMKIT_OK);
        REQUIRE(llmkit_gguf_writer_set_value(copy.w, key, v) == LLMKIT_OK);
    }
    REQUIRE(llmkit_gguf_writer_add_tensor(copy.w, "w", LLMKIT_QUANT_F32, dims, 2, x, sizeof x) == LLMKIT_OK);
    const std::string copy_path = temp_path("copy");
    REQUIRE(llmkit_gguf_writer_write(copy.w, copy_path.c_str()) == LLMKIT_OK);
    std::vector<uint8_t> copied(bytes.size());
    fp = std::fopen(copy_path.c_str(), "rb");
    REQUIRE(fp);
    CHECK(std::fread(copied.data(), 1, copied.size() + 1, fp) == bytes.size());
    std::fclose(fp);
    std::remove(copy_path.c_str());
    CHECK(copied == bytes);
}

TEST_CASE("C ABI: nested arrays through value_array_item", "[gguf]") {
    // An array of two arrays of uint8, built by hand.
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    auto u64 = [&](uint64_t x) {
        for (int k = 0; k < 8; ++k) b.push_back(uint8_t(x >> (8 * k)));
    };
    auto u32 = [&](uint32_t x) {
        for (int k = 0; k < 4; ++k) b.push_back(uint8_t(x >> (8 * k)));
    };
    u64(0);
    u64(1);
    u64(1);
    b.push_back('n');
    u32(LLMKIT_GGUF_ARRAY);
    u32(LLMKIT_GGUF_ARRAY);
    u64(2);
    u32(LLMKIT_GGUF_UINT8);
    u64(2);
    b.push_back(5);
    b.push_back(6);
    u32(LLMKIT_GGUF_UINT8);
    u64(0);
    file_ptr f;
    REQUIRE(llmkit_gguf_open_memory(&f.f, b.data(), b.size(), nullptr) == LLMKIT_OK);
    const llmkit_gguf_value *v = nullptr, *item = nullptr;
    REQUIRE(llmkit_gguf_metadata_value(&v, f.f, 0) == LLMKIT_OK);
    int32_t type = 0, elem = 0;
    uint64_t count = 0;
    REQUIRE(llmkit_gguf_value_type(&type, &elem, &count, v) == LLMKIT_OK);
    CHECK(type == LLMKIT_GGUF_ARRAY);
    CHECK(elem == LLMKIT_GGUF_ARRAY);
    CHECK(count == 2);
    REQUIRE(llmkit_gguf_value_array_item(&item, v, 0) == LLMKIT_OK);
    const void *raw = nullptr;
    REQUIRE(llmkit_gguf_value_array_data(&raw, &count, item) == LLMKIT_OK);
    REQUIRE(count == 2);
    CHECK(static_cast<const uint8_t *>(raw)[1] == 6);
    REQUIRE(llmkit_gguf_value_array_item(&item, v, 1) == LLMKIT_OK);
    REQUIRE(llmkit_gguf_value_array_data(&raw, &count, item) == LLMKIT_OK);
    CHECK(count == 0);
    CHECK(raw == nullptr);
    CHECK(llmkit_gguf_value_array_item(&item, v, 2) == LLMKIT_ERROR_OUT_OF_RANGE);
    // Truncating the same bytes anywhere is a format error, never a crash.
    for (size_t cut = 0; cut < b.size(); ++cut) {
        llmkit_gguf_file *g = nullptr;
        CHECK(llmkit_gguf_open_memory(&g, b.data(), cut, nullptr) == LLMKIT_ERROR_FORMAT);
        CHECK(g == nullptr);
        CHECK(std::string(llmkit_last_error_message()).find("<memory>: offset ") != std::string::npos);
    }
}

TEST_CASE("C ABI: NULL pointers, bad arguments and bad option structs are reported", "[gguf]") {
    llmkit_gguf_file *f = nullptr;
    CHECK(llmkit_gguf_open(nullptr, "x", nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_open(&f, nullptr, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_open(&f, "/nonexistent/x.gguf", nullptr) == LLMKIT_ERROR_IO);
    CHECK(f == nullptr);
    llmkit_gguf_open_options o = LLMKIT_GGUF_OPEN_OPTIONS_INIT;
    o.struct_size = sizeof o + 4;
    CHECK(llmkit_gguf_open(&f, "/nonexistent/x.gguf", &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gguf_open_memory(&f, nullptr, 10, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_open_memory(&f, nullptr, 0, nullptr) == LLMKIT_ERROR_FORMAT);
    llmkit_gguf_file_info info;
    CHECK(llmkit_gguf_file_get_info(&info, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_value_type(nullptr, nullptr, nullptr, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    int64_t i = 0;
    CHECK(llmkit_gguf_find_key(&i, nullptr, "k") == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_find_tensor(&i, nullptr, "k") == LLMKIT_ERROR_NULL_POINTER);
    llmkit_gguf_close(nullptr);

    const char *name = nullptr;
    int64_t be = 0, bb = 0;
    REQUIRE(llmkit_gguf_type_info(&name, &be, &bb, 16) == LLMKIT_OK);
    CHECK(std::string(name) == "iq2_xxs");
    CHECK(be == 256);
    CHECK(bb == 66);
    CHECK(llmkit_gguf_type_info(&name, &be, &bb, 5) == LLMKIT_ERROR_INVALID_ARGUMENT);

    writer_ptr w;
    const uint32_t x = 1;
    CHECK(llmkit_gguf_writer_set_kv(nullptr, "k", LLMKIT_GGUF_UINT32, &x, 4) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_set_kv(w.w, nullptr, LLMKIT_GGUF_UINT32, &x, 4) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_set_kv(w.w, "k", LLMKIT_GGUF_UINT32, nullptr, 4) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_set_kv(w.w, "k", LLMKIT_GGUF_UINT32, &x, 8) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gguf_writer_set_kv(w.w, "k", 13, &x, 4) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gguf_writer_set_kv(w.w, "k", LLMKIT_GGUF_ARRAY, &x, 4) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gguf_writer_set_kv(w.w, "", LLMKIT_GGUF_UINT32, &x, 4) == LLMKIT_ERROR_INVALID_ARGUMENT);
    const uint8_t two = 2;
    CHECK(llmkit_gguf_writer_set_kv(w.w, "b", LLMKIT_GGUF_BOOL, &two, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    const uint32_t align = 24;
    CHECK(llmkit_gguf_writer_set_kv(w.w, "general.alignment", LLMKIT_GGUF_UINT32, &align, 4) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gguf_writer_set_array(w.w, "a", LLMKIT_GGUF_UINT32, nullptr, 3) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_set_array(w.w, "a", LLMKIT_GGUF_STRING, &x, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    const char *strs[2] = {"a", nullptr};
    CHECK(llmkit_gguf_writer_set_string_array(w.w, "s", strs, nullptr, 2) == LLMKIT_ERROR_NULL_POINTER);
    const int64_t dims[5] = {4, 1, 1, 1, 1};
    const float data[4] = {};
    CHECK(llmkit_gguf_writer_add_tensor(w.w, "t", 0, dims, 5, data, 16) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_gguf_writer_add_tensor(w.w, "t", 0, dims, 1, data, 12) == LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_gguf_writer_add_tensor(w.w, "t", 0, nullptr, 1, data, 16) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_add_tensor(w.w, "t", 99, dims, 1, data, 16) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gguf_writer_add_tensor(w.w, "t", 0, dims, 1, nullptr, 16) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_write(w.w, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gguf_writer_write(w.w, "/nonexistent/dir/x.gguf") == LLMKIT_ERROR_IO);
    llmkit_gguf_writer_free(nullptr);
}
