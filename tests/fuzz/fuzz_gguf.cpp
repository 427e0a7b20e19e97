// libFuzzer harness: arbitrary bytes as a GGUF file.
//
// The reader must either accept the bytes or throw llmkit::core::error with
// LLMKIT_ERROR_FORMAT (never crash, hang, leak or read outside the buffer:
// the bytes are parsed in place, so ASan sees any stray read). Whatever it
// accepts must be fully readable (every value, every tensor byte) and must
// round-trip: written again with llmkit's writer and re-read, it gives the same
// metadata and tensors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "formats/gguf.hpp"

using namespace llmkit;

namespace {

[[noreturn]] void fail(const char *what) {
    __builtin_printf("fuzz_gguf: %s\n", what);
    std::abort();
}

// Touches every byte a value points at and checks the typed accessors agree.
uint64_t walk(const gguf::value &v) {
    uint64_t h = uint64_t(v.type);
    switch (v.type) {
        case gguf::value_type::string:
            for (char c : v.str) h = h * 31 + uint8_t(c);
            break;
        case gguf::value_type::array: {
            const size_t elem = gguf::value_type_size(v.elem_type);
            if (elem) {
                for (uint64_t i = 0; i < v.count * elem; ++i) h = h * 31 + v.raw[i];
                try {
                    if (v.elem_type == gguf::value_type::f32 || v.elem_type == gguf::value_type::f64) {
                        if (v.float_array().size() != v.count) fail("float_array size");
                    } else if (v.elem_type != gguf::value_type::boolean) {
                        if (v.int_array().size() != v.count) fail("int_array size");
                    }
                } catch (const core::error &) {
                    // uint64 elements above INT64_MAX: refused, not a crash.
                }
            } else if (v.elem_type == gguf::value_type::string) {
                if (v.strings.size() != v.count) fail("string array size");
                for (auto s : v.strings)
                    for (char c : s) h = h * 31 + uint8_t(c);
            } else {
                if (v.items.size() != v.count) fail("nested array size");
                for (const auto &item : v.items) h = h * 31 + walk(item);
            }
            break;
        }
        default:
            h = h * 31 + v.u + uint64_t(v.i) + uint64_t(v.f != v.f);
    }
    return h;
}

bool same(const gguf::value &a, const gguf::value &b) {
    if (a.type != b.type) return false;
    switch (a.type) {
        case gguf::value_type::string: return a.str == b.str;
        case gguf::value_type::f32:
        case gguf::value_type::f64: return std::memcmp(&a.f, &b.f, sizeof a.f) == 0;
        case gguf::value_type::array: {
            if (a.elem_type != b.elem_type || a.count != b.count) return false;
            const size_t elem = gguf::value_type_size(a.elem_type);
            if (elem) return a.count == 0 || std::memcmp(a.raw, b.raw, size_t(a.count) * elem) == 0;
            if (a.elem_type == gguf::value_type::string) return a.strings == b.strings;
            for (size_t i = 0; i < a.items.size(); ++i)
                if (!same(a.items[i], b.items[i])) return false;
            return true;
        }
        default: return a.u == b.u && a.i == b.i;
    }
}

void check_round_trip(const gguf::file &f) {
    gguf::writer w;
    for (const auto &kv : f.metadata()) w.set(kv.key, kv.val);
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const auto &t = f.tensors()[i];
        w.add_tensor(t.name, t.type, t.dims, f.tensor_data(i), size_t(t.nbytes));
    }
    const std::vector<uint8_t> bytes = w.serialize();
    const gguf::file g = gguf::file::parse(bytes.data(), bytes.size(), "round-trip", {}, false);
    if (g.metadata().size() != f.metadata().size() || g.tensors().size() != f.tensors().size())
        fail("round trip changed the counts");
    for (size_t i = 0; i < f.metadata().size(); ++i)
        if (g.metadata()[i].key != f.metadata()[i].key || !same(g.metadata()[i].val, f.metadata()[i].val))
            fail("round trip changed a value");
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const auto &a = f.tensors()[i], &b = g.tensors()[i];
        if (a.name != b.name || a.type != b.type || a.dims != b.dims || a.nbytes != b.nbytes ||
            (a.nbytes && std::memcmp(f.tensor_data(i), g.tensor_data(i), size_t(a.nbytes)) != 0))
            fail("round trip changed a tensor");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (const bool allow_duplicates : {false, true}) {
        gguf::open_options o;
        o.allow_duplicate_keys = allow_duplicates;
        try {
            const gguf::file f = gguf::file::parse(data, size, "fuzz.gguf", o, false);
            uint64_t h = 0;
            for (const auto &kv : f.metadata()) h += walk(kv.val) + kv.key.size();
            for (size_t i = 0; i < f.tensors().size(); ++i) {
                const auto &t = f.tensors()[i];
                const uint8_t *p = f.tensor_data(i);
                if (t.nbytes) h += p[0] + p[t.nbytes - 1];  // the first and last byte must be inside the buffer
                if (t.offset % f.alignment() != 0) fail("misaligned tensor accepted");
            }
            if (f.get_int("general.alignment").value_or(32) != f.alignment()) fail("alignment mismatch");
            check_round_trip(f);
            if (h == 0x5eed) __builtin_printf(" ");  // keeps the walk from being optimised away
        } catch (const core::error &e) {
            if (e.status() != LLMKIT_ERROR_FORMAT) fail("an error other than LLMKIT_ERROR_FORMAT");
            if (std::strncmp(e.what(), "fuzz.gguf: offset ", 18) != 0) fail("an error message without the offset");
        }
    }
    return 0;
}
