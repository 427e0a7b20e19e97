// Saving and loading a sequence's cached rows (see kv_state.hpp).
#include "attention/kv_state.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/error.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"
#include "quant/formats.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the saved-sequence format is read and written as little-endian");

namespace llmkit::attention {

using core::fail;

namespace {

constexpr char k_magic[8] = {'L', 'L', 'M', 'K', 'I', 'T', 'K', 'V'};

uint32_t read_u32(const unsigned char *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

void write_u32(char *p, uint32_t v) { std::memcpy(p, &v, 4); }

// K (kv 0) and, unless the storage keeps none, V (kv 1).
int n_sections(const block_storage &s) { return s.v_from_k() ? 1 : 2; }
int64_t section_dim(const block_storage &s, int kv) { return kv == 0 ? s.head_dim() : s.v_head_dim(); }
const char *section_name(int kv) { return kv == 0 ? "K" : "V"; }

// Calls f(r, m) for each run of m tokens of head h, tokens [first, end), at
// rows r .. r + m - 1 of the storage: the sequence's rows of one head in order.
template <class F>
void for_runs(const block_storage &s, const int32_t *blocks, int64_t h, int64_t first, int64_t end, F &&f) {
    const int64_t bs = s.block_size(), H = s.n_kv_heads();
    for (int64_t t = first; t < end;) {
        const int64_t in_block = t % bs, m = std::min(bs - in_block, end - t);
        f((int64_t(blocks[t / bs]) * H + h) * bs + in_block, m);
        t += m;
    }
}

// The bytes of one layer's section of n tokens: rows, then 8-bit rows' scales.
uint64_t section_bytes(const block_storage &s, int kv, int64_t n) {
    const uint64_t row = uint64_t(section_dim(s, kv) * s.elem_bytes()) + (kv_has_scales(s.type()) ? 4u : 0u);
    return uint64_t(s.n_kv_heads()) * uint64_t(n) * row;
}

// The bytes before the first section: the header, the token counts and
// (version 2) the first token held.
uint64_t prefix_bytes(const block_storage &s, const seq_state &state) {
    return k_seq_state_header_bytes + 8 * uint64_t(s.n_layers()) + (state.first > 0 ? 8 : 0);
}

// Where each layer's sections lie in a saved state: section (l, kv) at
// offset[2 l + kv] from the start of the bytes (rows, then scales).
std::vector<uint64_t> section_offsets(const block_storage &s, const seq_state &state) {
    std::vector<uint64_t> off(size_t(2 * s.n_layers()), 0);
    uint64_t at = prefix_bytes(s, state);
    for (int64_t l = 0; l < s.n_layers(); ++l)
        for (int kv = 0; kv < n_sections(s); ++kv) {
            off[size_t(2 * l + kv)] = at;
            at += section_bytes(s, kv, state.lengths[size_t(l)] - state.first);
        }
    return off;
}

// Runs f(l, kv, h) for every layer, section and kv head, on the worker
// threads: the rows of one head of one section are one task (a copy at
// memory speed: a long prompt's GBs on every core).
template <class F>
void for_each_head(const block_storage &s, F &&f) {
    const int64_t H = s.n_kv_heads(), per_layer = n_sections(s) * H;
    core::parallel_for(s.n_layers() * per_layer, 0, [&](int64_t i) {
        f(i / per_layer, int(i % per_layer / H), i % H);
    });
}

// Whether the n elements of the cache's dtype at p are all ones an append
// could have stored: finite values, and for FP8 no byte that encodes a NaN
// or an infinity (E4M3's S.1111.111, E5M2's exponent 11111). One vectorized
// pass, through an aligned buffer where p is not aligned to the element size.
bool elements_ok(kv_dtype t, const unsigned char *p, int64_t n) {
    switch (t) {
    case kv_dtype::i8: return true;
    case kv_dtype::fp8_e4m3:
    case kv_dtype::fp8_e5m2: {
        const unsigned mask = t == kv_dtype::fp8_e4m3 ? 0x7fu : 0x7cu;
        bool bad = false;
        for (int64_t i = 0; i < n; ++i) bad |= (p[i] & mask) == mask;
        return !bad;
    }
    default: break;
    }
    const int64_t es = t == kv_dtype::f32 ? 4 : 2;
    const auto finite = [&](const void *x, int64_t m) {
        return t == kv_dtype::f32 ? core::all_finite(static_cast<const float *>(x), m)
                                  : core::all_finite(static_cast<const uint16_t *>(x), m,
                                                     t == kv_dtype::bf16 ? core::dtype::bf16 : core::dtype::f16);
    };
    if (reinterpret_cast<uintptr_t>(p) % uintptr_t(es) == 0) return finite(p, n);
    constexpr int64_t k_chunk = 4096;
    alignas(64) unsigned char buf[k_chunk * 4];
    for (int64_t i = 0; i < n; i += k_chunk) {
        const int64_t m = std::min(k_chunk, n - i);
        std::memcpy(buf, p + i * es, size_t(m * es));
        if (!finite(buf, m)) return false;
    }
    return true;
}

// The largest row scale an append stores, that of the largest finite absmax:
// absmax / 127 for int8 (kv_cache.cpp's write), quant::fp8_scale for FP8.
float max_scale(kv_dtype t) {
    constexpr float top = std::numeric_limits<float>::max();
    return t == kv_dtype::i8 ? top / 127.0f : quant::fp8_scale(top, t == kv_dtype::fp8_e4m3 ? 0 : 1);
}

// Whether n float32 row scales at p are all ones an append stores: >= 0 and
// at most max_scale (so neither NaN nor infinite).
bool scales_ok(kv_dtype t, const unsigned char *p, int64_t n) {
    const float top = max_scale(t);
    bool bad = false;
    for (int64_t i = 0; i < n; ++i) {
        float x;
        std::memcpy(&x, p + 4 * i, 4);
        bad |= !(x >= 0.0f && x <= top);
    }
    return !bad;
}

// Fails naming the first value of one section of layer l (as saved: rows
// [head][token][dim] of tokens first..length - 1, then scales [head][token])
// that no append stores, for a section the fast passes refused.
void name_bad_value(const block_storage &s, const unsigned char *p, int64_t l, int kv, int64_t first, int64_t length) {
    const int64_t H = s.n_kv_heads(), D = section_dim(s, kv), es = s.elem_bytes(), n = length - first;
    const kv_dtype t = s.type();
    for (int64_t i = 0; i < H * n * D; ++i)
        if (!elements_ok(t, p + i * es, 1))
            fail(LLMKIT_ERROR_FORMAT, "saved sequence: layer ", l, ", ", section_name(kv), " of kv head ",
                 i / (n * D), ", token ", first + i / D % n, ", element ", i % D, " is a NaN or an infinity (",
                 kv_dtype_name(t), "), which no append stores");
    const unsigned char *sc = p + H * n * D * es;
    for (int64_t i = 0; kv_has_scales(t) && i < H * n; ++i) {
        float x;
        std::memcpy(&x, sc + 4 * i, 4);
        if (!scales_ok(t, sc + 4 * i, 1))
            fail(LLMKIT_ERROR_FORMAT, "saved sequence: layer ", l, ", ", section_name(kv), " of kv head ", i / n,
                 ", token ", first + i % n, ": its row scale ", x, " is not in 0..", max_scale(t),
                 " (a finite absmax over the dtype's largest value), which no append stores");
    }
    fail(LLMKIT_ERROR_INTERNAL, "saved sequence: a check refused layer ", l, "'s ", section_name(kv),
         " but no value is bad");
}

}  // namespace

uint64_t seq_state_bytes(const block_storage &s, const seq_state &state) {
    uint64_t bytes = prefix_bytes(s, state);
    for (int64_t l = 0; l < s.n_layers(); ++l)
        for (int kv = 0; kv < n_sections(s); ++kv) bytes += section_bytes(s, kv, state.lengths[size_t(l)] - state.first);
    return bytes;
}

void seq_state_save(const block_storage &s, const int32_t *blocks, const seq_state &state, char *out) {
    const std::vector<int64_t> &lengths = state.lengths;
    const int64_t first = state.first;
    std::memcpy(out, k_magic, 8);
    write_u32(out + 8, first > 0 ? 2u : 1u);
    write_u32(out + 12, uint32_t(s.type()));
    write_u32(out + 16, uint32_t(s.n_layers()));
    write_u32(out + 20, uint32_t(s.n_kv_heads()));
    write_u32(out + 24, uint32_t(s.head_dim()));
    write_u32(out + 28, uint32_t(s.v_head_dim()));
    write_u32(out + 32, s.v_from_k() ? 1u : 0u);
    write_u32(out + 36, 0);
    for (int64_t l = 0; l < s.n_layers(); ++l) std::memcpy(out + k_seq_state_header_bytes + 8 * l, &lengths[size_t(l)], 8);
    if (first > 0) std::memcpy(out + k_seq_state_header_bytes + 8 * s.n_layers(), &first, 8);
    const std::vector<uint64_t> off = section_offsets(s, state);
    for_each_head(s, [&](int64_t l, int kv, int64_t h) {
        const int64_t n = lengths[size_t(l)] - first, row_bytes = section_dim(s, kv) * s.elem_bytes();
        char *p = out + off[size_t(2 * l + kv)] + h * n * row_bytes;
        for_runs(s, blocks, h, first, lengths[size_t(l)], [&](int64_t r, int64_t m) {
            std::memcpy(p, s.row(kv, l, r), size_t(m * row_bytes));
            p += m * row_bytes;
        });
        if (!kv_has_scales(s.type())) return;
        // The row's true scale (E4M3's stored one carries 2^8, see kv_scale_factor): exact, a power of 2.
        const float factor = kv_scale_factor(s.type());
        char *q = out + off[size_t(2 * l + kv)] + s.n_kv_heads() * n * row_bytes + h * n * 4;
        for_runs(s, blocks, h, first, lengths[size_t(l)], [&](int64_t r, int64_t m) {
            const float *sc = s.scale(kv, l, r);
            for (int64_t i = 0; i < m; ++i, q += 4) {
                const float x = sc[i] / factor;
                std::memcpy(q, &x, 4);
            }
        });
    });
}

seq_state seq_state_check(const block_storage &s, const void *data, size_t size, int64_t max_positions,
                          int64_t max_held, int64_t release_block) {
    const auto *b = static_cast<const unsigned char *>(data);
    if (size < k_seq_state_header_bytes)
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: ", size, " bytes, shorter than the format's ", k_seq_state_header_bytes,
             "-byte header (truncated?)");
    if (std::memcmp(b, k_magic, 8) != 0)
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: the bytes do not start with \"LLMKITKV\": not a sequence saved by "
                                  "llmkit_kv_cache_seq_save()");
    const uint32_t version = read_u32(b + 8);
    if (version != 1 && version != 2)
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: format version ", version, "; this llmkit reads versions 1 and 2");
    const uint32_t type = read_u32(b + 12), flags = read_u32(b + 32), reserved = read_u32(b + 36);
    if (type > uint32_t(kv_dtype::fp8_e5m2))
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: dtype = ", type, " is not an llmkit_kv_dtype (0..",
             int(kv_dtype::fp8_e5m2), ")");
    if ((flags & ~1u) != 0 || reserved != 0)
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: flags = ", flags, " and reserved = ", reserved,
             ": only flag bit 0 (v_from_k) is defined, and reserved is 0");
    if (kv_dtype(type) != s.type())
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "saved sequence: saved from a ", kv_dtype_name(kv_dtype(type)),
             " cache; this cache stores ", kv_dtype_name(s.type()), " (load into a cache of the dtype it was saved from)");
    const uint32_t L = read_u32(b + 16), H = read_u32(b + 20), D = read_u32(b + 24), Dv = read_u32(b + 28);
    const bool v_from_k = (flags & 1u) != 0;
    if (L != uint64_t(s.n_layers()) || H != uint64_t(s.n_kv_heads()) || D != uint64_t(s.head_dim()) ||
        Dv != uint64_t(s.v_head_dim()) || v_from_k != s.v_from_k())
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "saved sequence: saved from a cache of ", L, " layers, ", H,
             " kv heads, head_dim ", D, ", v_head_dim ", Dv, v_from_k ? " (v_from_k)" : "", "; this cache has ",
             s.n_layers(), " layers, ", s.n_kv_heads(), " kv heads, head_dim ", s.head_dim(), ", v_head_dim ",
             s.v_head_dim(), s.v_from_k() ? " (v_from_k)" : "");
    const size_t counts_end = k_seq_state_header_bytes + 8 * size_t(L);
    if (size < counts_end + (version == 2 ? 8 : 0))
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: ", size, " bytes, too short for the token counts of its ", L,
             " layers", version == 2 ? " and its first token held" : "", " (truncated?)");
    seq_state state;
    state.lengths.resize(L);
    for (uint32_t l = 0; l < L; ++l) {
        int64_t n;
        std::memcpy(&n, b + k_seq_state_header_bytes + 8 * l, 8);
        if (n < 0) fail(LLMKIT_ERROR_FORMAT, "saved sequence: layer ", l, " holds ", n, " tokens");
        if (n > max_positions)
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "saved sequence: layer ", l, " holds ", n,
                 " tokens; a sequence of this cache holds at most ", max_positions);
        state.lengths[l] = n;
    }
    if (version == 2) {
        std::memcpy(&state.first, b + counts_end, 8);
        const int64_t shortest = L == 0 ? 0 : *std::min_element(state.lengths.begin(), state.lengths.end());
        if (state.first <= 0 || state.first > shortest)
            fail(LLMKIT_ERROR_FORMAT, "saved sequence: version 2's first token held is ", state.first,
                 "; it must lie in 1..", shortest, " (the shortest layer's tokens; a sequence that holds every "
                 "token saves as version 1)");
        if (release_block == 0)
            fail(LLMKIT_ERROR_UNSUPPORTED, "saved sequence: saved after release_before gave back its first ",
                 state.first, " tokens; a contiguous cache holds every token of a sequence (load it into a paged "
                 "cache whose block_size divides ", state.first, ")");
        if (state.first % release_block != 0)
            fail(LLMKIT_ERROR_UNSUPPORTED, "saved sequence: its first ", state.first,
                 " tokens were released (release_before), which is not a whole number of this cache's blocks of ",
                 release_block, " (load it into a paged cache whose block_size divides ", state.first, ")");
    }
    for (uint32_t l = 0; l < L; ++l)
        if (state.lengths[l] - state.first > max_held)
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "saved sequence: layer ", l, " holds ", state.lengths[l] - state.first,
                 " tokens; this cache holds at most ", max_held, " tokens of a sequence");
    const uint64_t want = seq_state_bytes(s, state);  // no overflow: every count fits the cache's own memory
    if (size != want)
        fail(LLMKIT_ERROR_FORMAT, "saved sequence: ", size, " bytes, but its header describes ", want,
             size < want ? " (truncated?)" : " (bytes after the end)");
    // Every head's rows and scales in one vectorized pass each, on the worker
    // threads; the walk that names the first bad value only where one failed.
    const std::vector<uint64_t> off = section_offsets(s, state);
    std::vector<char> ok(size_t(2 * L * H), 1);
    for_each_head(s, [&](int64_t l, int kv, int64_t h) {
        const int64_t n = state.lengths[size_t(l)] - state.first, row_bytes = section_dim(s, kv) * s.elem_bytes();
        const unsigned char *p = b + off[size_t(2 * l + kv)];
        ok[size_t((2 * l + kv) * H + h)] =
            elements_ok(s.type(), p + h * n * row_bytes, n * section_dim(s, kv)) &&
            (!kv_has_scales(s.type()) || scales_ok(s.type(), p + H * n * row_bytes + h * n * 4, n));
    });
    for (int64_t l = 0; l < int64_t(L); ++l)
        for (int kv = 0; kv < n_sections(s); ++kv)
            for (uint32_t h = 0; h < H; ++h)
                if (!ok[size_t((2 * l + kv) * H + h)])
                    name_bad_value(s, b + off[size_t(2 * l + kv)], l, kv, state.first, state.lengths[size_t(l)]);
    return state;
}

