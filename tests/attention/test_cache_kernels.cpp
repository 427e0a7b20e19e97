// cache_attention over every kernel set the CPU runs (portable, AVX2,
// AVX-512), called on hand-made block tables: decode reads K/V where they lie
// (fp32 in place, 16-bit through dots_half / gemm_half where the set has them,
// else converted run by run), so a contiguous table and a shuffled paged table
// of any block size must give the same bits, and both must match a float64
// reference on the dequantised rows.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "attention/kernels.hpp"
#include "attention/kv_cache.hpp"
#include "attention/online_softmax.hpp"
#include "kv_helpers.hpp"
#include "core/tensor.hpp"
#include "llmkit/llmkit.h"
#include "quant/formats.hpp"

using llmkit::attention::cache_attention;
using llmkit::attention::cache_attention_params;
using llmkit::attention::cache_layer_view;
using llmkit::attention::cache_seq;
using llmkit::attention::kernels;
using llmkit::attention::kv_dtype;

namespace {

std::vector<const kernels *> sets() {
    std::vector<const kernels *> v{&llmkit::attention::generic_kernels()};
    if (llmkit::attention::avx2_kernels()) v.push_back(llmkit::attention::avx2_kernels());
    if (llmkit::attention::avx512_kernels()) v.push_back(llmkit::attention::avx512_kernels());
    if (llmkit::attention::avx512_kernels_other_bf16_scores())
        v.push_back(llmkit::attention::avx512_kernels_other_bf16_scores());
    return v;
}

// One sequence of S tokens, Hkv heads of D, as block storage with blocks of
// bs rows placed in the order `table` gives.
struct store {
    kv_dtype type;
    int64_t Hkv, D, bs, n_blocks;
    std::vector<char> k, v;
    std::vector<float> ks, vs;
    std::vector<int32_t> table;
    cache_layer_view view() const {
        cache_layer_view L;
        L.type = type;
        L.n_kv_heads = Hkv;
        L.head_dim = D;
        L.block_size = bs;
        L.n_blocks = n_blocks;
        L.k = k.data();
        L.v = v.data();
        L.k_scale = ks.data();
        L.v_scale = vs.data();
        return L;
    }
};

// The rows as float values (what the cache holds, dequantised): kf/vf [S][Hkv][D].
struct rows {
    std::vector<float> kf, vf;
    std::vector<char> kraw, vraw;  // [S][Hkv][D] elements of the cache's type
    std::vector<float> ks, vs;     // [S][Hkv] 8-bit rows' scales
};

// An 8-bit element's raw value (kernels.hpp's row_type), from the quant
// block's decoding tables for FP8: E4M3 is read as its value / 2^8.
float raw_value(kv_dtype t, char b) {
    if (t == kv_dtype::i8) return float(int8_t(b));
    if (t == kv_dtype::fp8_e4m3) return llmkit::quant::e4m3_to_f32(uint8_t(b)) / 256.0f;
    return llmkit::quant::e5m2_to_f32(uint8_t(b));
}
float raw_value(llmkit::attention::row_type e, char b) { return raw_value(kv_dtype(int(e)), b); }

const kv_dtype k_all_types[] = {kv_dtype::f32, kv_dtype::bf16, kv_dtype::f16, kv_dtype::i8, kv_dtype::fp8_e4m3,
                                kv_dtype::fp8_e5m2};

rows make_rows(kv_dtype t, int64_t S, int64_t Hkv, int64_t D, std::mt19937 &rng) {
    const int64_t es = llmkit::attention::kv_dtype_bytes(t), n = S * Hkv * D;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    rows r;
    r.kf.resize(size_t(n));
    r.vf.resize(size_t(n));
    r.kraw.resize(size_t(n * es));
    r.vraw.resize(size_t(n * es));
    r.ks.assign(size_t(S * Hkv), 1.0f);
    r.vs.assign(size_t(S * Hkv), 1.0f);
    for (int which = 0; which < 2; ++which) {
        std::vector<float> &f = which ? r.vf : r.kf;
        std::vector<char> &raw = which ? r.vraw : r.kraw;
        std::vector<float> &sc = which ? r.vs : r.ks;
        for (int64_t i = 0; i < n; ++i) {
            const float x = u(rng);
            if (t == kv_dtype::f32) {
                f[size_t(i)] = x;
                std::memcpy(&raw[size_t(i * 4)], &x, 4);
            } else if (t == kv_dtype::bf16 || t == kv_dtype::f16) {
                const uint16_t h = t == kv_dtype::bf16 ? llmkit::core::f32_to_bf16(x) : llmkit::core::f32_to_f16(x);
                f[size_t(i)] = t == kv_dtype::bf16 ? llmkit::core::bf16_to_f32(h) : llmkit::core::f16_to_f32(h);
                std::memcpy(&raw[size_t(i * 2)], &h, 2);
            } else if (t == kv_dtype::i8) {
                const int8_t q = int8_t(std::lround(x * 127.0f));
                raw[size_t(i)] = char(q);
            } else {  // FP8 bytes over the whole range, subnormals included
                raw[size_t(i)] = char(t == kv_dtype::fp8_e4m3 ? llmkit::quant::f32_to_e4m3(x * 448.0f)
                                                              : llmkit::quant::f32_to_e5m2(x * 57344.0f));
            }
        }
        // Scales that put every type's values in [-0.5, 0.5], as int8's 127 * 0.004.
        const float unit = t == kv_dtype::fp8_e4m3 ? 127.0f * 256.0f / 448.0f
                           : t == kv_dtype::fp8_e5m2 ? 127.0f / 57344.0f
                                                     : 1.0f;
        if (llmkit::attention::kv_has_scales(t))
            for (int64_t row = 0; row < S * Hkv; ++row) {
                sc[size_t(row)] = (0.004f + 0.0001f * float(row % 13)) * unit;
                for (int64_t d = 0; d < D; ++d)
                    f[size_t(row * D + d)] = raw_value(t, raw[size_t(row * D + d)]) * sc[size_t(row)];
            }
    }
    return r;
}

// Lays the rows out in blocks of bs, placed by a shuffled table (or in order).
store make_store(kv_dtype t, const rows &r, int64_t S, int64_t Hkv, int64_t D, int64_t bs, bool shuffle,
                 std::mt19937 &rng) {
    const int64_t es = llmkit::attention::kv_dtype_bytes(t);
    store s{t, Hkv, D, bs, (S + bs - 1) / bs + 2, {}, {}, {}, {}, {}};
    s.k.assign(size_t(s.n_blocks * Hkv * bs * D * es), 0);
    s.v = s.k;
    s.ks.assign(size_t(s.n_blocks * Hkv * bs), 0.0f);
    s.vs = s.ks;
    std::vector<int32_t> ids(static_cast<size_t>(s.n_blocks));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
    if (shuffle) std::shuffle(ids.begin(), ids.end(), rng);
    s.table.assign(ids.begin(), ids.begin() + (S + bs - 1) / bs);
    for (int64_t j = 0; j < S; ++j)
        for (int64_t g = 0; g < Hkv; ++g) {
            const int64_t row = (int64_t(s.table[size_t(j / bs)]) * Hkv + g) * bs + j % bs;
            std::memcpy(&s.k[size_t(row * D * es)], &r.kraw[size_t((j * Hkv + g) * D * es)], size_t(D * es));
            std::memcpy(&s.v[size_t(row * D * es)], &r.vraw[size_t((j * Hkv + g) * D * es)], size_t(D * es));
            s.ks[size_t(row)] = r.ks[size_t(j * Hkv + g)];
            s.vs[size_t(row)] = r.vs[size_t(j * Hkv + g)];
        }
    return s;
}

// cache_attention of q [1, Sq, Hq, D] (and out) of dtype `type` over one
// sequence of S tokens stored as s.
void attend(const store &s, int64_t S, void *q, void *out, llmkit_dtype type, int64_t Sq, int64_t Hq,
            const kernels *ks, int64_t split, int threads) {
    int64_t shape[4] = {1, Sq, Hq, s.D};
    llmkit_tensor tq = {q, LLMKIT_DEVICE_HOST, 4, type, shape, nullptr, 0};
    llmkit_tensor to = {out, LLMKIT_DEVICE_HOST, 4, type, shape, nullptr, 0};
    const auto vq = llmkit::core::tensor_view::from(&tq, "q"), vo = llmkit::core::tensor_view::from(&to, "out");
    const cache_seq seq{s.table.data(), int64_t(s.table.size()), S};
    cache_attention_params p;
    p.kernel_set = ks;
    p.split_keys = split;
    p.n_threads = threads;
    cache_attention(s.view(), &seq, 1, vq, vo, p);
}

std::vector<float> run(const store &s, int64_t S, const std::vector<float> &q, int64_t Sq, int64_t Hq,
                       const kernels *ks, int64_t split, int threads) {
    std::vector<float> out(q.size(), -1.0f), qc = q;
    attend(s, S, qc.data(), out.data(), LLMKIT_DTYPE_F32, Sq, Hq, ks, split, threads);
    return out;
}

// run() with bf16 queries and output (q's values must be exact in bf16):
// where the set has dots_bf16_pf, decode's scores come from bf16 pairs.
std::vector<float> run_bf16(const store &s, int64_t S, const std::vector<float> &q, int64_t Sq, int64_t Hq,
                            const kernels *ks, int64_t split, int threads) {
    std::vector<uint16_t> qh(q.size()), out(q.size(), 0xFFFF);
    for (size_t i = 0; i < q.size(); ++i) qh[i] = llmkit::core::f32_to_bf16(q[i]);
    attend(s, S, qh.data(), out.data(), LLMKIT_DTYPE_BF16, Sq, Hq, ks, split, threads);
    std::vector<float> f(out.size());
    for (size_t i = 0; i < out.size(); ++i) f[i] = llmkit::core::bf16_to_f32(out[i]);
    return f;
}

// |got - ref| <= 4e-6 + 1e-5 |ref| everywhere (fp32 accumulation against
// float64 over the same stored values); *err receives the largest |got - ref|.
bool within_reference(const std::vector<float> &got, const std::vector<double> &ref, double *err) {
    bool ok = true;
    *err = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double e = std::fabs(double(got[i]) - ref[i]);
        *err = std::max(*err, e);
        if (!(e <= 4e-6 + 1e-5 * std::fabs(ref[i]))) ok = false;
    }
    return ok;
}

