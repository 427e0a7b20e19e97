// llmkit_rope against a float64 reference for both layouts and every scaling,
// partial rotary, int32/int64 and [S]/[B, S] positions, dtypes, llama2.c's own
// interleaved rotation, Hugging Face's Llama 3.1 and YaRN frequencies, errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <string>

#include "attention/attention.hpp"
#include "helpers.hpp"
#include "llmkit/llmkit.h"

using namespace attn_test;
using llmkit::core::dtype;

namespace {

// Frequencies written out independently of src/attention/rope.cpp, following
// transformers' modeling_rope_utils step by step.
std::vector<double> ref_inv_freq(const llmkit_rope_options &o, int n, double *mscale) {
    const int half = n / 2;
    std::vector<double> inv(static_cast<size_t>(half));
    double base = o.theta;
    if (o.scaling == LLMKIT_ROPE_SCALING_NTK) base = o.theta * std::pow(o.alpha, double(n) / (n - 2));
    for (int k = 0; k < half; ++k) inv[size_t(k)] = 1.0 / std::pow(base, (2.0 * k) / n);
    *mscale = 1.0;
    if (o.scaling == LLMKIT_ROPE_SCALING_LINEAR)
        for (auto &f : inv) f /= o.factor;
    if (o.scaling == LLMKIT_ROPE_SCALING_LLAMA3) {
        const double lw = o.original_max_position / o.low_freq_factor, hw = o.original_max_position / o.high_freq_factor;
        for (auto &f : inv) {
            const double wl = 2 * M_PI / f;
            const double scaled = wl > lw ? f / o.factor : f;
            const double smooth = (o.original_max_position / wl - o.low_freq_factor) / (o.high_freq_factor - o.low_freq_factor);
            const bool medium = !(wl < hw) && !(wl > lw);
            f = medium ? (1 - smooth) * scaled / o.factor + smooth * scaled : scaled;
        }
    }
    if (o.scaling == LLMKIT_ROPE_SCALING_YARN) {
        auto corr = [&](double rot) { return (n * std::log(o.original_max_position / (rot * 2 * M_PI))) / (2 * std::log(base)); };
        double low = std::max(std::floor(corr(o.beta_fast)), 0.0), high = std::min(std::ceil(corr(o.beta_slow)), double(n - 1));
        if (low == high) high += 0.001;
        for (int k = 0; k < half; ++k) {
            const double ramp = std::min(1.0, std::max(0.0, (k - low) / (high - low)));
            const double extra_factor = 1 - ramp;
            const double pos_freq = std::pow(base, (2.0 * k) / n);
            inv[size_t(k)] = (1.0 / (o.factor * pos_freq)) * (1 - extra_factor) + (1.0 / pos_freq) * extra_factor;
        }
        *mscale = o.attention_factor > 0 ? o.attention_factor : (o.factor <= 1 ? 1.0 : 0.1 * std::log(o.factor) + 1.0);
    }
    if (o.scaling == LLMKIT_ROPE_SCALING_LONGROPE) {  // _compute_longrope_parameters
        for (int k = 0; k < half; ++k)
            inv[size_t(k)] = 1.0 / (double(o.frequency_factors[k]) * std::pow(base, (2.0 * k) / n));
        *mscale = o.attention_factor > 0 ? o.attention_factor
                  : o.factor <= 1        ? 1.0
                                         : std::sqrt(1 + std::log(o.factor) / std::log(o.original_max_position));
    } else if (o.frequency_factors) {  // llama.cpp's freq_factors: the frequency divided by its factor
        for (int k = 0; k < half; ++k) inv[size_t(k)] /= double(o.frequency_factors[k]);
    }
    return inv;
}

// Per-pair factors in Phi-3's range (its long_factor runs from 1 to about 60).
std::vector<float> some_factors(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(1.0f, 60.0f);
    std::vector<float> f(static_cast<size_t>(n));
    for (auto &x : f) x = u(rng);
    return f;
}

llmkit_tensor positions_tensor(std::vector<int64_t> &p, const int64_t *shape, int ndim) {
    return host_tensor(p.data(), llmkit_dtype LLMKIT_DTYPE_I64, ndim, shape);
}

void check_rope(dtype t, const llmkit_rope_options &o, layout lay, int64_t D, int rotary) {
    const int64_t B = 2, S = 9, H = 3;
    std::mt19937 rng(uint32_t(11 + o.scaling * 5 + o.layout + D + rotary));
    tensor4 x = make(t, B, S, H, D, lay, &rng);
    const tensor4 orig = x;
    std::vector<int64_t> pos(size_t(B * S));
    std::uniform_int_distribution<int64_t> up(0, 40000);
    for (auto &p : pos) p = up(rng);
    pos[0] = 0, pos[1] = 1;
    const int64_t pshape[2] = {B, S};
    llmkit_tensor pt = positions_tensor(pos, pshape, 2);
    llmkit_rope_options oo = o;
    oo.rotary_dims = rotary;
    const llmkit_status st = llmkit_rope(x.c(), &pt, &oo);
    INFO(llmkit_last_error_message());
    REQUIRE(st == LLMKIT_OK);
    const int n = rotary ? rotary : int(D);
    double ms = 1.0;
    const auto inv = ref_inv_freq(o, n, &ms);
    const double rel = t == dtype::bf16 ? 1.0 / 256 : t == dtype::f16 ? 1.0 / 1024 : 1e-6;
    double worst = 0.0;
    bool ok = true;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < S; ++s)
            for (int64_t h = 0; h < H; ++h) {
                std::vector<double> want(static_cast<size_t>(D));
                for (int64_t d = 0; d < D; ++d) want[size_t(d)] = orig.vals[size_t(orig.idx(b, s, h, d))];
                for (int k = 0; k < n / 2; ++k) {
                    const int i0 = o.layout == LLMKIT_ROPE_INTERLEAVED ? 2 * k : k;
                    const int i1 = o.layout == LLMKIT_ROPE_INTERLEAVED ? 2 * k + 1 : k + n / 2;
                    const double a = double(pos[size_t(b * S + s)]) * inv[size_t(k)];
                    const double x0 = want[size_t(i0)], x1 = want[size_t(i1)];
                    want[size_t(i0)] = (x0 * std::cos(a) - x1 * std::sin(a)) * ms;
                    want[size_t(i1)] = (x0 * std::sin(a) + x1 * std::cos(a)) * ms;
                }
                for (int64_t d = 0; d < D; ++d) {
                    const double err = std::fabs(x.get(b, s, h, d) - want[size_t(d)]);
                    worst = std::max(worst, err);
                    if (!(err <= 2e-6 + rel * std::fabs(want[size_t(d)]))) ok = false;
                }
            }
    INFO("dtype " << llmkit::core::dtype_name(t) << " layout " << o.layout << " scaling " << o.scaling << " D " << D
                  << " rotary " << rotary << " max abs error " << worst);
    CHECK(ok);
}

}  // namespace