void seq_state_load(block_storage &s, const int32_t *blocks, const void *data, const seq_state &state) {
    const char *in = static_cast<const char *>(data);
    const int64_t first = state.first;
    const std::vector<uint64_t> off = section_offsets(s, state);
    for_each_head(s, [&](int64_t l, int kv, int64_t h) {
        const int64_t n = state.lengths[size_t(l)] - first, row_bytes = section_dim(s, kv) * s.elem_bytes();
        const char *p = in + off[size_t(2 * l + kv)] + h * n * row_bytes;
        for_runs(s, blocks, h, first, state.lengths[size_t(l)], [&](int64_t r, int64_t m) {
            std::memcpy(s.row(kv, l, r), p, size_t(m * row_bytes));
            p += m * row_bytes;
        });
        if (!kv_has_scales(s.type())) return;
        const float factor = kv_scale_factor(s.type());
        const char *q = in + off[size_t(2 * l + kv)] + s.n_kv_heads() * n * row_bytes + h * n * 4;
        for_runs(s, blocks, h, first, state.lengths[size_t(l)], [&](int64_t r, int64_t m) {
            float *sc = s.scale(kv, l, r);
            for (int64_t i = 0; i < m; ++i, q += 4) {
                std::memcpy(&sc[i], q, 4);
                sc[i] *= factor;
            }
        });
    });
}

}  // namespace llmkit::attention