// Causal attention of the last Sq tokens in float64, over K [S][Hkv][D] and V [S][Hkv][Dv].
std::vector<double> reference(const std::vector<float> &kf, const std::vector<float> &vf, int64_t S,
                              const std::vector<float> &q, int64_t Sq, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv) {
    const int64_t G = Hq / Hkv;
    std::vector<double> out(size_t(Sq * Hq * Dv), 0.0), s(static_cast<size_t>(S));
    for (int64_t i = 0; i < Sq; ++i)
        for (int64_t h = 0; h < Hq; ++h) {
            const int64_t g = h / G, last = S - Sq + i;
            double mx = -INFINITY;
            for (int64_t j = 0; j <= last; ++j) {
                double acc = 0.0;
                for (int64_t d = 0; d < D; ++d)
                    acc += double(q[size_t((i * Hq + h) * D + d)]) * double(kf[size_t((j * Hkv + g) * D + d)]);
                s[size_t(j)] = acc / std::sqrt(double(D));
                mx = std::max(mx, s[size_t(j)]);
            }
            double sum = 0.0;
            for (int64_t j = 0; j <= last; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
            for (int64_t j = 0; j <= last; ++j)
                for (int64_t d = 0; d < Dv; ++d)
                    out[size_t((i * Hq + h) * Dv + d)] += s[size_t(j)] / sum * double(vf[size_t((j * Hkv + g) * Dv + d)]);
        }
    return out;
}

// The same over a case's rows, V as wide as K.
std::vector<double> reference(const rows &r, int64_t S, const std::vector<float> &q, int64_t Sq, int64_t Hq,
                              int64_t Hkv, int64_t D) {
    return reference(r.kf, r.vf, S, q, Sq, Hq, Hkv, D, D);
}

}  // namespace

