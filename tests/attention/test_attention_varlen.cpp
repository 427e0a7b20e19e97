// llmkit_attention_varlen: packed sequences of different lengths (empty ones,
// chunks with more keys than queries, rows that see no key) give, sequence by
// sequence, the bits of llmkit_attention on the sequence's rows (compact
// copies of compact rows; strided rows viewed in place), outputs and
// log-sum-exps, over every option and dtype;
// bad offsets, a mask and bad values are refused with errors that name them.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "llmkit/llmkit.h"

using namespace attn_test;
using llmkit::core::dtype;

TEST_CASE("attention varlen: each packed sequence gives the bits of llmkit_attention on its rows", "[attention][varlen]") {
    // Query and key rows per sequence: an empty one, a decode, a chunk after a
    // prefix, a prefill, more queries than keys (rows that see no key under causality).
    const std::vector<int64_t> lq = {0, 1, 17, 70, 9}, lk = {0, 300, 60, 70, 4};
    const int64_t Hq = 8, Hkv = 2, D = 64, B = int64_t(lq.size());
    std::vector<float> slopes(Hq), sinks(Hq);
    for (int64_t h = 0; h < Hq; ++h) {
        slopes[size_t(h)] = float(std::pow(2.0, -double(h + 1)));
        sinks[size_t(h)] = float(h) * 0.5f - 1.0f;
    }
    for (dtype t : {dtype::f32, dtype::bf16, dtype::f16})
        for (layout lay : {layout::compact, layout::padded})
            for (int variant = 0; variant < 5; ++variant) {
                INFO("dtype " << llmkit::core::dtype_name(t) << " layout " << int(lay) << " variant " << variant);
                std::mt19937 rng(uint32_t(variant * 7 + int(lay)));
                int64_t Tq = 0, Tk = 0;
                for (int64_t b = 0; b < B; ++b) Tq += lq[size_t(b)], Tk += lk[size_t(b)];
                packed q = make_packed(t, Tq, Hq, D, lay, &rng), k = make_packed(t, Tk, Hkv, D, lay, &rng),
                       v = make_packed(t, Tk, Hkv, D, lay, &rng), out = make_packed(t, Tq, Hq, D, lay, nullptr);
                offsets cq = cumulative(lq), ck = cumulative(lk);
                std::vector<float> lse(size_t(Tq * Hq), NAN);
                int64_t lse_shape[2] = {Tq, Hq};
                llmkit_tensor lse_t = host_tensor(lse.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, lse_shape);
                llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
                o.causal = variant != 1;
                if (variant == 2) o.window = 7;
                if (variant == 3) o.sinks = sinks.data(), o.softcap = 4.0f;
                if (variant == 4) o.alibi_slopes = slopes.data(), o.scale = 0.2f;
                o.lse = &lse_t;
                const llmkit_status st = llmkit_attention_varlen(q.c(), k.c(), v.c(), cq.c(), ck.c(), out.c(), &o);
                INFO(llmkit_last_error_message());
                REQUIRE(st == LLMKIT_OK);
                for (int64_t b = 0, fq = 0, fk = 0; b < B; fq += lq[size_t(b)], fk += lk[size_t(b)], ++b) {
                    INFO("sequence " << b);
                    tensor4 want = make(t, 1, lq[size_t(b)], Hq, D, layout::compact, nullptr);
                    std::vector<float> want_lse(size_t(std::max<int64_t>(lq[size_t(b)] * Hq, 1)), NAN);
                    int64_t ls[3] = {1, lq[size_t(b)], Hq};
                    llmkit_tensor wl = host_tensor(want_lse.data(), llmkit_dtype LLMKIT_DTYPE_F32, 3, ls);
                    o.lse = &wl;
                    if (lay == layout::compact) {
                        // Compact copies of the sequence's rows.
                        tensor4 sq = rows_of_packed(q, fq, lq[size_t(b)]), sk = rows_of_packed(k, fk, lk[size_t(b)]),
                                sv = rows_of_packed(v, fk, lk[size_t(b)]);
                        REQUIRE(llmkit_attention(sq.c(), sk.c(), sv.c(), want.c(), &o) == LLMKIT_OK);
                    } else {
                        // Strided rows take the paths of their strides: the sequence's rows
                        // viewed in place, [1, S, H, D] with the packed tensors' strides.
                        int64_t sh[3][4];
                        llmkit_tensor views[3];
                        const int64_t from[3] = {fq, fk, fk}, len[3] = {lq[size_t(b)], lk[size_t(b)], lk[size_t(b)]};
                        packed *src[3] = {&q, &k, &v};
                        for (int i = 0; i < 3; ++i) {
                            views[i] = *src[i]->x.c();
                            std::memcpy(sh[i], src[i]->x.shape, sizeof sh[i]);
                            sh[i][1] = len[i];
                            views[i].shape = sh[i];
                            views[i].byte_offset = uint64_t(from[i] * src[i]->x.strides[1]) * src[i]->x.es();
                        }
                        REQUIRE(llmkit_attention(&views[0], &views[1], &views[2], want.c(), &o) == LLMKIT_OK);
                    }
                    o.lse = &lse_t;
                    bool same = true;
                    for (int64_t i = 0; i < lq[size_t(b)]; ++i)
                        for (int64_t h = 0; h < Hq; ++h) {
                            const float got_l = lse[size_t((fq + i) * Hq + h)], want_l = want_lse[size_t(i * Hq + h)];
                            same = same && std::memcmp(&got_l, &want_l, 4) == 0;
                            for (int64_t d = 0; d < D; ++d) same = same && out.x.get(0, fq + i, h, d) == want.get(0, i, h, d);
                        }
                    CHECK(same);
                }
            }
}