TEST_CASE("rope matches the float64 reference: layouts x scalings x dtypes x partial rotary", "[rope]") {
    const std::vector<float> factors = some_factors(64, 5);
    for (int32_t layout_ : {LLMKIT_ROPE_NEOX, LLMKIT_ROPE_INTERLEAVED})
        for (int32_t scaling : {LLMKIT_ROPE_SCALING_NONE, LLMKIT_ROPE_SCALING_LINEAR, LLMKIT_ROPE_SCALING_NTK,
                                LLMKIT_ROPE_SCALING_LLAMA3, LLMKIT_ROPE_SCALING_YARN, LLMKIT_ROPE_SCALING_LONGROPE}) {
            llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
            o.layout = layout_;
            o.scaling = scaling;
            o.theta = scaling == LLMKIT_ROPE_SCALING_LLAMA3 ? 500000.0 : 10000.0;
            o.factor = scaling == LLMKIT_ROPE_SCALING_LLAMA3 ? 8.0 : scaling == LLMKIT_ROPE_SCALING_LONGROPE ? 32.0 : 4.0;
            o.alpha = 8.0;
            o.original_max_position = scaling == LLMKIT_ROPE_SCALING_YARN ? 4096.0 : 8192.0;
            if (scaling == LLMKIT_ROPE_SCALING_LONGROPE) o.frequency_factors = factors.data();
            for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) {
                check_rope(t, o, layout::compact, 128, 0);
                check_rope(t, o, layout::padded, 64, 32);  // partial rotary: the last 32 dims stay
            }
        }
}

TEST_CASE("rope: an infinite frequency factor keeps its pair exactly (Gemma 4's proportional RoPE)", "[rope]") {
    // Pairs (k, k + D/2) over the whole head, the first 8 of 32 turning at theta^(-2k/D), the rest kept.
    std::mt19937 rng(41);
    const int64_t D = 64;
    tensor4 x = make(dtype::f32, 1, 6, 2, D, layout::compact, &rng);
    const tensor4 orig = x;
    std::vector<float> ff(size_t(D / 2), INFINITY);
    std::fill(ff.begin(), ff.begin() + 8, 1.0f);
    std::vector<int64_t> pos = {0, 3, 50, 700, 9000, 123456};
    const int64_t s1[1] = {6};
    llmkit_tensor pt = positions_tensor(pos, s1, 1);
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    o.theta = 1000000.0;
    o.frequency_factors = ff.data();
    REQUIRE(llmkit_rope(x.c(), &pt, &o) == LLMKIT_OK);
    bool kept = true, turned = true;
    for (int64_t s = 0; s < 6; ++s)
        for (int64_t h = 0; h < 2; ++h)
            for (int64_t k = 0; k < D / 2; ++k) {
                const double a = double(pos[size_t(s)]) / std::pow(1000000.0, 2.0 * double(k) / double(D));
                const double x0 = orig.get(0, s, h, k), x1 = orig.get(0, s, h, k + D / 2);
                const double w0 = k < 8 ? x0 * std::cos(a) - x1 * std::sin(a) : x0;
                const double w1 = k < 8 ? x0 * std::sin(a) + x1 * std::cos(a) : x1;
                if (k >= 8 && !(x.get(0, s, h, k) == x0 && x.get(0, s, h, k + D / 2) == x1)) kept = false;
                if (k < 8 && !(std::fabs(x.get(0, s, h, k) - w0) <= 2e-6 + 1e-6 * std::fabs(w0) &&
                               std::fabs(x.get(0, s, h, k + D / 2) - w1) <= 2e-6 + 1e-6 * std::fabs(w1)))
                    turned = false;
            }
    CHECK(kept);
    CHECK(turned);
}