TEST_CASE("cache attention, every kernel set: paged tables give the contiguous bits and match the reference",
          "[attention][kv][kernels]") {
    const int64_t Hkv = 2, Hq = 8;
    for (const kernels *ks : sets())
        for (kv_dtype t : k_all_types)
            for (int64_t D : {128, 80, 20}) {
                const int64_t S = 301;
                std::mt19937 rng(uint32_t(D * 7 + int(t)));
                const rows r = make_rows(t, S, Hkv, D, rng);
                const store flat = make_store(t, r, S, Hkv, D, S, false, rng);
                for (int64_t Sq : {1, 2, 5}) {  // R = 4, 8 rows (dot products) and 20 rows (gemm)
                    std::vector<float> q(size_t(Sq * Hq * D));
                    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
                    for (float &x : q) x = u(rng);
                    const std::vector<double> ref = reference(r, S, q, Sq, Hq, Hkv, D);
                    for (int64_t split : {0, 128}) {
                        const std::vector<float> want = run(flat, S, q, Sq, Hq, ks, split, 1);
                        double err = 0.0;
                        const bool ok = within_reference(want, ref, &err);
                        INFO("kernels " << ks->name << " cache " << llmkit::attention::kv_dtype_name(t) << " D " << D
                                        << " Sq " << Sq << " split " << split << " max error " << err);
                        CHECK(ok);
                        for (int64_t bs : {1, 7, 16, 64}) {
                            const store paged = make_store(t, r, S, Hkv, D, bs, true, rng);
                            const std::vector<float> got = run(paged, S, q, Sq, Hq, ks, split, 3);
                            INFO("block size " << bs);
                            CHECK(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
                        }
                    }
                }
            }
}

// Decode takes several kv heads per task when the sequence gives enough
// split-KV parts to keep the threads busy (so 1, 2 and 3 threads group the
// heads differently), walks each block's runs of those heads in turn and has
// every piece ask for the piece ~16 KiB on (across tiles, K to V and back, up
// to the end of the keys). None of that may change a bit: contexts off the
// block and tile edges (tiles of 128 keys with a 128-key split, of 256
// without), a context of one token, 1..15 rows per head, shuffled
// (non-monotone) block tables, and the kernel set without its prefetching
// decode kernels, all against the contiguous table on 1 thread and the
// float64 reference.
// (Paged int8 caches in integers go through the runs kernels here, and
// piece by piece with them switched off: the same bits.)
TEST_CASE("cache attention decode: heads per task, block and tile edges, shuffled tables, with and without dots_pf",
          "[attention][kv][kernels]") {
    const int64_t Hkv = 4, D = 40;
    for (const kernels *ks : sets()) {
        kernels plain = *ks;  // the same set, decode through dots / gemm and burst prefetches
        plain.dots_pf = nullptr;
        plain.gemm_pf = nullptr;
        kernels piecewise = *ks;  // int8 over paged blocks a piece at a time (as past k_cache_resident_bytes)
        piecewise.dots_i8_runs_pf = nullptr;
        piecewise.gemm_i8_runs_pf = nullptr;
        for (kv_dtype t : k_all_types)
            for (int64_t S : {1, 17, 64, 65, 257, 411}) {
                std::mt19937 rng(uint32_t(S * 5 + int(t)));
                const rows r = make_rows(t, S, Hkv, D, rng);
                const store flat = make_store(t, r, S, Hkv, D, S, false, rng);
                // 1, 4, 15, 20 and 64 rows per head, and 72 in two query tiles of 64 and 8 (the
                // largest tasks of decode's kernels for every row type, see decode_rows_max;
                // float32 and fp16 past them in 4 query tiles)
                for (auto [G, Sq] :
                     {std::pair<int64_t, int64_t>{1, 1}, {2, 2}, {3, 5}, {4, 5}, {16, 4}, {8, 9}, {8, 25}}) {
                    if (Sq > S) continue;
                    const int64_t Hq = G * Hkv;
                    std::vector<float> q(size_t(Sq * Hq * D));
                    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
                    for (float &x : q) x = u(rng);
                    const std::vector<double> ref = reference(r, S, q, Sq, Hq, Hkv, D);
                    for (int64_t split : {0, 128}) {
                        if (split > 0 && S <= split) continue;  // one part either way
                        const std::vector<float> want = run(flat, S, q, Sq, Hq, ks, split, 1);
                        // int8 in integers: the queries and weights as int16 (see k_int8_int_abs)
                        const double tol = t == kv_dtype::i8 && ks->dots_i8_pf ? kv_test::k_int8_int_abs : 4e-6;
                        bool ok = true;
                        for (size_t i = 0; i < want.size(); ++i)
                            if (!(std::fabs(double(want[i]) - ref[i]) <= tol + 1e-5 * std::fabs(ref[i]))) ok = false;
                        INFO("kernels " << ks->name << " cache " << llmkit::attention::kv_dtype_name(t) << " S " << S
                                        << " G " << G << " Sq " << Sq << " split " << split);
                        CHECK(ok);
                        // With 4 parts 1, 2 and 3 threads take 4, 2 and 1 heads per task;
                        // with one part every thread count takes 1.
                        const std::vector<int> thread_counts =
                            split > 0 ? std::vector<int>{1, 2, 3} : std::vector<int>{2};
                        for (int64_t bs : {16, 5})
                            for (int threads : thread_counts) {
                                const store paged = make_store(t, r, S, Hkv, D, bs, true, rng);
                                INFO("block size " << bs << " threads " << threads);
                                const std::vector<float> got = run(paged, S, q, Sq, Hq, ks, split, threads);
                                CHECK(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
                                if (ks->dots_i8_runs_pf && t == kv_dtype::i8) {
                                    const std::vector<float> got_pieces =
                                        run(paged, S, q, Sq, Hq, &piecewise, split, threads);
                                    CHECK(std::memcmp(got_pieces.data(), want.data(), want.size() * 4) == 0);
                                }
                                if (!ks->dots_pf) continue;  // plain is this set
                                const std::vector<float> got_plain = run(paged, S, q, Sq, Hq, &plain, split, threads);
                                CHECK(std::memcmp(got_plain.data(), want.data(), want.size() * 4) == 0);
                            }
                    }
                }
            }
    }
}

// The kernels contract: dots_pf and gemm_pf give the bits of the plain calls
// (dots / dots_half / gemm / gemm_half, 8-bit rows converted by q8_to_f32 with
// unit scales first), for any number of rows and keys. Checked here on the
// kernels directly, beyond the shapes decode makes (pieces of at most 16 keys):
// up to 100 keys, 1 to 40 rows (the AVX-512 set switches to its own products
// from 16 rows), accumulating into C with row scales.
TEST_CASE("kernels: dots_pf and gemm_pf give the bits of the plain kernels", "[attention][kernels]") {
    using llmkit::attention::row_type;
    std::mt19937 rng(2024);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<char> pf_area(1 << 16, 1);
    for (const kernels *ks : sets()) {
        if (!ks->dots_pf || !ks->gemm_pf) continue;
        for (row_type e : {row_type::f32, row_type::bf16, row_type::f16, row_type::i8, row_type::e4m3, row_type::e5m2})
            for (int M : {1, 4, 15, 16, 20, 40})
                for (int K : {1, 16, 33, 100})
                    for (int N : {40, 128}) {
                        INFO("kernels " << ks->name << " row type " << int(e) << " M " << M << " K " << K << " N "
                                        << N);
                        // B: K rows of N (ldb = N + 3), as float32 and in its own type.
                        const int64_t ldb = N + 3;
                        std::vector<float> Bf(size_t(K * ldb));
                        for (float &x : Bf) x = u(rng);
                        std::vector<uint16_t> Bh(Bf.size());
                        std::vector<int8_t> Bi(Bf.size());
                        if (e == row_type::bf16 || e == row_type::f16) {
                            ks->f32_to_half(Bh.data(), Bf.data(), int64_t(Bf.size()), e == row_type::bf16);
                            ks->half_to_f32(Bf.data(), Bh.data(), int64_t(Bf.size()), e == row_type::bf16);
                        } else if (llmkit::attention::is_8bit(e)) {
                            for (size_t i = 0; i < Bf.size(); ++i) {
                                Bi[i] = e == row_type::i8     ? int8_t(std::lround(Bf[i] * 60.0f))
                                        : e == row_type::e4m3 ? int8_t(llmkit::quant::f32_to_e4m3(Bf[i] * 200.0f))
                                                              : int8_t(llmkit::quant::f32_to_e5m2(Bf[i] * 200.0f));
                                Bf[i] = raw_value(e, char(Bi[i]));
                            }
                        }
                        const void *Braw = e == row_type::f32          ? static_cast<const void *>(Bf.data())
                                           : llmkit::attention::is_8bit(e) ? static_cast<const void *>(Bi.data())
                                                                           : static_cast<const void *>(Bh.data());
                        const bool half = e == row_type::bf16 || e == row_type::f16, bf16 = e == row_type::bf16;
                        // gemm: C [M, N] = row_scale * C + A [M, K] B, A read with row stride 1, k stride M.
                        std::vector<float> A(size_t(M * K)), C0(size_t(M * N)), rs(static_cast<size_t>(M));
                        for (float &x : A) x = u(rng);
                        for (float &x : C0) x = u(rng);
                        for (float &x : rs) x = u(rng);
                        std::vector<float> want = C0, got = C0;
                        if (half && ks->gemm_half)
                            ks->gemm_half(M, N, K, A.data(), 1, M, Bh.data(), ldb, bf16, want.data(), N, true, rs.data());
                        else
                            ks->gemm(M, N, K, A.data(), 1, M, Bf.data(), ldb, want.data(), N, true, rs.data());
                        ks->gemm_pf(M, N, K, A.data(), 1, M, Braw, ldb, e, got.data(), N, true, rs.data(),
                                    pf_area.data(), int64_t(pf_area.size()));
                        CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                        // dots: ST [j * M + r] = Q row r . B row j over N elements (K keys).
                        std::vector<float> st_want(size_t(K * M)), st_got(size_t(K * M));
                        std::vector<float> Q(size_t(M * N));
                        for (float &x : Q) x = u(rng);
                        if (half && ks->dots_half)
                            ks->dots_half(M, K, N, Q.data(), N, Bh.data(), ldb, bf16, st_want.data());
                        else
                            ks->dots(M, K, N, Q.data(), N, Bf.data(), ldb, st_want.data());
                        std::vector<float> unit(size_t(K), 1.0f);
                        ks->dots_pf(M, K, N, Q.data(), N, Braw, ldb, e, unit.data(), st_got.data(), pf_area.data(),
                                    int64_t(pf_area.size()));
                        CHECK(std::memcmp(st_want.data(), st_got.data(), st_want.size() * 4) == 0);
                    }
    }
}

// A key's score from dots_pf does not depend on which keys or query rows
// share its call (paged and contiguous caches, and calls cut anywhere, rely
// on it): every key and row alone gives the bits of the whole call.
TEST_CASE("kernels: a key's dots_pf score is the same whatever keys and rows share the call", "[attention][kernels]") {
    using llmkit::attention::row_type;
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    for (const kernels *ks : sets()) {
        if (!ks->dots_pf) continue;
        for (row_type e : {row_type::f32, row_type::bf16, row_type::f16, row_type::i8, row_type::e4m3, row_type::e5m2})
            for (int R : {1, 3, 4, 7})
                for (int N : {1, 5, 9})
                    for (int D : {8, 40, 128}) {
                        INFO("kernels " << ks->name << " row type " << int(e) << " R " << R << " N " << N << " D " << D);
                        const int64_t ldk = D + 3, eb = e == row_type::f32 ? 4 : llmkit::attention::is_8bit(e) ? 1 : 2;
                        std::vector<char> K(size_t(N * ldk * eb));
                        for (size_t i = 0; i < K.size(); i += size_t(eb)) {  // small finite values of each type
                            const float x = u(rng);
                            if (e == row_type::f32) std::memcpy(&K[i], &x, 4);
                            else if (e == row_type::i8) K[i] = char(int(x * 60.0f));
                            else if (e == row_type::e4m3) K[i] = char(llmkit::quant::f32_to_e4m3(x * 200.0f));
                            else if (e == row_type::e5m2) K[i] = char(llmkit::quant::f32_to_e5m2(x * 200.0f));
                            else {
                                uint16_t h;
                                ks->f32_to_half(&h, &x, 1, e == row_type::bf16);
                                std::memcpy(&K[i], &h, 2);
                            }
                        }
                        std::vector<float> Q(size_t(R * D)), sc(static_cast<size_t>(N));
                        for (float &x : Q) x = u(rng);
                        for (float &x : sc) x = 0.01f + std::abs(u(rng));
                        std::vector<float> all(size_t(N * R)), one(1);
                        ks->dots_pf(R, N, D, Q.data(), D, K.data(), ldk, e, sc.data(), all.data(), nullptr, 0);
                        for (int j = 0; j < N; ++j)
                            for (int r = 0; r < R; ++r) {
                                ks->dots_pf(1, 1, D, Q.data() + r * D, D, K.data() + j * ldk * eb, ldk, e, sc.data() + j,
                                            one.data(), nullptr, 0);
                                CHECK(std::memcmp(&one[0], &all[size_t(j * R + r)], 4) == 0);
                            }
                    }
    }
}

// The tokens kernels (decode over plain [S, H, D] rows, every head of a few
// tokens in turn): each head's scores and p.v with the bits of dots_pf and
// gemm_pf called on that head's rows alone, alpha applied before the first
// key only, for any group of keys, and nothing written between the heads'
// areas.
TEST_CASE("kernels: dots_tokens_pf and gemm_tokens_pf give each head the bits of dots_pf and gemm_pf",
          "[attention][kernels]") {
    using llmkit::attention::row_type;
    std::mt19937 rng(4242);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<char> pf_area(1 << 15, 1);
    int sets_run = 0;
    for (const kernels *ks : sets()) {
        if (!ks->dots_tokens_pf || !ks->gemm_tokens_pf) continue;
        ++sets_run;
        for (row_type e : {row_type::f32, row_type::bf16, row_type::f16})
            for (int H : {2, 3, 8})
                for (int R : {1, 3, 4, 5, 8, 15, 16, 64})
                    for (int N : {1, 2, 3, 5, 17, 64})
                        for (int D : {16, 40, 128, 256}) {
                            if (H * D > 1024 && N > 17) continue;  // (enough of the large cases)
                            if (R >= 16 && (H > 3 || N > 17 || D > 128)) continue;
                            const int group = std::array<int, 4>{1, 3, 4, 16}[size_t(rng() % 4)];
                            const bool with_alpha = rng() % 4 != 0;
                            INFO("kernels " << ks->name << " row type " << int(e) << " H " << H << " R " << R << " N "
                                            << N << " D " << D << " group " << group << " alpha " << with_alpha);
                            const bool half = e != row_type::f32, bf16 = e == row_type::bf16;
                            const int64_t ts = int64_t(H) * D;
                            // The rows [N][H][D], as float32 and in their own type.
                            std::vector<float> Kf(size_t(N * ts)), Vf(size_t(N * ts));
                            std::vector<uint16_t> Kh(Kf.size()), Vh(Vf.size());
                            for (std::vector<float> *x : {&Kf, &Vf})
                                for (float &y : *x) y = u(rng);
                            if (half) {
                                ks->f32_to_half(Kh.data(), Kf.data(), int64_t(Kf.size()), bf16);
                                ks->f32_to_half(Vh.data(), Vf.data(), int64_t(Vf.size()), bf16);
                            }
                            const char *K = half ? reinterpret_cast<const char *>(Kh.data())
                                                 : reinterpret_cast<const char *>(Kf.data());
                            const char *V = half ? reinterpret_cast<const char *>(Vh.data())
                                                 : reinterpret_cast<const char *>(Vf.data());
                            const int64_t eb = half ? 2 : 4;
                            // Per head: queries [R][D], scores / P [N * R], output [R][D], alpha [R], in
                            // areas head_stride floats apart with room to spare (which must stay as it is).
                            const int64_t hs = std::max<int64_t>(int64_t(N) * R, int64_t(R) * D) + 9;
                            std::vector<float> Q(size_t(H * hs)), P(size_t(H * hs)), O0(size_t(H * hs)),
                                alpha(size_t(H * hs));
                            for (std::vector<float> *x : {&Q, &P, &O0, &alpha})
                                for (float &y : *x) y = u(rng);
                            std::vector<float> st_want(size_t(H * hs), 7.0f), st_got = st_want;
                            std::vector<float> o_want = O0, o_got = O0;
                            std::vector<float> unit(size_t(N), 1.0f);
                            for (int h = 0; h < H; ++h) {
                                const size_t at = size_t(h * hs);
                                ks->dots_pf(R, N, D, Q.data() + at, D, K + h * D * eb, ts, e, unit.data(),
                                            st_want.data() + at, nullptr, 0);
                                ks->gemm_pf(R, D, N, P.data() + at, 1, R, V + h * D * eb, ts, e, o_want.data() + at, D,
                                            true, with_alpha ? alpha.data() + at : nullptr, nullptr, 0);
                            }
                            ks->dots_tokens_pf(H, R, N, D, Q.data(), K, e, st_got.data(), hs, pf_area.data(),
                                               int64_t(pf_area.size()), 16384);
                            ks->gemm_tokens_pf(H, R, N, D, group, P.data(), V, e, o_got.data(),
                                               with_alpha ? alpha.data() : nullptr, hs, pf_area.data(),
                                               int64_t(pf_area.size()), 16384);
                            CHECK(std::memcmp(st_want.data(), st_got.data(), st_want.size() * 4) == 0);
                            CHECK(std::memcmp(o_want.data(), o_got.data(), o_want.size() * 4) == 0);
                        }
    }
    CHECK(sets_run > 0);  // (the AVX2 set has them: every x86-64 CI machine runs it)

    // The bf16 ones: dots_bf16_pf's and gemm_bf16_eo_pf's bits per head.
    for (const kernels *ks : sets())
        for (int H : {2, 3, 8})
            for (int R : {1, 3, 4, 5, 8, 15})
                for (int N : {1, 3, 4, 5, 17, 64})
                    for (int D : {32, 40, 128, 256}) {
                        if (H * D > 1024 && N > 17) continue;
                        const int group = std::array<int, 4>{1, 3, 8, 32}[size_t(rng() % 4)];
                        const bool with_alpha = rng() % 4 != 0;
                        INFO("kernels " << ks->name << " H " << H << " R " << R << " N " << N << " D " << D << " group "
                                        << group << " alpha " << with_alpha);
                        const int64_t ts = int64_t(H) * D;
                        std::vector<float> Kf(size_t(N * ts)), Vf(size_t(N * ts));
                        std::vector<uint16_t> K(Kf.size()), V(Vf.size());
                        for (std::vector<float> *x : {&Kf, &Vf})
                            for (float &y : *x) y = u(rng);
                        ks->f32_to_half(K.data(), Kf.data(), int64_t(Kf.size()), true);
                        ks->f32_to_half(V.data(), Vf.data(), int64_t(Vf.size()), true);
                        const int64_t hs = std::max<int64_t>(int64_t(N) * R, int64_t(R) * D) + 9;
                        std::vector<float> Qstore(size_t(H * hs)), P(size_t(H * hs)), O0(size_t(H * hs)),
                            alpha(size_t(H * hs));
                        for (std::vector<float> *x : {&P, &O0, &alpha})
                            for (float &y : *x) y = u(rng);
                        // Head h's bf16 queries at Q + 2 * h * hs (uint16_t).
                        uint16_t *Q = reinterpret_cast<uint16_t *>(Qstore.data());
                        for (int h = 0; h < H; ++h) {
                            std::vector<float> qf(size_t(R * D));
                            for (float &y : qf) y = u(rng);
                            ks->f32_to_half(Q + 2 * h * hs, qf.data(), int64_t(qf.size()), true);
                        }
                        const float scale = 0.0883883f;
                        if (ks->dots_bf16_pf && ks->dots_bf16_tokens_pf) {
                            std::vector<float> want(size_t(H * hs), 7.0f), got = want;
                            for (int h = 0; h < H; ++h)
                                ks->dots_bf16_pf(R, N, D, Q + 2 * h * hs, D, K.data() + h * D, ts, scale,
                                                 want.data() + h * hs, nullptr, 0);
                            ks->dots_bf16_tokens_pf(H, R, N, D, Q, K.data(), scale, got.data(), hs, pf_area.data(),
                                                    int64_t(pf_area.size()), 16384);
                            CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                        }
                        if (ks->gemm_bf16_eo_pf && ks->gemm_bf16_eo_tokens_pf && D % 32 == 0) {
                            std::vector<float> want = O0, got = O0;
                            for (int h = 0; h < H; ++h)
                                ks->gemm_bf16_eo_pf(R, D, N, P.data() + h * hs, 1, R, V.data() + h * D, ts,
                                                    want.data() + h * hs, D, true,
                                                    with_alpha ? alpha.data() + h * hs : nullptr, nullptr, 0);
                            ks->gemm_bf16_eo_tokens_pf(H, R, N, D, group, P.data(), V.data(), got.data(),
                                                       with_alpha ? alpha.data() : nullptr, hs, pf_area.data(),
                                                       int64_t(pf_area.size()), 16384);
                            CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                        }
                    }
}

// Random operands of a decode p.v (C = A^T B over K rows of B of ldb): B as
// float32 and, when `half`, as bf16 or fp16; A; a starting C; row scales.
struct pv_operands {
    std::vector<float> Bf, A, C0, rs;
    std::vector<uint16_t> Bh;
};
pv_operands random_pv_operands(std::mt19937 &rng, const kernels *k, int M, int N, int K, int64_t ldb, bool half,
                               bool bf16) {
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    pv_operands o;
    o.Bf.resize(size_t(K * ldb));
    for (float &x : o.Bf) x = u(rng);
    o.Bh.resize(o.Bf.size());
    if (half) k->f32_to_half(o.Bh.data(), o.Bf.data(), int64_t(o.Bf.size()), bf16);
    o.A.resize(size_t(M * K));
    o.C0.resize(size_t(M * N));
    o.rs.resize(size_t(M));
    for (std::vector<float> *v : {&o.A, &o.C0, &o.rs})
        for (float &x : *v) x = u(rng);
    return o;
}

// Decode's p.v of 1..4 query rows: the AVX-512 set's 512-bit kernel (on
// Intel, gemm_few_rows512) must give the AVX2 set's bits, through gemm,
// gemm_half, gemm_pf and gemm_pf_in_cache, for widths with whole 48-column panels and every
// kind of tail, with and without accumulation and row scales.
TEST_CASE("kernels: decode's p.v on the AVX-512 set gives the AVX2 set's bits", "[attention][kernels]") {
    using llmkit::attention::row_type;
    const kernels *a2 = llmkit::attention::avx2_kernels(), *a5 = llmkit::attention::avx512_kernels();
    if (!a2 || !a5) {
        WARN("this CPU has no AVX-512 kernel set: nothing to compare");
        return;
    }
    std::mt19937 rng(77);
    std::vector<char> pf_area(1 << 14, 1);
    for (row_type e : {row_type::f32, row_type::bf16, row_type::f16})
        for (int M = 1; M <= 4; ++M)
            for (int N : {8, 16, 40, 48, 64, 80, 96, 100, 128, 200, 256})
                for (int K : {1, 16, 33})
                    for (int mode = 0; mode < 3; ++mode) {  // no accumulation; accumulate; accumulate with row scales
                        INFO("row type " << int(e) << " M " << M << " N " << N << " K " << K << " mode " << mode);
                        const int64_t ldb = N + 5;
                        const bool half = e != row_type::f32, bf16 = e == row_type::bf16;
                        const pv_operands o = random_pv_operands(rng, a2, M, N, K, ldb, half, bf16);
                        const std::vector<float> &Bf = o.Bf, &A = o.A, &C0 = o.C0, &rs = o.rs;
                        const std::vector<uint16_t> &Bh = o.Bh;
                        const bool acc = mode > 0;
                        const float *scale = mode == 2 ? rs.data() : nullptr;
                        std::vector<float> want = C0, got = C0, got_pf = C0;
                        if (half) {
                            a2->gemm_half(M, N, K, A.data(), 1, M, Bh.data(), ldb, bf16, want.data(), N, acc, scale);
                            a5->gemm_half(M, N, K, A.data(), 1, M, Bh.data(), ldb, bf16, got.data(), N, acc, scale);
                        } else {
                            a2->gemm(M, N, K, A.data(), 1, M, Bf.data(), ldb, want.data(), N, acc, scale);
                            a5->gemm(M, N, K, A.data(), 1, M, Bf.data(), ldb, got.data(), N, acc, scale);
                        }
                        const void *Braw = half ? static_cast<const void *>(Bh.data()) : static_cast<const void *>(Bf.data());
                        a5->gemm_pf(M, N, K, A.data(), 1, M, Braw, ldb, e, got_pf.data(), N, acc, scale, pf_area.data(),
                                    int64_t(pf_area.size()));
                        CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                        CHECK(std::memcmp(want.data(), got_pf.data(), want.size() * 4) == 0);
                        if (a5->gemm_pf_in_cache) {  // Zen 5: the 512-bit float32 p.v for calls in the caches
                            std::vector<float> got_in_cache = C0;
                            a5->gemm_pf_in_cache(M, N, K, A.data(), 1, M, Braw, ldb, e, got_in_cache.data(), N, acc,
                                                 scale, pf_area.data(), int64_t(pf_area.size()));
                            CHECK(std::memcmp(want.data(), got_in_cache.data(), want.size() * 4) == 0);
                        }
                    }
}

// gemm_bf16_eo_pf (the AVX-512 set on Intel): the bits of the AVX2 set's
// gemm_half, with C's columns in even/odd order going in and put back by
// columns_from_eo, for 1..9 rows (the 4-row groups and their remainders),
// widths of whole and half 64-column panels, with and without accumulation
// and row scales.
TEST_CASE("kernels: gemm_bf16_eo_pf gives gemm_half's bits in even/odd column order", "[attention][kernels]") {
    const kernels *a2 = llmkit::attention::avx2_kernels(), *a5 = llmkit::attention::avx512_kernels();
    if (!a2 || !a5 || !a5->gemm_bf16_eo_pf) {
        WARN("this CPU's kernel sets have no gemm_bf16_eo_pf: nothing to compare");
        return;
    }
    std::mt19937 rng(78);
    std::vector<char> pf_area(1 << 14, 1);
    for (int M = 1; M <= 9; ++M)
        for (int N : {32, 64, 96, 128, 160, 256})
            for (int K : {1, 16, 33})
                for (int mode = 0; mode < 3; ++mode) {  // no accumulation; accumulate; accumulate with row scales
                    INFO("M " << M << " N " << N << " K " << K << " mode " << mode);
                    const int64_t ldb = N + 8;
                    const pv_operands o = random_pv_operands(rng, a2, M, N, K, ldb, true, true);
                    const std::vector<float> &A = o.A, &C0 = o.C0, &rs = o.rs;
                    const std::vector<uint16_t> &Bh = o.Bh;
                    const bool acc = mode > 0;
                    const float *scale = mode == 2 ? rs.data() : nullptr;
                    std::vector<float> want = C0, got(C0.size());
                    a2->gemm_half(M, N, K, A.data(), 1, M, Bh.data(), ldb, true, want.data(), N, acc, scale);
                    for (int r = 0; r < M; ++r)  // C0 into even/odd order
                        for (int c = 0; c < N; ++c)
                            got[size_t(r * N + c / 32 * 32 + (c % 2) * 16 + c % 32 / 2)] = C0[size_t(r * N + c)];
                    a5->gemm_bf16_eo_pf(M, N, K, A.data(), 1, M, Bh.data(), ldb, got.data(), N, acc, scale,
                                        pf_area.data(), int64_t(pf_area.size()));
                    llmkit::attention::columns_from_eo(got.data(), M, N);
                    CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                }
}

// Decode's bf16 pair scores (sets on CPUs with AVX512-BF16): against float64
// (the products are exact, so only the float32 sums round), for 1..9 rows,
// head dims with and without a masked last step, and the same bits for a key
// whatever keys share the call or where it sits in it (paged and contiguous
// caches cut the keys into different pieces).
TEST_CASE("kernels: dots_bf16_pf against float64, a key's score independent of the call", "[attention][kernels]") {
    std::mt19937 rng(91);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<char> pf_area(1 << 14, 1);
    bool any = false;
    for (const kernels *ks : sets()) {
        if (!ks->dots_bf16_pf) continue;
        any = true;
        for (int D : {2, 30, 64, 80, 96, 128, 256})
            for (int R : {1, 2, 3, 4, 5, 8, 9})
                for (int N : {1, 3, 4, 7, 16}) {
                    const int64_t ldq = D + 4, ldk = D + 6;
                    std::vector<uint16_t> Q(size_t(R * ldq)), K(size_t((N + 1) * ldk));
                    for (auto &x : Q) x = llmkit::core::f32_to_bf16(u(rng));
                    for (auto &x : K) x = llmkit::core::f32_to_bf16(u(rng));
                    const float scale = 0.37f;
                    std::vector<float> st(size_t(N * R) + 1, -7.0f);
                    ks->dots_bf16_pf(R, N, D, Q.data(), ldq, K.data(), ldk, scale, st.data(), pf_area.data(),
                                     int64_t(pf_area.size()));
                    bool ok = true, same = true;
                    for (int j = 0; j < N; ++j)
                        for (int r = 0; r < R; ++r) {
                            double ref = 0.0, mag = 0.0;
                            for (int d = 0; d < D; ++d) {
                                const double t = double(llmkit::core::bf16_to_f32(Q[size_t(r * ldq + d)])) *
                                                 double(llmkit::core::bf16_to_f32(K[size_t(j * ldk + d)]));
                                ref += t;
                                mag += std::fabs(t);
                            }
                            const double got = st[size_t(j * R + r)];
                            if (!(std::fabs(got - double(scale) * ref) <= std::ldexp(double(scale) * mag, -19)))
                                ok = false;
                        }
                    // Past the N * R scores nothing is written.
                    if (st[size_t(N * R)] != -7.0f) ok = false;
                    // Each key alone, and the keys from 1 on (each in a new slot of the call).
                    for (int j = 0; j < N; ++j) {
                        std::vector<float> one(static_cast<size_t>(R));
                        ks->dots_bf16_pf(R, 1, D, Q.data(), ldq, K.data() + j * ldk, ldk, scale, one.data(), nullptr, 0);
                        if (std::memcmp(one.data(), st.data() + j * R, size_t(R) * 4) != 0) same = false;
                    }
                    std::vector<float> shifted(size_t(N * R));
                    ks->dots_bf16_pf(R, N, D, Q.data(), ldq, K.data() + ldk, ldk, scale, shifted.data(), nullptr, 0);
                    std::vector<float> tail(size_t(N * R));
                    ks->dots_bf16_pf(R, N - 1, D, Q.data(), ldq, K.data() + ldk, ldk, scale, tail.data(), nullptr, 0);
                    if (N > 1 && std::memcmp(shifted.data(), tail.data(), size_t((N - 1) * R) * 4) != 0) same = false;
                    INFO("kernels " << ks->name << " D " << D << " R " << R << " N " << N);
                    CHECK(ok);
                    CHECK(same);
                }
    }
    if (!any) WARN("no kernel set with bf16 dot products on this CPU (AVX512-BF16): nothing checked");
}

// n bytes that end where an inaccessible page begins: a kernel that reads
// one byte past them faults (masked-off vector lanes do not).
struct guarded_bytes {
    char *map = nullptr, *data = nullptr;
    size_t len = 0;
    explicit guarded_bytes(size_t n) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE)), body = (n + page - 1) / page * page;
        len = body + page;
        void *m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(m != MAP_FAILED);
        map = static_cast<char *>(m);
        REQUIRE(mprotect(map + body, page, PROT_NONE) == 0);
        data = map + body - n;
    }
    ~guarded_bytes() { munmap(map, len); }
    guarded_bytes(const guarded_bytes &) = delete;
    guarded_bytes &operator=(const guarded_bytes &) = delete;
};

