// GGUF reader/writer: round trips, hostile files built here byte by byte, and
// every .gguf of the shared data folder.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/error.hpp"
#include "formats/gguf.hpp"

using namespace llmkit;
using gguf::value_type;

namespace {

// Raw little-endian GGUF bytes, field by field, for hand-made (and broken) files.
struct bytes_builder {
    std::vector<uint8_t> b;
    template <typename T>
    bytes_builder &put(T x) {
        const auto *p = reinterpret_cast<const uint8_t *>(&x);
        b.insert(b.end(), p, p + sizeof x);
        return *this;
    }
    bytes_builder &str(const std::string &s) {
        put<uint64_t>(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    bytes_builder &header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
        b.insert(b.end(), {'G', 'G', 'U', 'F'});
        return put<uint32_t>(version).put<uint64_t>(tensors).put<uint64_t>(kvs);
    }
    bytes_builder &kv_u32(const std::string &key, uint32_t v) { return str(key).put<uint32_t>(4).put<uint32_t>(v); }
    bytes_builder &tensor(const std::string &name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
        str(name).put<uint32_t>(uint32_t(dims.size()));
        for (uint64_t d : dims) put<uint64_t>(d);
        return put<uint32_t>(type).put<uint64_t>(offset);
    }
    bytes_builder &pad_to(size_t alignment) {
        while (b.size() % alignment) b.push_back(0);
        return *this;
    }
    bytes_builder &zeros(size_t n) {
        b.insert(b.end(), n, 0);
        return *this;
    }
};

gguf::file parse(const std::vector<uint8_t> &b, const gguf::open_options &o = {}) {
    return gguf::file::parse(b.data(), b.size(), "test.gguf", o);
}

// The message of the error parsing b throws (fails the test when none is thrown).
std::string parse_error(const std::vector<uint8_t> &b, llmkit_status expected = LLMKIT_ERROR_FORMAT) {
    try {
        parse(b);
    } catch (const core::error &e) {
        CHECK(e.status() == expected);
        return e.what();
    }
    FAIL("the file was accepted");
    return {};
}

// A small valid file: every value type, a nested array, and three tensors.
gguf::writer sample_writer() {
    gguf::writer w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 5);
    w.set_i32("answer", -42);
    w.set_u64("big", 1ull << 40);
    w.set_f32("eps", 1e-5f);
    w.set_bool("flag", true);
    gguf::value v;
    v.type = value_type::f64;
    v.f = 3.25;
    w.set("pi-ish", v);
    v = {};
    v.type = value_type::i8;
    v.i = -7;
    w.set("small", v);
    v = {};
    v.type = value_type::u16;
    v.u = 65535;
    w.set("u16", v);
    v = {};
    v.type = value_type::i16;
    v.i = -32768;
    w.set("i16", v);
    v = {};
    v.type = value_type::u8;
    v.u = 200;
    w.set("u8", v);
    v = {};
    v.type = value_type::i64;
    v.i = std::numeric_limits<int64_t>::min();
    w.set("i64", v);
    const float scores[3] = {0.5f, -1.0f, 2.0f};
    w.set_array("tokenizer.ggml.scores", value_type::f32, scores, 3);
    const int32_t types[3] = {1, 3, 6};
    w.set_array("tokenizer.ggml.token_type", value_type::i32, types, 3);
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "", std::string_view("a\0b", 3)});
    const uint8_t bools[2] = {0, 1};
    w.set_array("bools", value_type::boolean, bools, 2);
    // [[1, 2], [], [[...]]]-style nesting: an array of two arrays of u16.
    gguf::value nested;
    nested.type = value_type::array;
    nested.elem_type = value_type::array;
    const uint16_t a[2] = {1, 2}, c[1] = {9};
    gguf::value inner;
    inner.type = value_type::array;
    inner.elem_type = value_type::u16;
    inner.raw = reinterpret_cast<const uint8_t *>(a);
    inner.count = 2;
    nested.items.push_back(inner);
    inner.raw = reinterpret_cast<const uint8_t *>(c);
    inner.count = 1;
    nested.items.push_back(inner);
    nested.count = 2;
    w.set("nested", nested);

    std::vector<float> f32(8 * 3);
    for (size_t i = 0; i < f32.size(); ++i) f32[i] = float(i) * 0.25f - 1.0f;
    w.add_tensor("a.weight", 0, {8, 3}, f32.data(), f32.size() * 4);
    std::vector<uint8_t> q8(2 * 34, 0x11);  // two q8_0 blocks: one row of 64
    w.add_tensor("b.weight", 8, {64}, q8.data(), q8.size());
    const uint16_t f16[5] = {0x3c00, 0x4000, 0xc000, 0, 0x7bff};
    w.add_tensor("c.bias", 1, {5}, f16, sizeof f16);
    return w;
}