TEST_CASE("rope: frequency factors (a GGUF model's rope_freqs) divide every scaling's frequencies", "[rope]") {
    const std::vector<float> factors = some_factors(64, 6);
    for (int32_t scaling : {LLMKIT_ROPE_SCALING_NONE, LLMKIT_ROPE_SCALING_LINEAR, LLMKIT_ROPE_SCALING_YARN}) {
        llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
        o.scaling = scaling;
        o.factor = 4.0;
        o.original_max_position = 4096.0;
        o.frequency_factors = factors.data();
        check_rope(dtype::f32, o, layout::compact, 128, 0);
        o.layout = LLMKIT_ROPE_INTERLEAVED;
        check_rope(dtype::bf16, o, layout::padded, 64, 32);
    }
}

TEST_CASE("rope: the interleaved layout rotates exactly as llama2.c", "[rope]") {
    // stories15M: dim 288, 6 heads of 48; llama2.c rotates q in float with powf/cosf/sinf.
    const int dim = 288, head_size = 48, n_heads = 6;
    std::mt19937 rng(42);
    for (int pos : {0, 1, 7, 100, 255}) {
        tensor4 x = make(dtype::f32, 1, 1, n_heads, head_size, layout::compact, &rng);
        std::vector<float> vec(static_cast<size_t>(dim));
        for (int i = 0; i < dim; ++i) vec[size_t(i)] = float(x.vals[size_t(i)]);
        for (int i = 0; i < dim; i += 2) {  // llama2.c run.c, forward()
            const int head_dim = i % head_size;
            const float freq = 1.0f / powf(10000.0f, head_dim / (float)head_size);
            const float val = pos * freq;
            const float fcr = cosf(val), fci = sinf(val);
            const float v0 = vec[size_t(i)], v1 = vec[size_t(i + 1)];
            vec[size_t(i)] = v0 * fcr - v1 * fci;
            vec[size_t(i + 1)] = v0 * fci + v1 * fcr;
        }
        std::vector<int32_t> p = {pos};
        const int64_t pshape[1] = {1};
        llmkit_tensor pt = host_tensor(p.data(), llmkit_dtype LLMKIT_DTYPE_I32, 1, pshape);
        llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
        o.layout = LLMKIT_ROPE_INTERLEAVED;
        REQUIRE(llmkit_rope(x.c(), &pt, &o) == LLMKIT_OK);
        double worst = 0.0;
        for (int i = 0; i < dim; ++i) worst = std::max(worst, std::fabs(x.get(0, 0, i / head_size, i % head_size) - vec[size_t(i)]));
        INFO("position " << pos);
        CHECK(worst <= 1e-4);  // llama2.c's float angle pos * freq is off by up to ~pos ulp
    }
}

TEST_CASE("rope: [S] positions are shared by the batch; int32 equals int64", "[rope]") {
    std::mt19937 rng(9);
    tensor4 a = make(dtype::f32, 2, 5, 2, 16, layout::compact, &rng);
    tensor4 b = a;
    std::vector<int32_t> p32 = {3, 1, 4, 1, 5};
    std::vector<int64_t> p64 = {3, 1, 4, 1, 5, 3, 1, 4, 1, 5};
    const int64_t s1[1] = {5}, s2[2] = {2, 5};
    llmkit_tensor t32{};
    t32.data = p32.data();
    t32.device = llmkit_device LLMKIT_DEVICE_HOST;
    t32.ndim = 1;
    t32.dtype = llmkit_dtype LLMKIT_DTYPE_I32;
    t32.shape = s1;
    llmkit_tensor t64 = positions_tensor(p64, s2, 2);
    REQUIRE(llmkit_rope(a.c(), &t32, nullptr) == LLMKIT_OK);
    REQUIRE(llmkit_rope(b.c(), &t64, nullptr) == LLMKIT_OK);
    CHECK(a.bytes == b.bytes);
}