// Decode over int8 in integers (sets on CPUs with AVX512-VNNI): every step
// is an integer sum or one float operation the kernels contract names, so
// each kernel must give exactly the bits of the scalar formula in
// kernels.hpp, for head dims with and without a masked last step (D = 1 ..
// 256), 1..20 rows (gemm_i8_pf packs rows 16 at a time) and up to 70 keys
// (runs of 64), with the lone key of an odd count.
TEST_CASE("kernels: quantize_i16, dots_i8_pf, gemm_i8_pf and i8_acc_finish give the bits of their formulas",
          "[attention][kernels]") {
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f), u01(0.0f, 1.0f);
    std::vector<char> pf_area(1 << 14, 1);
    bool any = false;
    for (const kernels *ks : sets()) {
        if (!ks->dots_i8_pf) continue;
        REQUIRE(ks->quantize_i16);
        REQUIRE(ks->gemm_i8_pf);
        REQUIRE(ks->i8_acc_finish);
        any = true;
        for (int D : {1, 16, 31, 40, 64, 80, 96, 128, 256}) {
            // quantize_i16: a zero row, an exact-maximum row and random rows.
            const int R = 5;
            std::vector<float> X(size_t(R * D));
            for (float &x : X) x = u(rng);
            for (int d = 0; d < D; ++d) X[size_t(d)] = 0.0f;
            X[size_t(D + D / 2)] = -3.0f;  // row 1's largest, negative
            std::vector<int16_t> Qi(size_t(R * D) + 1, 7);
            std::vector<float> qs(size_t(R) + 1, -1.0f);
            ks->quantize_i16(X.data(), R, D, Qi.data(), qs.data());
            bool qok = Qi[size_t(R * D)] == 7 && qs[size_t(R)] == -1.0f;
            for (int r = 0; r < R; ++r) {
                float mx = 0.0f;
                for (int d = 0; d < D; ++d) mx = std::max(mx, std::fabs(X[size_t(r * D + d)]));
                const float inv = mx > 0.0f ? 32767.0f / mx : 0.0f;
                if (qs[size_t(r)] != mx / 32767.0f) qok = false;
                for (int d = 0; d < D; ++d)
                    if (Qi[size_t(r * D + d)] != int16_t(std::nearbyint(X[size_t(r * D + d)] * inv))) qok = false;
            }
            INFO("kernels " << ks->name << " D " << D);
            CHECK(qok);
            CHECK(Qi[size_t(D + D / 2)] == -32767);
            for (int Rs : {1, 2, 3, 4, 5, 8, 9})
                for (int N : {1, 3, 4, 7, 16}) {
                    const int64_t ldq = D + 3, ldk = D + 5;
                    std::vector<int16_t> Q(size_t(Rs * ldq));
                    std::vector<int8_t> K(size_t(N * ldk));
                    for (auto &x : Q) x = int16_t(int(rng() % 65535) - 32767);
                    for (auto &x : K) x = int8_t(int(rng() % 255) - 127);
                    std::vector<float> qsc(static_cast<size_t>(Rs)), ksc(static_cast<size_t>(N));
                    for (float &x : qsc) x = u01(rng) * 1e-4f;
                    for (float &x : ksc) x = u01(rng) * 0.05f;
                    std::vector<float> st(size_t(N * Rs) + 1, -7.0f);
                    ks->dots_i8_pf(Rs, N, D, Q.data(), ldq, qsc.data(), K.data(), ldk, ksc.data(), st.data(),
                                   pf_area.data(), int64_t(pf_area.size()));
                    bool ok = st[size_t(N * Rs)] == -7.0f;
                    for (int j = 0; j < N; ++j)
                        for (int r = 0; r < Rs; ++r) {
                            int64_t sum = 0;
                            for (int d = 0; d < D; ++d) sum += int64_t(Q[size_t(r * ldq + d)]) * K[size_t(j * ldk + d)];
                            const float want = (float(sum) * qsc[size_t(r)]) * ksc[size_t(j)];
                            if (std::memcmp(&want, &st[size_t(j * Rs + r)], 4) != 0) ok = false;
                        }
                    INFO("dots_i8_pf R " << Rs << " N " << N);
                    CHECK(ok);
                }
            // P's rows exactly M wide (ldp == M: 1, 2, 4 and 8 rows pack 16 / M
            // keys a vector) and padded.
            for (int M : {1, 2, 3, 4, 5, 7, 8, 16, 20})
                for (int N : {1, 2, 15, 16, 33, 70})
                    for (int64_t ldp : {int64_t(M), int64_t(M) + 2}) {
                        const int64_t ldv = D + 9, ldc = (D + 31) / 32 * 32 + 32;
                        std::vector<float> P(size_t(N * ldp)), sv(static_cast<size_t>(N));
                        // Row N - 1 ends at a guard page: reading row N (the lone key's pair) faults.
                        guarded_bytes vbuf(size_t((N - 1) * ldv + D));
                        int8_t *V = reinterpret_cast<int8_t *>(vbuf.data);
                        for (float &x : P) x = u01(rng);
                        for (float &x : sv) x = 0.001f + u01(rng) * 0.02f;
                        for (int j = 0; j < N; ++j)
                            for (int c = 0; c < D; ++c) V[size_t(j * ldv + c)] = int8_t(int(rng() % 256) - 128);
                        float mx = 0.0f;
                        for (float x : sv) mx = std::max(mx, x);
                        const float k = 32767.0f / mx;
                        P[0] = 1.0f;  // the largest weight: 32767 (or just under by rounding)
                        // Two calls into one Acc: the first N / 2 keys, then the rest.
                        std::vector<int32_t> acc(size_t(M * ldc), 0);
                        const int n1 = N / 2;
                        if (n1 > 0)
                            ks->gemm_i8_pf(M, n1, D, P.data(), ldp, sv.data(), k, V, ldv, acc.data(), ldc,
                                           pf_area.data(), int64_t(pf_area.size()));
                        ks->gemm_i8_pf(M, N - n1, D, P.data() + n1 * ldp, ldp, sv.data() + n1, k, V + n1 * ldv,
                                       ldv, acc.data(), ldc, nullptr, 0);
                        std::vector<float> O(size_t(M * (D + 1))), alpha(static_cast<size_t>(M)), sc(static_cast<size_t>(M));
                        for (float &x : O) x = u(rng);
                        for (float &x : alpha) x = u01(rng);
                        for (float &x : sc) x = mx / 32767.0f * (1.0f + u01(rng));
                        const std::vector<float> O0 = O;
                        std::vector<float> O2 = O;
                        ks->i8_acc_finish(M, D, acc.data(), ldc, sc.data(), alpha.data(), O.data(), D + 1);
                        ks->i8_acc_finish(M, D, acc.data(), ldc, sc.data(), nullptr, O2.data(), D + 1);
                        bool ok = true;
                        for (int r = 0; r < M; ++r) {
                            for (int c = 0; c < D; ++c) {
                                int64_t sum = 0;
                                for (int j = 0; j < N; ++j) {
                                    const float w = std::nearbyint(P[size_t(j * ldp + r)] * (sv[size_t(j)] * k));
                                    sum += int64_t(std::min(w, 32767.0f)) * V[size_t(j * ldv + c)];
                                }
                                const size_t o = size_t(r * (D + 1) + c);
                                const float want = std::fma(sc[size_t(r)], float(sum), alpha[size_t(r)] * O0[o]);
                                const float want2 = std::fma(sc[size_t(r)], float(sum), O0[o]);
                                if (std::memcmp(&want, &O[o], 4) != 0 || std::memcmp(&want2, &O2[o], 4) != 0) ok = false;
                            }
                            const size_t pad = size_t(r * (D + 1) + D);  // past D: untouched
                            if (O[pad] != O0[pad] || O2[pad] != O0[pad]) ok = false;
                        }
                        INFO("gemm_i8_pf + i8_acc_finish M " << M << " N " << N << " ldp " << ldp);
                        CHECK(ok);
                    }
        }
    }
    if (!any) WARN("no kernel set with integer dot products on this CPU (AVX512-VNNI): nothing checked");
}