std::string temp_path(const char *tag) {
    return "/tmp/llmkit_gguf_test_" + std::to_string(::getpid()) + "_" + tag + ".gguf";
}

}  // namespace

TEST_CASE("a written file reads back with every value type, nested arrays and tensor bytes", "[gguf]") {
    const gguf::writer w = sample_writer();
    const std::vector<uint8_t> bytes = w.serialize();
    const gguf::file f = parse(bytes);
    CHECK(f.version() == 3);
    CHECK(f.alignment() == 32);
    CHECK(f.data_offset() % 32 == 0);
    REQUIRE(f.metadata().size() == 17);
    CHECK(f.metadata()[0].key == "general.architecture");
    CHECK(f.get_string("general.architecture").value() == "llama");
    CHECK(f.get_int("llama.block_count").value() == 5);
    CHECK(f.find("llama.block_count")->type == value_type::u32);
    CHECK(f.get_int("answer").value() == -42);
    CHECK(f.get_int("big").value() == (int64_t(1) << 40));
    CHECK(f.get_float("eps").value() == double(1e-5f));
    CHECK(f.get_bool("flag").value());
    CHECK(f.get_float("pi-ish").value() == 3.25);
    CHECK(f.get_int("small").value() == -7);
    CHECK(f.get_int("u16").value() == 65535);
    CHECK(f.get_int("i16").value() == -32768);
    CHECK(f.get_int("u8").value() == 200);
    CHECK(f.get_int("i64").value() == std::numeric_limits<int64_t>::min());
    CHECK(f.at("tokenizer.ggml.scores").float_array() == std::vector<float>{0.5f, -1.0f, 2.0f});
    CHECK(f.at("tokenizer.ggml.token_type").int_array() == std::vector<int64_t>{1, 3, 6});
    const auto &tokens = f.at("tokenizer.ggml.tokens").string_array();
    REQUIRE(tokens.size() == 3);
    CHECK(tokens[0] == "<unk>");
    CHECK(tokens[1].empty());
    CHECK(tokens[2] == std::string_view("a\0b", 3));
    const gguf::value &bools = f.at("bools");
    CHECK(bools.elem_type == value_type::boolean);
    REQUIRE(bools.count == 2);
    CHECK(bools.raw[0] == 0);
    CHECK(bools.raw[1] == 1);
    const gguf::value &nested = f.at("nested");
    REQUIRE(nested.items.size() == 2);
    CHECK(nested.items[0].int_array() == std::vector<int64_t>{1, 2});
    CHECK(nested.items[1].int_array() == std::vector<int64_t>{9});
    CHECK_FALSE(f.find("absent"));
    CHECK_FALSE(f.get_int("absent").has_value());

    REQUIRE(f.tensors().size() == 3);
    const auto &t0 = f.tensors()[0];
    CHECK(t0.name == "a.weight");
    CHECK(t0.dims == std::vector<int64_t>{8, 3});
    CHECK(t0.nbytes == 96);
    CHECK(t0.elements == 24);
    float x[24];
    std::memcpy(x, f.tensor_data(0), sizeof x);
    for (int i = 0; i < 24; ++i) CHECK(x[i] == float(i) * 0.25f - 1.0f);
    CHECK(f.tensors()[1].nbytes == 68);
    CHECK(f.tensor_data(1)[67] == 0x11);
    CHECK(f.tensors()[2].nbytes == 10);
    for (size_t i = 0; i < 3; ++i) CHECK(f.tensors()[i].offset % 32 == 0);
    CHECK(f.find_tensor("c.bias") == 2);
    CHECK(f.find_tensor("nope") == -1);
    // The file ends with the last tensor padded to the alignment.
    CHECK(bytes.size() == f.data_offset() + f.tensors()[2].offset + 32);
}

TEST_CASE("typed getters refuse the wrong type, naming the key and file", "[gguf]") {
    const auto bytes = sample_writer().serialize();
    const gguf::file f = parse(bytes);
    try {
        (void)f.get_string("llama.block_count");
        FAIL("no error");
    } catch (const core::error &e) {
        CHECK(std::string(e.what()).find("test.gguf") != std::string::npos);
        CHECK(std::string(e.what()).find("llama.block_count") != std::string::npos);
        CHECK(std::string(e.what()).find("uint32") != std::string::npos);
    }
    CHECK_THROWS_AS(f.get_int("general.architecture"), core::error);
    CHECK_THROWS_AS(f.at("general.architecture").float_array(), core::error);
    CHECK_THROWS_AS(f.at("missing"), core::error);
    CHECK_THROWS_AS(f.tensor_data(3), core::error);
}