TEST_CASE("rope: Llama 3.1 and YaRN frequencies agree with transformers' published values", "[rope]") {
    // Llama 3.1 8B: theta 500000, factor 8, low 1, high 4, original 8192, head_dim 128.
    llmkit::attention::rope_params p;
    p.theta = 500000.0;
    p.scaling = llmkit::attention::rope_scaling::llama3;
    p.factor = 8.0;
    p.low_freq_factor = 1.0;
    p.high_freq_factor = 4.0;
    p.original_max_position = 8192.0;
    double f = 0.0;
    auto inv = llmkit::attention::rope_inv_freq(p, 128, &f);
    CHECK(inv[0] == Approx(1.0));                                          // high frequency: kept
    CHECK(inv[63] == Approx(1.0 / std::pow(500000.0, 126.0 / 128) / 8.0));  // low frequency: divided by 8
    CHECK(f == 1.0);
    // YaRN's default attention factor: 0.1 ln(factor) + 1.
    p.scaling = llmkit::attention::rope_scaling::yarn;
    p.theta = 10000.0;
    p.factor = 4.0;
    p.original_max_position = 4096.0;
    inv = llmkit::attention::rope_inv_freq(p, 128, &f);
    CHECK(f == Approx(1.0 + 0.1 * std::log(4.0)));
    CHECK(inv[0] == Approx(1.0));                                       // below beta_fast's dim: extrapolated
    CHECK(inv[63] == Approx(1.0 / std::pow(10000.0, 126.0 / 128) / 4.0));  // beyond beta_slow's: interpolated
    // LongRoPE as Phi-3-mini-128k configures it: max_position_embeddings 131072 over an original 4096 is a
    // factor of 32, so the attention factor is sqrt(1 + ln 32 / ln 4096) = sqrt(1 + 5/12).
    const std::vector<float> ff = some_factors(48, 7);  // Phi-3-mini: head_dim 96, 48 factors
    p = llmkit::attention::rope_params{};
    p.scaling = llmkit::attention::rope_scaling::longrope;
    p.factor = 32.0;
    p.original_max_position = 4096.0;
    p.frequency_factors = ff.data();
    inv = llmkit::attention::rope_inv_freq(p, 96, &f);
    CHECK(f == Approx(std::sqrt(17.0 / 12.0)).epsilon(1e-15));
    CHECK(inv[0] == Approx(1.0 / ff[0]).epsilon(1e-15));
    CHECK(inv[47] == Approx(1.0 / (double(ff[47]) * std::pow(10000.0, 94.0 / 96))).epsilon(1e-15));
    p.attention_factor = 1.25;  // given, it wins
    inv = llmkit::attention::rope_inv_freq(p, 96, &f);
    CHECK(f == 1.25);
    p.attention_factor = 0.0;
    p.factor = 1.0;  // no extension: cos and sin as they are
    inv = llmkit::attention::rope_inv_freq(p, 96, &f);
    CHECK(f == 1.0);
}

TEST_CASE("rope_into: x rotated into out gives llmkit_rope's bits on a copy, x unchanged, any dtypes", "[rope]") {
    std::mt19937 rng(21);
    const int64_t B = 2, S = 7, H = 3, D = 64;
    std::vector<int64_t> pos(size_t(B * S));
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = int64_t(i * 997 % 5000);
    const int64_t pshape[2] = {B, S};
    llmkit_tensor pt = positions_tensor(pos, pshape, 2);
    const std::vector<float> factors = some_factors(D / 2, 22);
    for (dtype tx : {dtype::f32, dtype::bf16, dtype::f16})
        for (dtype to : {dtype::f32, dtype::bf16, dtype::f16})
            for (int rotary : {0, 32}) {
                llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
                o.rotary_dims = rotary;
                o.layout = rotary ? LLMKIT_ROPE_INTERLEAVED : LLMKIT_ROPE_NEOX;
                o.scaling = rotary ? LLMKIT_ROPE_SCALING_NONE : LLMKIT_ROPE_SCALING_LONGROPE;
                o.factor = 16.0;
                o.frequency_factors = factors.data();
                INFO("x " << llmkit::core::dtype_name(tx) << ", out " << llmkit::core::dtype_name(to) << ", rotary "
                          << rotary);
                tensor4 x = make(tx, B, S, H, D, layout::padded, &rng);
                const std::vector<unsigned char> x_before = x.bytes;
                tensor4 out = make(to, B, S, H, D, rotary ? layout::compact : layout::padded, nullptr);
                const llmkit_status st = llmkit_rope_into(x.c(), &pt, out.c(), &o);
                INFO(llmkit_last_error_message());
                REQUIRE(st == LLMKIT_OK);
                CHECK(x.bytes == x_before);
                // The reference: llmkit_rope in place on a float32 copy (the same values as x),
                // rounded once to out's dtype.
                tensor4 ref = make(dtype::f32, B, S, H, D, layout::compact, nullptr);
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t s = 0; s < S; ++s)
                        for (int64_t h = 0; h < H; ++h)
                            for (int64_t d = 0; d < D; ++d) ref.set(b, s, h, d, x.get(b, s, h, d));
                REQUIRE(llmkit_rope(ref.c(), &pt, &o) == LLMKIT_OK);
                tensor4 want = make(to, B, S, H, D, layout::compact, nullptr);
                bool same = true, tail_kept = true;
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t s = 0; s < S; ++s)
                        for (int64_t h = 0; h < H; ++h)
                            for (int64_t d = 0; d < D; ++d) {
                                want.set(b, s, h, d, ref.get(b, s, h, d));
                                const double got = out.get(b, s, h, d), w = want.get(b, s, h, d);
                                if (std::memcmp(&got, &w, sizeof got) != 0) same = false;
                                if (rotary && d >= rotary && !(got == round_to(to, x.get(b, s, h, d))))
                                    tail_kept = false;
                            }
                CHECK(same);
                CHECK(tail_kept);
                if (tx == to) {  // and exactly llmkit_rope on a copy of x in its own dtype
                    tensor4 y = x;
                    REQUIRE(llmkit_rope(y.c(), &pt, &o) == LLMKIT_OK);
                    bool equal = true;
                    for (int64_t b = 0; b < B; ++b)
                        for (int64_t s = 0; s < S; ++s)
                            for (int64_t h = 0; h < H; ++h)
                                for (int64_t d = 0; d < D; ++d)
                                    if (y.get(b, s, h, d) != out.get(b, s, h, d)) equal = false;
                    CHECK(equal);
                }
            }
    // out may be x itself: then it is llmkit_rope.
    tensor4 x = make(dtype::bf16, B, S, H, D, layout::padded, &rng);
    tensor4 y = x;
    REQUIRE(llmkit_rope_into(x.c(), &pt, x.c(), nullptr) == LLMKIT_OK);
    REQUIRE(llmkit_rope(y.c(), &pt, nullptr) == LLMKIT_OK);
    CHECK(x.bytes == y.bytes);
}