namespace {

// 1..k_runs_max runs of 1..32 keys (at most k_runs_max_keys in all; even:
// each of even length) at random rows of a pool of `pool` rows; *keys: their
// keys in all.
std::vector<llmkit::attention::row_run> random_runs(std::mt19937 &rng, int pool, bool even, int *keys) {
    std::vector<llmkit::attention::row_run> runs;
    *keys = 0;
    const int want_runs = 1 + int(rng() % llmkit::attention::k_runs_max);
    for (int i = 0; i < want_runs; ++i) {
        const int len = even ? 2 * (1 + int(rng() % 16)) : 1 + int(rng() % 32);
        const int n = std::min(len, llmkit::attention::k_runs_max_keys - *keys);
        if (n <= 0) break;
        runs.push_back({int64_t(rng() % uint32_t(pool - 32)), n});
        *keys += n;
    }
    return runs;
}

}  // namespace

// dots_i8_runs_pf and gemm_i8_runs_pf: the rows of 1..8 runs of any length
// (odd ones too: a run's last key then pairs with zeros) lying anywhere in
// a pool, up to 128 keys, give the bits of one dots_i8_pf / gemm_i8_pf call
// per run (integer sums), for 1..20 query rows.
TEST_CASE("kernels: the int8 runs kernels give the bits of one call per run", "[attention][kernels]") {
    using llmkit::attention::row_run;
    using llmkit::attention::byte_range;
    std::mt19937 rng(23);
    std::uniform_real_distribution<float> u01(0.0f, 1.0f);
    std::vector<char> pf_area(1 << 14, 1);
    const byte_range pf[2] = {{pf_area.data(), 5000}, {pf_area.data() + 8000, 3000}};
    bool any = false;
    for (const kernels *ks : sets()) {
        if (!ks->dots_i8_runs_pf) continue;
        REQUIRE(ks->gemm_i8_runs_pf);
        any = true;
        for (int D : {16, 40, 64, 128, 256})
            for (int trial = 0; trial < 12; ++trial) {
                // The first trials' runs all of even length (a paged cache's blocks: the
                // weights of consecutive keys packed a vector at a time).
                const int pool = 200;
                int N = 0;
                const std::vector<row_run> runs = random_runs(rng, pool, trial < 4, &N);
                std::vector<int8_t> K(size_t(pool * D)), V(size_t(pool * D));
                for (auto &x : K) x = int8_t(int(rng() % 255) - 127);
                for (auto &x : V) x = int8_t(int(rng() % 256) - 128);
                std::vector<float> ksc(static_cast<size_t>(pool)), vsc(static_cast<size_t>(pool));
                for (float &x : ksc) x = u01(rng) * 0.05f;
                for (float &x : vsc) x = 0.001f + u01(rng) * 0.02f;
                for (int R : {1, 4, 5, 16, 20}) {
                    INFO("kernels " << ks->name << " D " << D << " runs " << runs.size() << " keys " << N << " rows " << R);
                    const int64_t ldq = D + 3, ldc = (D + 31) / 32 * 32;
                    std::vector<int16_t> Q(size_t(R * ldq));
                    for (auto &x : Q) x = int16_t(int(rng() % 65535) - 32767);
                    std::vector<float> qsc(static_cast<size_t>(R));
                    for (float &x : qsc) x = u01(rng) * 1e-4f;
                    std::vector<float> want(size_t(N * R) + 1, -7.0f), got = want;
                    for (int i = 0, j = 0; i < int(runs.size()); j += runs[size_t(i)].n, ++i)
                        ks->dots_i8_pf(R, runs[size_t(i)].n, D, Q.data(), ldq, qsc.data(), K.data() + runs[size_t(i)].row * D,
                                       D, ksc.data() + runs[size_t(i)].row, want.data() + j * R, nullptr, 0);
                    ks->dots_i8_runs_pf(R, D, Q.data(), ldq, qsc.data(), K.data(), ksc.data(), runs.data(), int(runs.size()),
                                        got.data(), pf, 2);
                    CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                    // P V into int32 sums that already hold a call's.
                    std::vector<float> P(size_t(N * R));
                    for (float &x : P) x = u01(rng);
                    const float k = 32767.0f / 0.021f;
                    std::vector<int32_t> acc_want(size_t(R * ldc));
                    for (auto &x : acc_want) x = int32_t(rng() % 100000) - 50000;
                    std::vector<int32_t> acc_got = acc_want;
                    for (int i = 0, j = 0; i < int(runs.size()); j += runs[size_t(i)].n, ++i)
                        ks->gemm_i8_pf(R, runs[size_t(i)].n, D, P.data() + j * R, R, vsc.data() + runs[size_t(i)].row, k,
                                       V.data() + runs[size_t(i)].row * D, D, acc_want.data(), ldc, nullptr, 0);
                    ks->gemm_i8_runs_pf(R, D, P.data(), R, vsc.data(), k, V.data(), runs.data(), int(runs.size()),
                                        acc_got.data(), ldc, pf, 2);
                    CHECK(acc_want == acc_got);
                }
            }
    }
    if (!any) WARN("no kernel set with the int8 runs kernels on this CPU (AVX512-VNNI): nothing checked");
}