TEST_CASE("general.alignment moves the data section and the tensor offsets", "[gguf]") {
    gguf::writer w = sample_writer();
    w.set_u32("general.alignment", 64);
    const auto bytes = w.serialize();
    const gguf::file f = parse(bytes);
    CHECK(f.alignment() == 64);
    CHECK(f.data_offset() % 64 == 0);
    for (const auto &t : f.tensors()) CHECK(t.offset % 64 == 0);
    CHECK_THROWS_AS(w.set_u32("general.alignment", 48), core::error);
    CHECK_THROWS_AS(w.set_u32("general.alignment", 0), core::error);
}

TEST_CASE("every truncation of a valid file is refused with the file and offset named", "[gguf]") {
    const auto bytes = sample_writer().serialize();
    // The last tensor's padding is not needed by the reader, so cut up to the
    // end of its data only.
    const gguf::file full = parse(bytes);
    const size_t needed = size_t(full.data_offset() + full.tensors()[2].offset + full.tensors()[2].nbytes);
    for (size_t n = 0; n < needed; ++n) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(n));
        INFO("truncated to " << n << " bytes");
        const std::string msg = parse_error(cut);
        CHECK(msg.rfind("test.gguf: offset ", 0) == 0);
    }
    std::vector<uint8_t> exact(bytes.begin(), bytes.begin() + long(needed));
    CHECK(parse(exact).tensors().size() == 3);
}

TEST_CASE("a vocab-only file may end right after its metadata", "[gguf]") {
    bytes_builder b;
    b.header(0, 1).kv_u32("x", 1);  // 37 bytes: no padding to 32
    CHECK(parse(b.b).metadata().size() == 1);
}

TEST_CASE("header problems: magic, version 1, big-endian, unknown versions", "[gguf]") {
    bytes_builder b;
    b.b = {'G', 'G', 'M', 'L'};
    b.zeros(20);
    CHECK(parse_error(b.b).find("not a GGUF file") != std::string::npos);

    bytes_builder v1;
    v1.header(0, 0, 1);
    CHECK(parse_error(v1.b).find("version 1 is not supported") != std::string::npos);

    bytes_builder be;
    be.header(0, 0, 0x03000000);
    CHECK(parse_error(be.b).find("big-endian") != std::string::npos);

    bytes_builder v9;
    v9.header(0, 0, 9);
    CHECK(parse_error(v9.b).find("unsupported GGUF version 9") != std::string::npos);

    bytes_builder v2;
    v2.header(0, 1, 2).kv_u32("k", 1);
    CHECK(parse(v2.b).version() == 2);

    CHECK(parse_error({}).find("offset 0") != std::string::npos);
}