TEST_CASE("rope: M-RoPE (Qwen2-VL sections, Qwen3-VL interleaved) matches the float64 reference", "[rope]") {
    // Each pair's position component, written out as transformers' recomposition_frequencies builds it:
    // Qwen2-VL splits the pairs into runs of mrope_section[i] taking component i % 3; Qwen3-VL starts from
    // all-temporal and overwrites pairs offset, offset + 3, ... below 3 * mrope_section[dim] (dim 1, 2).
    auto components = [](const int sec[3], bool interleaved, int half) {
        std::vector<int> c(static_cast<size_t>(half), 0);
        if (interleaved) {
            for (int dim = 1; dim <= 2; ++dim)
                for (int k = dim; k < 3 * sec[dim] && k < half; k += 3) c[size_t(k)] = dim;
        } else {
            int k = 0;
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < sec[i]; ++j) c[size_t(k++)] = i % 3;
        }
        return c;
    };
    std::mt19937 rng(31);
    const int64_t B = 2, S = 5, H = 3;
    struct mcase {
        int64_t D;
        int rotary;
        int sec[3];
        int interleaved;
        int32_t layout;
    };
    const mcase cases[] = {{128, 0, {16, 24, 24}, 0, LLMKIT_ROPE_NEOX},   // Qwen2-VL, Qwen2.5-VL
                           {128, 0, {24, 20, 20}, 1, LLMKIT_ROPE_NEOX},   // Qwen3-VL
                           {64, 32, {4, 6, 6}, 0, LLMKIT_ROPE_INTERLEAVED},  // partial rotary, other layout
                           {64, 0, {10, 11, 11}, 1, LLMKIT_ROPE_INTERLEAVED}};
    for (const mcase &mc : cases)
        for (bool batch_positions : {false, true})
            for (dtype t : {dtype::f32, dtype::bf16}) {
                INFO("D " << mc.D << " sections " << mc.sec[0] << "," << mc.sec[1] << "," << mc.sec[2]
                          << " interleaved " << mc.interleaved << " [3, B, S] " << batch_positions);
                tensor4 x = make(t, B, S, H, mc.D, layout::padded, &rng);
                const tensor4 orig = x;
                // Three components that differ (an image's t, h, w), [3, B, S] or [3, S].
                std::vector<int64_t> pos(size_t(3 * (batch_positions ? B : 1) * S));
                std::uniform_int_distribution<int64_t> up(0, 3000);
                for (auto &p : pos) p = up(rng);
                const int64_t s3[3] = {3, B, S}, s2[2] = {3, S};
                llmkit_tensor pt = batch_positions ? positions_tensor(pos, s3, 3) : positions_tensor(pos, s2, 2);
                llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
                o.layout = mc.layout;
                o.theta = 1000000.0;
                o.rotary_dims = mc.rotary;
                for (int i = 0; i < 3; ++i) o.mrope_section[i] = mc.sec[i];
                o.mrope_interleaved = mc.interleaved;
                const llmkit_status st = llmkit_rope(x.c(), &pt, &o);
                INFO(llmkit_last_error_message());
                REQUIRE(st == LLMKIT_OK);
                const int n = mc.rotary ? mc.rotary : int(mc.D);
                const std::vector<int> comp = components(mc.sec, mc.interleaved != 0, n / 2);
                const double rel = t == dtype::bf16 ? 1.0 / 256 : 1e-6;
                bool ok = true;
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t s = 0; s < S; ++s)
                        for (int64_t h = 0; h < H; ++h)
                            for (int k = 0; k < n / 2; ++k) {
                                const int i0 = mc.layout == LLMKIT_ROPE_INTERLEAVED ? 2 * k : k;
                                const int i1 = mc.layout == LLMKIT_ROPE_INTERLEAVED ? 2 * k + 1 : k + n / 2;
                                const int64_t at = (int64_t(comp[size_t(k)]) * (batch_positions ? B : 1) +
                                                    (batch_positions ? b : 0)) * S + s;
                                const double a = double(pos[size_t(at)]) / std::pow(1000000.0, 2.0 * k / n);
                                const double x0 = orig.get(b, s, h, i0), x1 = orig.get(b, s, h, i1);
                                const double w0 = x0 * std::cos(a) - x1 * std::sin(a);
                                const double w1 = x0 * std::sin(a) + x1 * std::cos(a);
                                for (auto [got, want] : {std::pair{x.get(b, s, h, i0), w0}, {x.get(b, s, h, i1), w1}})
                                    if (!(std::fabs(got - want) <= 2e-6 + rel * std::fabs(want))) ok = false;
                            }
                CHECK(ok);
            }
    // With every component equal, M-RoPE is plain RoPE at that position.
    tensor4 x = make(dtype::f32, 1, 4, 2, 64, layout::compact, &rng);
    tensor4 y = x;
    std::vector<int64_t> p1 = {5, 70, 900, 4000}, p3;
    for (int i = 0; i < 3; ++i) p3.insert(p3.end(), p1.begin(), p1.end());
    const int64_t s1[1] = {4}, s2[2] = {3, 4};
    llmkit_tensor t1 = positions_tensor(p1, s1, 1), t3 = positions_tensor(p3, s2, 2);
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    REQUIRE(llmkit_rope(x.c(), &t1, &o) == LLMKIT_OK);
    o.mrope_section[0] = 8, o.mrope_section[1] = 12, o.mrope_section[2] = 12;
    REQUIRE(llmkit_rope(y.c(), &t3, &o) == LLMKIT_OK);
    CHECK(x.bytes == y.bytes);
}