TEST_CASE("attention varlen: bad offsets, a mask and bad values are refused by name", "[attention][varlen]") {
    std::mt19937 rng(9);
    const int64_t Hq = 4, Hkv = 2, D = 16;
    packed q = make_packed(dtype::f32, 10, Hq, D, layout::compact, &rng), k = make_packed(dtype::f32, 12, Hkv, D, layout::compact, &rng),
           v = make_packed(dtype::f32, 12, Hkv, D, layout::compact, &rng), out = make_packed(dtype::f32, 10, Hq, D, layout::compact, nullptr);
    auto refused = [&](offsets cq, offsets ck, llmkit_status want, const char *words,
                       const llmkit_attention_options *o = nullptr) {
        const llmkit_status st = llmkit_attention_varlen(q.c(), k.c(), v.c(), cq.c(), ck.c(), out.c(), o);
        const std::string msg = llmkit_last_error_message();
        INFO(msg);
        CHECK(st == want);
        CHECK(msg.find(words) != std::string::npos);
    };
    REQUIRE(llmkit_attention_varlen(q.c(), k.c(), v.c(), offsets({0, 4, 10}).c(), offsets({0, 5, 12}).c(), out.c(),
                                    nullptr) == LLMKIT_OK);
    refused(offsets({1, 4, 10}), offsets({0, 5, 12}), LLMKIT_ERROR_INVALID_ARGUMENT, "cu_seqlens_q[0] must be 0");
    refused(offsets({0, 6, 4, 10}), offsets({0, 5, 5, 12}), LLMKIT_ERROR_INVALID_ARGUMENT, "must not decrease");
    refused(offsets({0, 4, 9}), offsets({0, 5, 12}), LLMKIT_ERROR_SHAPE, "the 10 rows of q");
    refused(offsets({0, 4, 10}), offsets({0, 5, 13}), LLMKIT_ERROR_SHAPE, "the 12 rows of k");
    refused(offsets({0, 4, 10}), offsets({0, 12}), LLMKIT_ERROR_SHAPE, "both must be B + 1");
    refused(offsets({}), offsets({}), LLMKIT_ERROR_SHAPE, "B + 1 >= 1");
    std::vector<float> mask(4, 0.0f);
    int64_t ms[2] = {2, 2};
    llmkit_tensor mt = host_tensor(mask.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, ms);
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.mask = &mt;
    refused(offsets({0, 4, 10}), offsets({0, 5, 12}), LLMKIT_ERROR_UNSUPPORTED, "options.mask", &o);
    // Float offsets.
    std::vector<float> fo = {0.0f, 10.0f};
    int64_t fs[1] = {2};
    llmkit_tensor ft = host_tensor(fo.data(), llmkit_dtype LLMKIT_DTYPE_F32, 1, fs);
    CHECK(llmkit_attention_varlen(q.c(), k.c(), v.c(), &ft, offsets({0, 12}).c(), out.c(), nullptr) == LLMKIT_ERROR_DTYPE);
    // A NaN in the second sequence's keys: named with its sequence.
    k.x.set(0, 7, 1, 3, NAN);
    refused(offsets({0, 4, 10}), offsets({0, 5, 12}), LLMKIT_ERROR_NON_FINITE, "k of sequence 1");
    // The 4-D form is llmkit_attention's.
    CHECK(llmkit_attention_varlen(q.x.c(), k.c(), v.c(), offsets({0, 10}).c(), offsets({0, 12}).c(), out.c(), nullptr) ==
          LLMKIT_ERROR_SHAPE);
}