TEST_CASE("counts and lengths that cannot fit are refused before any allocation", "[gguf]") {
    SECTION("metadata count") {
        bytes_builder b;
        b.header(0, std::numeric_limits<uint64_t>::max());
        b.zeros(64);
        CHECK(parse_error(b.b).find("metadata count 18446744073709551615 cannot fit") != std::string::npos);
    }
    SECTION("tensor count") {
        bytes_builder b;
        b.header(uint64_t(1) << 62, 0);
        b.zeros(64);
        CHECK(parse_error(b.b).find("tensor count") != std::string::npos);
    }
    SECTION("key length past the end") {
        bytes_builder b;
        b.header(0, 1).put<uint64_t>(std::numeric_limits<uint64_t>::max()).zeros(16);
        const std::string msg = parse_error(b.b);
        CHECK(msg.find("offset 24") != std::string::npos);
        CHECK(msg.find("key length 18446744073709551615 runs past the end") != std::string::npos);
    }
    SECTION("string value length past the end") {
        bytes_builder b;
        b.header(0, 1).str("name").put<uint32_t>(8).put<uint64_t>(1000).zeros(10);
        CHECK(parse_error(b.b).find("string value length 1000 runs past the end") != std::string::npos);
    }
    SECTION("array count overflowing count * size") {
        bytes_builder b;
        b.header(0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(6).put<uint64_t>(uint64_t(1) << 62).zeros(16);
        CHECK(parse_error(b.b).find("array of 4611686018427387904 float32 runs past the end") != std::string::npos);
    }
    SECTION("string array count") {
        bytes_builder b;
        b.header(0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(1000000).zeros(16);
        CHECK(parse_error(b.b).find("strings cannot fit") != std::string::npos);
    }
    SECTION("nested array count") {
        bytes_builder b;
        b.header(0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1000000).zeros(16);
        CHECK(parse_error(b.b).find("arrays cannot fit") != std::string::npos);
    }
    SECTION("arrays nested too deep") {
        bytes_builder b;
        b.header(0, 1).str("deep").put<uint32_t>(9);
        for (int i = 0; i < 40; ++i) b.put<uint32_t>(9).put<uint64_t>(1);
        b.put<uint32_t>(0).put<uint64_t>(0);
        CHECK(parse_error(b.b).find("nested deeper than") != std::string::npos);
    }
}

TEST_CASE("value problems: unknown types, bad bools, empty and oversized keys", "[gguf]") {
    bytes_builder unknown;
    unknown.header(0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0);
    CHECK(parse_error(unknown.b).find("unknown value type 13") != std::string::npos);

    bytes_builder unknown_elem;
    unknown_elem.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(77).put<uint64_t>(0);
    CHECK(parse_error(unknown_elem.b).find("unknown array element type 77") != std::string::npos);

    bytes_builder bad_bool;
    bad_bool.header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2);
    CHECK(parse_error(bad_bool.b).find("bool value 2") != std::string::npos);

    bytes_builder bad_bool_array;
    bad_bool_array.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(7).put<uint64_t>(3).put<uint8_t>(1)
        .put<uint8_t>(0).put<uint8_t>(5);
    CHECK(parse_error(bad_bool_array.b).find("bool array element 2 is 5") != std::string::npos);

    bytes_builder empty_key;
    empty_key.header(0, 1).str("").put<uint32_t>(4).put<uint32_t>(1);
    CHECK(parse_error(empty_key.b).find("empty key") != std::string::npos);

    bytes_builder long_key;
    long_key.header(0, 1).str(std::string(70000, 'k')).put<uint32_t>(4).put<uint32_t>(1);
    CHECK(parse_error(long_key.b).find("exceeds the limit") != std::string::npos);
}

TEST_CASE("duplicate keys are refused by default, kept first when allowed", "[gguf]") {
    bytes_builder b;
    b.header(0, 3).kv_u32("general.file_type", 1).kv_u32("other", 2).kv_u32("general.file_type", 7);
    const std::string msg = parse_error(b.b);
    CHECK(msg.find("duplicate key \"general.file_type\"") != std::string::npos);
    CHECK(msg.find("offset 78") != std::string::npos);  // 24-byte header, 33- and 21-byte entries
    CHECK(msg.find("first at offset 24") != std::string::npos);
    gguf::open_options o;
    o.allow_duplicate_keys = true;
    const gguf::file f = parse(b.b, o);
    CHECK(f.metadata().size() == 2);
    CHECK(f.get_int("general.file_type").value() == 1);
}

TEST_CASE("general.alignment must be a uint32 power of two", "[gguf]") {
    bytes_builder zero;
    zero.header(0, 1).kv_u32("general.alignment", 0);
    CHECK(parse_error(zero.b).find("general.alignment 0 is not a power of two") != std::string::npos);
    bytes_builder odd;
    odd.header(0, 1).kv_u32("general.alignment", 24);
    CHECK(parse_error(odd.b).find("not a power of two") != std::string::npos);
    bytes_builder typed;
    typed.header(0, 1).str("general.alignment").put<uint32_t>(10).put<uint64_t>(32);
    CHECK(parse_error(typed.b).find("general.alignment is a uint64") != std::string::npos);
}

TEST_CASE("tensor infos: absurd dims, unknown types, partial blocks, bad offsets, overlaps, duplicates", "[gguf]") {
    // One f32 tensor [4] at offset 0, with `data` bytes of data after the padding.
    auto one = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset, size_t data) {
        bytes_builder b;
        b.header(1, 0).tensor("t", std::move(dims), type, offset).pad_to(32).zeros(data);
        return b.b;
    };
    CHECK(parse(one({4}, 0, 0, 16)).tensors()[0].nbytes == 16);
    CHECK(parse_error(one({4, 1, 1, 1, 1}, 0, 0, 16)).find("has 5 dimensions; GGUF allows at most 4") !=
          std::string::npos);
    CHECK(parse_error(one({uint64_t(1) << 63}, 0, 0, 16)).find("is absurd") != std::string::npos);
    CHECK(parse_error(one({uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 16)).find("overflows int64") !=
          std::string::npos);
    CHECK(parse_error(one({uint64_t(1) << 62}, 0, 0, 16)).find("overflows uint64") != std::string::npos);
    CHECK(parse_error(one({uint64_t(1) << 50}, 0, 0, 16)).find("runs past the end") != std::string::npos);
    CHECK(parse_error(one({4}, 4, 0, 16)).find("unknown ggml type 4") != std::string::npos);
    CHECK(parse_error(one({4}, 99, 0, 16)).find("unknown ggml type 99") != std::string::npos);
    CHECK(parse_error(one({33}, 2, 0, 64)).find("not a multiple of q4_0's block of 32") != std::string::npos);
    CHECK(parse_error(one({4}, 0, 8, 64)).find("not a multiple of the alignment 32") != std::string::npos);
    CHECK(parse_error(one({4}, 0, 32, 16)).find("runs past the end") != std::string::npos);
    CHECK(parse_error(one({4}, 0, std::numeric_limits<uint64_t>::max() - 31, 16)).find("runs past the end") !=
          std::string::npos);
    CHECK(parse_error(one({4}, 0, 0, 15)).find("(16 bytes at data offset 0) runs past the end") != std::string::npos);
    CHECK(parse(one({0, 7}, 0, 0, 0)).tensors()[0].nbytes == 0);

    bytes_builder overlap;
    overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad_to(32).zeros(64);
    CHECK(parse_error(overlap.b).find("overlaps tensor \"a\"") != std::string::npos);

    bytes_builder dup;
    dup.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad_to(32).zeros(64);
    CHECK(parse_error(dup.b).find("duplicate tensor name \"w\"") != std::string::npos);

    bytes_builder noname;
    noname.header(1, 0).tensor("", {4}, 0, 0).pad_to(32).zeros(16);
    CHECK(parse_error(noname.b).find("empty name") != std::string::npos);

    bytes_builder no_data;  // tensor infos end exactly where the file ends
    no_data.header(1, 0).tensor("t", {4}, 0, 0);
    CHECK(parse_error(no_data.b).find("tensor data section should start") != std::string::npos);
}

TEST_CASE("the writer refuses bad tensors and keys", "[gguf]") {
    gguf::writer w;
    const float x[4] = {};
    CHECK_THROWS_AS(w.add_tensor("", 0, {4}, x, 16), core::error);
    CHECK_THROWS_AS(w.add_tensor("t", 0, {4}, x, 12), core::error);
    CHECK_THROWS_AS(w.add_tensor("t", 77, {4}, x, 16), core::error);
    CHECK_THROWS_AS(w.add_tensor("t", 0, {1, 1, 1, 1, 4}, x, 16), core::error);
    CHECK_THROWS_AS(w.add_tensor("t", 2, {4}, x, 16), core::error);  // q4_0 needs rows of 32
    CHECK_THROWS_AS(w.add_tensor("t", 0, {-4}, x, 16), core::error);
    w.add_tensor("t", 0, {4}, x, 16);
    CHECK_THROWS_AS(w.add_tensor("t", 0, {4}, x, 16), core::error);
    CHECK_THROWS_AS(w.set_u32("", 1), core::error);
    const uint8_t bad_bool = 3;
    CHECK_THROWS_AS(w.set_array("b", value_type::boolean, &bad_bool, 1), core::error);
    CHECK_THROWS_AS(w.set_array("b", value_type::string, &bad_bool, 1), core::error);
    // Setting a key again replaces it in place.
    w.set_u32("a", 1);
    w.set_u32("b", 2);
    w.set_u32("a", 3);
    REQUIRE(w.kv_count() == 2);
    const auto bytes = w.serialize();
    const gguf::file f = parse(bytes);
    CHECK(f.metadata()[0].key == "a");
    CHECK(f.get_int("a").value() == 3);
    CHECK(w.remove("a"));
    CHECK_FALSE(w.remove("a"));
}

TEST_CASE("files are written atomically and opened memory-mapped", "[gguf]") {
    const std::string path = temp_path("atomic");
    const gguf::writer w = sample_writer();
    w.write(path);
    {
        const gguf::file f = gguf::file::open(path);
        CHECK(f.tensors().size() == 3);
        CHECK(f.size() == w.serialize().size());
        CHECK(std::memcmp(f.bytes(), w.serialize().data(), f.size()) == 0);
        gguf::open_options o;
        o.no_mmap = true;
        CHECK(gguf::file::open(path, o).tensors().size() == 3);
    }
    // Overwriting keeps the old file intact until the new one is complete, and
    // leaves no temporary file behind.
    gguf::writer w2;
    w2.set_u32("only", 1);
    w2.write(path);
    CHECK(gguf::file::open(path).metadata().size() == 1);
    DIR *d = opendir("/tmp");
    REQUIRE(d);
    const std::string stem = path.substr(5) + ".tmp.";
    while (dirent *e = readdir(d)) CHECK(std::string(e->d_name).rfind(stem, 0) != 0);
    closedir(d);
    std::remove(path.c_str());

    try {
        w.write("/nonexistent-dir-llmkit/x.gguf");
        FAIL("no error");
    } catch (const core::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_IO);
        CHECK(std::string(e.what()).find("/nonexistent-dir-llmkit/x.gguf") != std::string::npos);
    }
    try {
        (void)gguf::file::open("/nonexistent-dir-llmkit/x.gguf");
        FAIL("no error");
    } catch (const core::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_IO);
    }
    CHECK_THROWS_AS(gguf::file::open("/tmp"), core::error);
}