TEST_CASE("rope: M-RoPE's bad sections and positions give clear errors; the caches refuse it", "[rope][errors]") {
    std::mt19937 rng(32);
    tensor4 x = make(dtype::f32, 1, 4, 2, 16, layout::compact, &rng);
    const std::vector<unsigned char> before = x.bytes;
    std::vector<int64_t> p(12, 1);
    const int64_t s34[2] = {3, 4}, s4[1] = {4}, s24[2] = {2, 4};
    llmkit_tensor p34 = positions_tensor(p, s34, 2), p4 = positions_tensor(p, s4, 1), p24 = positions_tensor(p, s24, 2);
    auto expect = [](llmkit_status got, llmkit_status want, const std::string &needle) {
        INFO("message: " << llmkit_last_error_message());
        CHECK(got == want);
        CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
    };
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    o.mrope_section[0] = 2, o.mrope_section[1] = 3, o.mrope_section[2] = 3;
    CHECK(llmkit_rope(x.c(), &p34, &o) == LLMKIT_OK);
    x.bytes = before;
    expect(llmkit_rope(x.c(), &p4, &o), LLMKIT_ERROR_SHAPE, "must be M-RoPE's [3, B, S] = [3, 1, 4] or [3, S]");
    expect(llmkit_rope(x.c(), &p24, &o), LLMKIT_ERROR_SHAPE, "M-RoPE's");
    o.mrope_section[2] = 4;
    expect(llmkit_rope(x.c(), &p34, &o), LLMKIT_ERROR_SHAPE, "mrope_section = [2, 3, 4] sums to 9 pairs");
    o.mrope_section[2] = -3, o.mrope_section[0] = 8;
    expect(llmkit_rope(x.c(), &p34, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "must not be negative");
    o.mrope_section[0] = 2, o.mrope_section[2] = 3;
    o.mrope_interleaved = 2;
    expect(llmkit_rope(x.c(), &p34, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "mrope_interleaved must be 0 or 1");
    CHECK(x.bytes == before);
    o.mrope_interleaved = 0;
    // A struct from before the M-RoPE fields: plain RoPE, one position per token.
    o.struct_size = uint32_t(offsetof(llmkit_rope_options, mrope_section));
    CHECK(llmkit_rope(x.c(), &p4, &o) == LLMKIT_OK);
    o.struct_size = sizeof o;
    // The caches' fused RoPE rotates token j at position j: M-RoPE is refused, nothing appended.
    llmkit_kv_cache_options co = LLMKIT_KV_CACHE_OPTIONS_INIT;
    co.n_layers = 1, co.n_kv_heads = 2, co.head_dim = 16, co.capacity = 8, co.max_sequences = 1;
    llmkit_kv_cache *cache = nullptr;
    REQUIRE(llmkit_kv_cache_create(&cache, &co) == LLMKIT_OK);
    int32_t seq = -1;
    REQUIRE(llmkit_kv_cache_seq_new(cache, &seq) == LLMKIT_OK);
    const int64_t kshape[3] = {4, 2, 16};
    llmkit_tensor k3 = host_tensor(x.bytes.data(), llmkit_dtype LLMKIT_DTYPE_F32, 3, kshape);
    expect(llmkit_kv_cache_append_rope(cache, 0, seq, &k3, &k3, &o), LLMKIT_ERROR_UNSUPPORTED, "rope: M-RoPE");
    int64_t len = -1;
    REQUIRE(llmkit_kv_cache_seq_length(cache, seq, 0, &len) == LLMKIT_OK);
    CHECK(len == 0);
    REQUIRE(llmkit_kv_cache_append(cache, 0, seq, &k3, &k3) == LLMKIT_OK);
    llmkit_kv_attention_options ko = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    ko.rope = &o;
    const int64_t qshape[4] = {1, 1, 2, 16};
    std::vector<float> q(32, 0.5f), out(32);
    llmkit_tensor tq = host_tensor(q.data(), llmkit_dtype LLMKIT_DTYPE_F32, 4, qshape);
    llmkit_tensor to = host_tensor(out.data(), llmkit_dtype LLMKIT_DTYPE_F32, 4, qshape);
    expect(llmkit_kv_cache_attention(cache, 0, &tq, &seq, 1, &to, &ko), LLMKIT_ERROR_UNSUPPORTED, "options.rope: M-RoPE");
    llmkit_kv_cache_free(cache);
}

TEST_CASE("rope_into: bad out tensors give clear errors and nothing is written", "[rope][errors]") {
    std::mt19937 rng(23);
    tensor4 x = make(dtype::f32, 1, 4, 2, 16, layout::compact, &rng);
    std::vector<int64_t> p = {0, 1, 2, 3};
    const int64_t s1[1] = {4};
    llmkit_tensor pt = positions_tensor(p, s1, 1);
    auto expect = [](llmkit_status got, llmkit_status want, const std::string &needle) {
        INFO("message: " << llmkit_last_error_message());
        CHECK(got == want);
        CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
    };
    tensor4 small = make(dtype::f32, 1, 3, 2, 16, layout::compact, nullptr);
    expect(llmkit_rope_into(x.c(), &pt, small.c(), nullptr), LLMKIT_ERROR_SHAPE, "out: shape [1, 3, 2, 16] differs");
    expect(llmkit_rope_into(x.c(), &pt, nullptr, nullptr), LLMKIT_ERROR_NULL_POINTER, "out");
    tensor4 out = make(dtype::f32, 1, 4, 2, 16, layout::compact, nullptr);
    llmkit_tensor oi = *out.c();
    oi.dtype = llmkit_dtype LLMKIT_DTYPE_I32;
    expect(llmkit_rope_into(x.c(), &pt, &oi, nullptr), LLMKIT_ERROR_DTYPE, "out: dtype int32");
    llmkit_tensor os = *out.c();
    const int64_t st[4] = {4 * 2 * 32, 2 * 32, 32, 2};
    os.strides = st;
    expect(llmkit_rope_into(x.c(), &pt, &os, nullptr), LLMKIT_ERROR_UNSUPPORTED, "out: the head_dim axis (3)");
    llmkit_tensor o0 = *out.c();
    const int64_t bcast[4] = {128, 0, 16, 1};  // every token onto one row: refused, out is written
    o0.strides = bcast;
    expect(llmkit_rope_into(x.c(), &pt, &o0, nullptr), LLMKIT_ERROR_UNSUPPORTED, "out: dimension 1 (extent 4) has stride 0");
    // A NaN in x: refused before out is written.
    x.set(0, 3, 1, 5, NAN);
    const std::vector<unsigned char> before = out.bytes;
    expect(llmkit_rope_into(x.c(), &pt, out.c(), nullptr), LLMKIT_ERROR_NON_FINITE, "x[0, 3, 1, 5] = nan");
    CHECK(out.bytes == before);
}

TEST_CASE("rope: bad arguments give clear errors", "[rope][errors]") {
    std::mt19937 rng(2);
    tensor4 x = make(dtype::f32, 1, 4, 2, 16, layout::compact, &rng);
    std::vector<int64_t> p = {0, 1, 2, 3};
    const int64_t s1[1] = {4}, s3[1] = {3};
    llmkit_tensor pt = positions_tensor(p, s1, 1);
    auto expect = [](llmkit_status got, llmkit_status want, const std::string &needle) {
        INFO("message: " << llmkit_last_error_message());
        CHECK(got == want);
        CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
    };
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    o.rotary_dims = 7;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_SHAPE, "rotary_dims = 7");
    o.rotary_dims = 18;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_SHAPE, "rotary_dims = 18");
    o = llmkit_rope_options LLMKIT_ROPE_OPTIONS_INIT;
    o.layout = 5;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.layout");
    o = llmkit_rope_options LLMKIT_ROPE_OPTIONS_INIT;
    o.scaling = 9;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.scaling");
    o = llmkit_rope_options LLMKIT_ROPE_OPTIONS_INIT;
    o.scaling = LLMKIT_ROPE_SCALING_LLAMA3;
    o.low_freq_factor = 4.0;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "high_freq_factor");
    o = llmkit_rope_options LLMKIT_ROPE_OPTIONS_INIT;
    o.scaling = LLMKIT_ROPE_SCALING_YARN;
    o.original_max_position = 4096.0;
    o.theta = 1.0;  // log(theta) = 0 in YaRN's correction range
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "theta > 1");
    o = llmkit_rope_options LLMKIT_ROPE_OPTIONS_INIT;
    o.theta = NAN;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.theta");
    // LongRoPE and frequency factors: missing, zero, negative, NaN; an original context that makes ln 0.
    const std::vector<unsigned char> x_before = x.bytes;
    o = llmkit_rope_options LLMKIT_ROPE_OPTIONS_INIT;
    o.scaling = LLMKIT_ROPE_SCALING_LONGROPE;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "needs options.frequency_factors");
    std::vector<float> ff(8, 2.0f);
    o.frequency_factors = ff.data();
    o.factor = 32.0;
    o.original_max_position = 1.0;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.original_max_position");
    o.original_max_position = 4096.0;
    o.factor = 0.0;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.factor");
    o.factor = 32.0;
    o.attention_factor = -1.0;
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.attention_factor");
    o.attention_factor = 0.0;
    for (float badf : {0.0f, -1.0f, NAN, -INFINITY}) {
        ff[7] = badf;
        expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.frequency_factors[7]");
        o.scaling = LLMKIT_ROPE_SCALING_NONE;  // the same check without LongRoPE
        expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "options.frequency_factors[7]");
        o.scaling = LLMKIT_ROPE_SCALING_LONGROPE;
    }
    CHECK(x.bytes == x_before);
    // A struct from before frequency_factors: LongRoPE has no factors, plain RoPE still works.
    ff[7] = 2.0f;
    o.struct_size = uint32_t(offsetof(llmkit_rope_options, frequency_factors));
    expect(llmkit_rope(x.c(), &pt, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "needs options.frequency_factors");
    o.scaling = LLMKIT_ROPE_SCALING_NONE;
    CHECK(llmkit_rope(x.c(), &pt, &o) == LLMKIT_OK);
    llmkit_tensor bad = positions_tensor(p, s3, 1);
    expect(llmkit_rope(x.c(), &bad, nullptr), LLMKIT_ERROR_SHAPE, "positions: shape [3]");
    llmkit_tensor fpos = pt;
    fpos.dtype = llmkit_dtype LLMKIT_DTYPE_F32;
    expect(llmkit_rope(x.c(), &fpos, nullptr), LLMKIT_ERROR_DTYPE, "positions: dtype float32");
    expect(llmkit_rope(nullptr, &pt, nullptr), LLMKIT_ERROR_NULL_POINTER, "x");
    llmkit_tensor xs = *x.c();
    const int64_t st[4] = {4 * 2 * 32, 2 * 32, 32, 2};
    xs.strides = st;
    expect(llmkit_rope(&xs, &pt, nullptr), LLMKIT_ERROR_UNSUPPORTED, "x: the head_dim axis (3) must have stride 1");
    // An empty x whose head_dim does not fit an int: a shape error, not a huge frequency table.
    const int64_t huge[4] = {0, 1, 1, int64_t(1) << 31};
    llmkit_tensor xe = host_tensor(nullptr, llmkit_dtype LLMKIT_DTYPE_F32, 4, huge);
    std::vector<int64_t> p1 = {0};
    const int64_t s11[1] = {1};
    llmkit_tensor pe = positions_tensor(p1, s11, 1);
    expect(llmkit_rope(&xe, &pe, nullptr), LLMKIT_ERROR_SHAPE, "rotary dims = 2147483648");
    // A NaN or infinity: refused before any row is rotated (x unchanged), in every dtype.
    for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) {
        tensor4 xn = make(t, 1, 4, 2, 16, layout::padded, &rng);
        xn.set(0, 2, 1, 11, t == dtype::f16 ? -INFINITY : NAN);
        const std::vector<unsigned char> before = xn.bytes;
        expect(llmkit_rope(xn.c(), &pt, nullptr), LLMKIT_ERROR_NON_FINITE,
               t == dtype::f16 ? "x[0, 2, 1, 11] = -inf is not finite" : "x[0, 2, 1, 11] = nan is not finite");
        CHECK(xn.bytes == before);
    }
    // An empty x as numpy describes it (every stride 0) is fine.
    tensor4 x0 = make(dtype::f32, 1, 0, 2, 16, layout::compact, nullptr);
    llmkit_tensor x0z = *x0.c();
    const int64_t zero[4] = {0, 0, 0, 0};
    x0z.strides = zero;
    std::vector<int64_t> none;
    const int64_t s0[1] = {0};
    llmkit_tensor p0 = positions_tensor(none, s0, 1);
    CHECK(llmkit_rope(&x0z, &p0, nullptr) == LLMKIT_OK);
}