// gemm_runs_pf and gemm_bf16_eo_runs_pf: the rows of 1..8 runs of any
// length lying anywhere in a pool, up to 128 keys, give the bits of one
// gemm_pf / gemm_bf16_eo_pf call per run, alpha as the first call's
// row_scale (and none), for float32, bf16 and fp16 rows and 1..9 rows of P.
TEST_CASE("kernels: the float runs kernels give the bits of one call per run", "[attention][kernels]") {
    using llmkit::attention::byte_range;
    using llmkit::attention::row_run;
    using llmkit::attention::row_type;
    std::mt19937 rng(29);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f), u01(0.0f, 1.0f);
    std::vector<char> pf_area(1 << 14, 1);
    const byte_range pf[2] = {{pf_area.data(), 5000}, {pf_area.data() + 8000, 3000}};
    bool any = false;
    for (const kernels *ks : sets()) {
        if (!ks->gemm_runs_pf && !ks->gemm_bf16_eo_runs_pf) continue;
        REQUIRE(ks->gemm_pf);
        any = true;
        for (int D : {16, 40, 64, 96, 128, 256})
            for (int trial = 0; trial < 8; ++trial) {
                const int pool = 200;
                int N = 0;
                const std::vector<row_run> runs = random_runs(rng, pool, false, &N);
                std::vector<float> Vf(size_t(pool * D));
                for (float &x : Vf) x = u(rng);
                std::vector<uint16_t> Vb(Vf.size()), Vh(Vf.size());
                ks->f32_to_half(Vb.data(), Vf.data(), int64_t(Vf.size()), true);
                ks->f32_to_half(Vh.data(), Vf.data(), int64_t(Vf.size()), false);
                for (int M : {1, 2, 3, 4, 5, 9}) {
                    const int64_t ldp = M + 1, ldo = D + 3;
                    std::vector<float> P(size_t(N * ldp)), alpha(static_cast<size_t>(M)), O0(size_t(M * ldo));
                    for (float &x : P) x = u01(rng);
                    for (float &x : alpha) x = u01(rng);
                    for (float &x : O0) x = u(rng);
                    for (bool with_alpha : {true, false}) {
                        const float *a = with_alpha ? alpha.data() : nullptr;
                        INFO("kernels " << ks->name << " D " << D << " runs " << runs.size() << " keys " << N
                                        << " rows " << M << " alpha " << with_alpha);
                        // One gemm_pf (gemm_bf16_eo_pf) call per run, the first with alpha.
                        auto per_run = [&](auto &&call) {
                            std::vector<float> O = O0;
                            for (int i = 0, j = 0; i < int(runs.size()); j += runs[size_t(i)].n, ++i)
                                call(runs[size_t(i)], P.data() + j * ldp, O.data(), i == 0 ? a : nullptr);
                            return O;
                        };
                        if (ks->gemm_runs_pf)
                            for (row_type e : {row_type::f32, row_type::bf16, row_type::f16}) {
                                const int64_t eb = e == row_type::f32 ? 4 : 2;
                                const char *V = e == row_type::f32   ? reinterpret_cast<const char *>(Vf.data())
                                                : e == row_type::bf16 ? reinterpret_cast<const char *>(Vb.data())
                                                                      : reinterpret_cast<const char *>(Vh.data());
                                const std::vector<float> want = per_run([&](const row_run &r, const float *p, float *o,
                                                                            const float *rs) {
                                    ks->gemm_pf(M, D, r.n, p, 1, ldp, V + r.row * D * eb, D, e, o, ldo, true, rs,
                                                nullptr, 0);
                                });
                                std::vector<float> got = O0;
                                ks->gemm_runs_pf(M, D, P.data(), ldp, V, e, runs.data(), int(runs.size()), got.data(),
                                                 ldo, a, pf, 2);
                                INFO("row type " << int(e));
                                CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                            }
                        if (ks->gemm_bf16_eo_runs_pf && D % 32 == 0) {
                            REQUIRE(ks->gemm_bf16_eo_pf);
                            const std::vector<float> want =
                                per_run([&](const row_run &r, const float *p, float *o, const float *rs) {
                                    ks->gemm_bf16_eo_pf(M, D, r.n, p, 1, ldp, Vb.data() + r.row * D, D, o, ldo, true,
                                                        rs, nullptr, 0);
                                });
                            std::vector<float> got = O0;
                            ks->gemm_bf16_eo_runs_pf(M, D, P.data(), ldp, Vb.data(), runs.data(), int(runs.size()),
                                                     got.data(), ldo, a, pf, 2);
                            CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
                        }
                    }
                }
            }
    }
    if (!any) WARN("no kernel set with the float runs kernels on this CPU (512-bit decode): nothing checked");
}