TEST_CASE("the ggml type table matches ggml's block geometry", "[gguf]") {
    // The types llmkit quantizes are checked against gguf-py in Python; here
    // the byte sizes follow from the block layouts (ggml-common.h).
    CHECK(gguf::find_ggml_type(2)->block_bytes == 2 + 16);                // q4_0: f16 d, 16 nibbles
    CHECK(gguf::find_ggml_type(12)->block_bytes == 2 + 2 + 12 + 128);     // q4_K: d, dmin, scales, 256 nibbles
    CHECK(gguf::find_ggml_type(14)->block_bytes == 128 + 64 + 16 + 2);    // q6_K
    CHECK(gguf::find_ggml_type(23)->block_bytes == 2 + 2 + 4 + 128);      // iq4_xs
    CHECK(gguf::find_ggml_type(4) == nullptr);                            // removed q4_2
    CHECK(gguf::find_ggml_type(-1) == nullptr);
    CHECK(std::string(gguf::find_ggml_type(30)->name) == "bf16");
}

#ifdef LLMKIT_TEST_DATA_DIR
TEST_CASE("every GGUF file of the data folder parses; the DBRX one is refused for its duplicate key", "[gguf][data]") {
    const std::string dir = std::string(LLMKIT_TEST_DATA_DIR) + "/llama.cpp-vocab/";
    const char *vocabs[] = {"baichuan", "bert-bge", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2", "gpt-neox",
                            "llama-spm", "mpt", "phi-3", "refact", "starcoder"};
    for (const char *v : vocabs) {
        INFO(v);
        const gguf::file f = gguf::file::open(dir + "ggml-vocab-" + v + ".gguf");
        CHECK(f.version() == 3);
        CHECK(f.tensors().empty());
        const auto &tokens = f.at("tokenizer.ggml.tokens").string_array();
        CHECK(tokens.size() > 30000);
        CHECK(f.get_string("tokenizer.ggml.model").has_value());
        if (f.find("tokenizer.ggml.token_type"))
            CHECK(f.at("tokenizer.ggml.token_type").int_array().size() == tokens.size());
    }
    const std::string dbrx = dir + "dbrx-pr/ggml-vocab-dbrx.gguf";
    try {
        (void)gguf::file::open(dbrx);
        FAIL("the duplicate key was accepted");
    } catch (const core::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_FORMAT);
        CHECK(std::string(e.what()) == dbrx + ": offset 561: duplicate key \"general.file_type\" (first at offset 408); "
                                              "open with allow_duplicate_keys to keep the first value");
    }
    gguf::open_options o;
    o.allow_duplicate_keys = true;
    CHECK(gguf::file::open(dbrx, o).at("tokenizer.ggml.tokens").string_array().size() == 100352);

    const gguf::file s = gguf::file::open(std::string(LLMKIT_TEST_DATA_DIR) + "/models/stories260K/stories260K.gguf");
    CHECK(s.tensors().size() == 48);
    CHECK(s.get_string("general.architecture").value() == "llama");
    CHECK(s.get_int("llama.embedding_length").value() == 64);
    const auto &emb = s.tensors()[size_t(s.find_tensor("token_embd.weight"))];
    CHECK(emb.dims == std::vector<int64_t>{64, 512});
    CHECK(emb.type == 0);
}
#endif