// bf16 queries over a bf16 cache: decode (1..20 rows per kv head; from 16
// the gemm path) through the bf16 pair scores where the set has them, against
// float64 (the output rounds to bf16: half an ulp, 2^-8 relative), and paged
// tables of any block size and 1..3 threads give the contiguous bits. An odd
// head dim takes the float32 scores.
TEST_CASE("cache attention, bf16 queries over a bf16 cache: the reference, paged and threaded bits",
          "[attention][kv][kernels]") {
    const int64_t Hkv = 2;
    for (const kernels *ks : sets())
        for (int64_t D : {128, 80, 34, 15})
            for (int64_t S : {1, 63, 301}) {
                std::mt19937 rng(uint32_t(D * 11 + S));
                const rows r = make_rows(kv_dtype::bf16, S, Hkv, D, rng);
                const store flat = make_store(kv_dtype::bf16, r, S, Hkv, D, S, false, rng);
                for (auto [G, Sq] : {std::pair<int64_t, int64_t>{1, 1}, {4, 1}, {3, 3}, {4, 5}, {16, 4}}) {
                    if (Sq > S) continue;
                    const int64_t Hq = G * Hkv;
                    std::vector<float> q(size_t(Sq * Hq * D));
                    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
                    for (float &x : q) x = llmkit::core::bf16_to_f32(llmkit::core::f32_to_bf16(u(rng)));
                    const std::vector<double> ref = reference(r, S, q, Sq, Hq, Hkv, D);
                    for (int64_t split : {0, 32}) {
                        const std::vector<float> want = run_bf16(flat, S, q, Sq, Hq, ks, split, 1);
                        double err = 0.0;
                        bool ok = true;
                        for (size_t i = 0; i < want.size(); ++i) {
                            const double e = std::fabs(double(want[i]) - ref[i]);
                            err = std::max(err, e);
                            if (!(e <= 2e-5 + (1.0 / 256 + 1e-5) * std::fabs(ref[i]))) ok = false;
                        }
                        INFO("kernels " << ks->name << " D " << D << " S " << S << " G " << G << " Sq " << Sq
                                        << " split " << split << " max error " << err << " pairs "
                                        << (ks->dots_bf16_pf != nullptr));
                        CHECK(ok);
                        for (int64_t bs : {1, 5, 16})
                            for (int threads : {2, 3}) {
                                const store paged = make_store(kv_dtype::bf16, r, S, Hkv, D, bs, true, rng);
                                const std::vector<float> got = run_bf16(paged, S, q, Sq, Hq, ks, split, threads);
                                INFO("block size " << bs << " threads " << threads);
                                CHECK(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
                            }
                    }
                }
            }
}

// The bf16 prefill's kernels (sets on CPUs with AVX512-BF16): pairs packed
// with their rounding residue, and products of pairs against float64.
TEST_CASE("kernels: pack_bf16_pairs and gemm_bf16 against float64", "[attention][kernels]") {
    std::mt19937 rng(77);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    bool any = false;
    for (const kernels *ks : sets()) {
        if (!ks->gemm_bf16) continue;
        any = true;
        REQUIRE(ks->pack_bf16_pairs);
        INFO("kernels " << ks->name);
        for (int n : {1, 15, 16, 17, 130}) {
            std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
            for (size_t i = 0; i < a.size(); ++i) {
                a[i] = u(rng);
                b[i] = u(rng);
            }
            std::vector<uint32_t> hi(static_cast<size_t>(n)), lo(static_cast<size_t>(n)), hi0(static_cast<size_t>(n));
            ks->pack_bf16_pairs(hi.data(), lo.data(), a.data(), b.data(), n);
            ks->pack_bf16_pairs(hi0.data(), nullptr, a.data(), nullptr, n);
            for (int i = 0; i < n; ++i) {
                const uint16_t ha = llmkit::core::f32_to_bf16(a[size_t(i)]), hb = llmkit::core::f32_to_bf16(b[size_t(i)]);
                const uint16_t la = llmkit::core::f32_to_bf16(a[size_t(i)] - llmkit::core::bf16_to_f32(ha));
                const uint16_t lb = llmkit::core::f32_to_bf16(b[size_t(i)] - llmkit::core::bf16_to_f32(hb));
                INFO("n " << n << " i " << i);
                CHECK(hi[size_t(i)] == (uint32_t(ha) | uint32_t(hb) << 16));
                CHECK(lo[size_t(i)] == (uint32_t(la) | uint32_t(lb) << 16));
                CHECK(hi0[size_t(i)] == uint32_t(ha));
            }
        }
        auto val = [](uint32_t w, int half) { return double(llmkit::core::bf16_to_f32(uint16_t(w >> (16 * half)))); };
        for (bool two : {false, true})
            for (int M : {1, 3, 4, 7, 33})
                for (int N : {5, 16, 64, 70, 130})
                    for (int P : {1, 8, 33}) {
                        // A [M][P] with row stride P + 1 and pair stride 1; B [P][N] with ldb N + 2.
                        const int64_t ars = P + 1, aps = 1, ldb = N + 2, ldc = N + 1;
                        auto words = [&](size_t count) {
                            std::vector<uint32_t> w(count);
                            for (auto &x : w)
                                x = uint32_t(llmkit::core::f32_to_bf16(u(rng))) |
                                    uint32_t(llmkit::core::f32_to_bf16(u(rng))) << 16;
                            return w;
                        };
                        const std::vector<uint32_t> A = words(size_t(M * ars)), A2 = words(size_t(M * ars)),
                                                    B = words(size_t(P * ldb));
                        std::vector<float> C(size_t(M * ldc)), rs(static_cast<size_t>(M));
                        for (float &x : C) x = u(rng);
                        for (float &x : rs) x = u(rng);
                        for (bool acc : {false, true}) {
                            std::vector<float> got = C;
                            ks->gemm_bf16(M, N, P, A.data(), two ? A2.data() : nullptr, ars, aps, B.data(), ldb,
                                          got.data(), ldc, acc, acc ? rs.data() : nullptr);
                            bool ok = true;
                            for (int r = 0; r < M; ++r)
                                for (int c = 0; c < N; ++c) {
                                    double ref = acc ? double(rs[size_t(r)]) * C[size_t(r * ldc + c)] : 0.0;
                                    double mag = std::fabs(ref);
                                    for (int p = 0; p < P; ++p) {
                                        const uint32_t bw = B[size_t(p * ldb + c)];
                                        for (const std::vector<uint32_t> *src : {&A, &A2}) {
                                            if (src == &A2 && !two) continue;
                                            const uint32_t aw = (*src)[size_t(r * ars + p * aps)];
                                            const double t0 = val(aw, 0) * val(bw, 0), t1 = val(aw, 1) * val(bw, 1);
                                            ref += t0 + t1;
                                            mag += std::fabs(t0) + std::fabs(t1);
                                        }
                                    }
                                    if (!(std::fabs(double(got[size_t(r * ldc + c)]) - ref) <= std::ldexp(mag, -20)))
                                        ok = false;
                                }
                            // Columns past N are left alone.
                            for (int r = 0; r < M; ++r)
                                if (got[size_t(r * ldc + N)] != C[size_t(r * ldc + N)]) ok = false;
                            INFO("two " << two << " M " << M << " N " << N << " P " << P << " accumulate " << acc);
                            CHECK(ok);
                        }
                    }
    }
    if (!any) WARN("no kernel set with bf16 dot products on this CPU (AVX512-BF16): nothing checked");
}

// V with a head_dim of its own (Dv), in its own rows or as the first Dv
// elements of each K row (v_from_k: multi-head latent attention's cache), on
// every kernel set: the prefill gemm path and decode's pieces (including a
// set's fallbacks that convert rows into a buffer first), split-KV parts and
// their merge, paged tables of several block sizes against the contiguous bits,
// and a float64 reference of Dv columns.
TEST_CASE("cache attention, every kernel set: V of its own head_dim, or read from K's rows", "[attention][kv][kernels][dv]") {
    const int64_t Hkv = 2, Hq = 8, S = 203;
    struct dims {
        int64_t D, Dv;
        bool from_k;
    };
    for (const kernels *ks : sets())
        for (kv_dtype t : k_all_types)
            for (const dims &dd : {dims{192, 128, false}, dims{48, 80, false}, dims{96, 64, true}, dims{576, 512, true}}) {
                const int64_t D = dd.D, Dv = dd.Dv, es = llmkit::attention::kv_dtype_bytes(t);
                std::mt19937 rng(uint32_t(D * 11 + Dv + int(t)));
                const rows rk = make_rows(t, S, Hkv, D, rng), rv = make_rows(t, S, Hkv, Dv, rng);
                // V as the test knows it: [S][Hkv][Dv] values and scales.
                std::vector<float> vf(size_t(S * Hkv * Dv)), vs(size_t(S * Hkv));
                for (int64_t r = 0; r < S * Hkv; ++r) {
                    for (int64_t d = 0; d < Dv; ++d)
                        vf[size_t(r * Dv + d)] = dd.from_k ? rk.kf[size_t(r * D + d)] : rv.kf[size_t(r * Dv + d)];
                    vs[size_t(r)] = dd.from_k ? rk.ks[size_t(r)] : rv.ks[size_t(r)];
                }
                // The rows in blocks of bs (a shuffled table unless bs = S), V in its own array or in K's.
                struct dv_store {
                    int64_t bs, n_blocks;
                    std::vector<char> k, v;
                    std::vector<float> ks, vs;
                    std::vector<int32_t> table;
                };
                auto make = [&](int64_t bs) {
                    dv_store s{bs, (S + bs - 1) / bs + 2, {}, {}, {}, {}, {}};
                    s.k.assign(size_t(s.n_blocks * Hkv * bs * D * es), 0);
                    s.v.assign(dd.from_k ? 0 : size_t(s.n_blocks * Hkv * bs * Dv * es), 0);
                    s.ks.assign(size_t(s.n_blocks * Hkv * bs), 0.0f);
                    s.vs = s.ks;
                    std::vector<int32_t> ids(static_cast<size_t>(s.n_blocks));
                    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
                    if (bs != S) std::shuffle(ids.begin(), ids.end(), rng);
                    s.table.assign(ids.begin(), ids.begin() + (S + bs - 1) / bs);
                    for (int64_t j = 0; j < S; ++j)
                        for (int64_t g = 0; g < Hkv; ++g) {
                            const int64_t row = (int64_t(s.table[size_t(j / bs)]) * Hkv + g) * bs + j % bs, r = j * Hkv + g;
                            std::memcpy(&s.k[size_t(row * D * es)], &rk.kraw[size_t(r * D * es)], size_t(D * es));
                            s.ks[size_t(row)] = rk.ks[size_t(r)];
                            if (dd.from_k) continue;
                            std::memcpy(&s.v[size_t(row * Dv * es)], &rv.kraw[size_t(r * Dv * es)], size_t(Dv * es));
                            s.vs[size_t(row)] = rv.ks[size_t(r)];
                        }
                    return s;
                };
                auto attend_dv = [&](const dv_store &s, const std::vector<float> &q, int64_t Sq, int64_t split,
                                     int threads) {
                    cache_layer_view L;
                    L.type = t;
                    L.n_kv_heads = Hkv;
                    L.head_dim = D;
                    L.block_size = s.bs;
                    L.n_blocks = s.n_blocks;
                    L.k = s.k.data();
                    L.v = dd.from_k ? s.k.data() : s.v.data();
                    L.k_scale = s.ks.data();
                    L.v_scale = dd.from_k ? s.ks.data() : s.vs.data();
                    L.v_head_dim = Dv;
                    L.v_row = dd.from_k ? D : Dv;
                    std::vector<float> qc = q, out(size_t(Sq * Hq * Dv), -1.0f);
                    int64_t q_shape[4] = {1, Sq, Hq, D}, o_shape[4] = {1, Sq, Hq, Dv};
                    llmkit_tensor tq = {qc.data(), LLMKIT_DEVICE_HOST, 4, LLMKIT_DTYPE_F32, q_shape, nullptr, 0};
                    llmkit_tensor to = {out.data(), LLMKIT_DEVICE_HOST, 4, LLMKIT_DTYPE_F32, o_shape, nullptr, 0};
                    const cache_seq seq{s.table.data(), int64_t(s.table.size()), S};
                    cache_attention_params p;
                    p.kernel_set = ks;
                    p.split_keys = split;
                    p.n_threads = threads;
                    cache_attention(L, &seq, 1, llmkit::core::tensor_view::from(&tq, "q"),
                                    llmkit::core::tensor_view::from(&to, "out"), p);
                    return out;
                };
                const dv_store flat = make(S);
                for (int64_t Sq : {1, 5}) {  // R = 4 rows (dot products) and 20 rows (gemm)
                    std::vector<float> q(size_t(Sq * Hq * D));
                    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
                    for (float &x : q) x = u(rng);
                    const std::vector<double> ref = reference(rk.kf, vf, S, q, Sq, Hq, Hkv, D, Dv);
                    for (int64_t split : {0, 64}) {
                        const std::vector<float> want = attend_dv(flat, q, Sq, split, 1);
                        double err = 0.0;
                        const bool ok = within_reference(want, ref, &err);
                        INFO("kernels " << ks->name << " cache " << llmkit::attention::kv_dtype_name(t) << " D " << D
                                        << " Dv " << Dv << (dd.from_k ? " (V from K)" : "") << " Sq " << Sq
                                        << " split " << split << " max error " << err);
                        CHECK(ok);
                        for (int64_t bs : {7, 16}) {
                            const std::vector<float> got = attend_dv(make(bs), q, Sq, split, 2);
                            INFO("block size " << bs);
                            CHECK(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
                        }
                    }
                }
            }
}
