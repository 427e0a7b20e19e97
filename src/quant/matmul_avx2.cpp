// AVX2 + FMA + F16C matmul kernels. sources.cmake compiles this file (alone)
// with -mavx2 -mfma -mf16c; avx2_kernels() hands the table out only after the
// CPU said it has all three. So that no AVX2 code can be merged into other
// translation units, everything here has internal linkage and no std::
// template or inline library function is used.
//
// They compute exactly what matmul_scalar.cpp computes (see
// matmul_kernels.hpp): the integer lanes come from vpmaddubsw (unsigned x
// signed bytes -> int16 pairs) and vpmaddwd (pairs -> int32, times the
// sub-block scale for the K-quants), whose lane l covers elements 4l..4l+3 of
// each 32-element sub-block (Q4_0 / Q4_1: 4 folded lanes, see their section
// below). The 4- to 6-bit levels enter vpmaddubsw
// unsigned, as stored, with any offset (Q4_0's 8, Q5_0's 16) taken off the
// pair sums and the K-quants' offsets kept in the separate bias term; the
// 8-bit weights use the sign trick |w| * (x * sign(w)), exact since |x| <= 127.
//
// The float work follows the prescribed order: one vfmadd per block into 8
// lane-wise accumulators per (weight row, x row), reduced once per output in
// the fixed tree of reduce8(). For GEMV a tile is 4 weight rows (1 for the
// K-quants, see kernel(); Q4_0 and Q4_1 have their own 4-row loop,
// gemv32_rows4, and GEMM tile, fold_tile), so each x block is loaded once for
// 4 rows; the next tile's rows are prefetched.
#include <cstddef>
#include <cstdint>

#include "quant/gguf_codebooks.hpp"
#include "quant/matmul_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define LLMKIT_QMM_AVX2 1
#endif

namespace llmkit::quant::mm {

#ifdef LLMKIT_QMM_AVX2
namespace {

float f16_at(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

__m256i load32(const void *p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }

// 16 bytes of packed nibbles as 32 bytes: the low nibbles, then the high ones.
// (One 128-bit load into both halves, the high half shifted right by 4.)
__m256i nibbles(const uint8_t *p) {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
}

// IQ4_NL's and MXFP4's codebooks (gguf_codebooks.hpp) in both 128-bit
// halves, for vpshufb.
__m256i codebook_iq4() {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(k_iq4_values)));
}
__m256i codebook_mxfp4() {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(k_e2m1_doubled)));
}

// Byte e is 0xFF when bit e of x is set, else 0.
__m256i bits_to_bytes(uint32_t x) {
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int32_t(x)), spread);
    const __m256i others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);  // every bit but bit (e % 8) of byte e
    return _mm256_cmpeq_epi8(_mm256_or_si256(v, others), _mm256_set1_epi64x(-1));
}

// Lane l = sum of u[4l..4l+3] * x[4l..4l+3] for unsigned u (no vpmaddubsw
// saturation: callers keep 2 * u * 127 < 2^15), with a multiplier per
// 16-element half (int16 lanes of `scale`).
__m256i dot_u8_scaled(__m256i u, __m256i x, __m256i scale) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), scale);
}
// Lane l = sum of w * x for signed w (aw = |w|) and |x| <= 127.
__m256i dot_s8(__m256i aw, __m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1));
}

// ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)), as matmul_scalar.cpp sums.
float reduce8(__m256 v) {
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

// The 256-element kinds (the K-quants and IQ4_XS).
constexpr bool is_k(kernel_kind k) { return k >= k_q4_k; }
// Q2_K, Q3_K and Q6_K: an integer scale per 16-element group, offset term against sum16.
constexpr bool per16(kernel_kind k) { return k == k_q6_k || k == k_q2_k || k == k_q3_k; }

size_t block_bytes(kernel_kind k) {
    switch (k) {
    case k_q4_0: return 18;
    case k_q4_1: return 20;
    case k_q5_0: return 22;
    case k_q5_1: return 24;
    case k_q8_0: return 34;
    case k_i8_rows: return 32;
    case k_iq4_nl: return 18;
    case k_mxfp4: return 17;
    case k_q4_k: return 144;
    case k_q5_k: return 176;
    case k_q6_k: return 210;
    case k_q2_k: return 84;
    case k_q3_k: return 110;
    case k_iq4_xs: return 136;
    default: return 0;
    }
}

// Activation row pointers of one tile.
template <int C>
struct act_tile {
    const int8_t *q[C];
    const float *d[C];
    const int16_t *s[C];
    const int16_t *s32[C];
};

// The accumulators of one tile and how they become y.
template <int R, int C>
struct accumulators {
    __m256 acc[R][C];
    float bias[R][C];

    accumulators() {
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) {
                acc[r][c] = _mm256_setzero_ps();
                bias[r][c] = 0.0f;
            }
    }
};

// ---------------------------------------------------------------- 32-element blocks
// Q4_0, Q4_1, Q5_0, Q8_0 and int8 rows: one activation block per weight block.
//
// The 4- and 5-bit levels go into vpmaddubsw unsigned, as stored (0..15 or
// 0..31); Q4_0 and Q5_0's offset (8 or 16) comes off the int16 pair sums as
// offset * (x pair sum), computed once per activation block for all R rows.
// Every int16 stays below 2^15 (at most 2 * 31 * 127 + 2 * 16 * 127), so the
// lanes are exactly those of the signed levels.
template <kernel_kind Kind, int R, int C>
void block32(const uint8_t *const *w, int64_t b, const act_tile<C> &x, accumulators<R, C> &t) {
    constexpr bool is_signed = Kind == k_q8_0 || Kind == k_i8_rows || Kind == k_iq4_nl || Kind == k_mxfp4;
    constexpr int offset = Kind == k_q4_0 ? 8 : Kind == k_q5_0 ? 16 : 0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i xv[C], xoff[C];
    float dx[C];
    for (int c = 0; c < C; ++c) {
        xv[c] = load32(x.q[c] + 32 * b);
        dx[c] = x.d[c][b];
        if (offset) xoff[c] = _mm256_maddubs_epi16(_mm256_set1_epi8(char(offset)), xv[c]);
    }
    for (int r = 0; r < R; ++r) {
        const uint8_t *o = w[r] + b * int64_t(block_bytes(Kind));
        __m256i wv, aw = _mm256_setzero_si256();
        float dw, mw = 0.0f;
        if (Kind == k_q4_0) {
            dw = f16_at(o);
            wv = nibbles(o + 2);
        } else if (Kind == k_q4_1) {
            dw = f16_at(o);
            mw = f16_at(o + 2);
            wv = nibbles(o + 4);
        } else if (Kind == k_q5_0) {
            dw = f16_at(o);
            uint32_t qh;
            __builtin_memcpy(&qh, o + 2, 4);
            wv = _mm256_or_si256(nibbles(o + 6), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16)));
        } else if (Kind == k_q5_1) {
            dw = f16_at(o);
            mw = f16_at(o + 2);
            uint32_t qh;
            __builtin_memcpy(&qh, o + 4, 4);
            wv = _mm256_or_si256(nibbles(o + 8), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16)));
        } else if (Kind == k_q8_0) {
            dw = f16_at(o);
            wv = load32(o + 2);
        } else if (Kind == k_iq4_nl) {  // codebook lookup: vpshufb of the nibbles
            dw = f16_at(o);
            wv = _mm256_shuffle_epi8(codebook_iq4(), nibbles(o + 2));
        } else if (Kind == k_mxfp4) {
            dw = e8m0_half(o[0]);
            wv = _mm256_shuffle_epi8(codebook_mxfp4(), nibbles(o + 1));
        } else {  // int8 rows: the row scale comes at the end
            dw = 1.0f;
            wv = load32(o);
        }
        if (is_signed) aw = _mm256_abs_epi8(wv);
        for (int c = 0; c < C; ++c) {
            __m256i p;
            if (is_signed) {
                p = dot_s8(aw, wv, xv[c]);
            } else {
                __m256i pairs = _mm256_maddubs_epi16(wv, xv[c]);
                if (offset) pairs = _mm256_sub_epi16(pairs, xoff[c]);
                p = _mm256_madd_epi16(pairs, ones);
            }
            t.acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx[c]), t.acc[r][c]);
            if (Kind == k_q4_1 || Kind == k_q5_1) {
                const int32_t s = int32_t(x.s[c][2 * b]) + int32_t(x.s[c][2 * b + 1]);
                t.bias[r][c] = __builtin_fmaf(float(s), mw * dx[c], t.bias[r][c]);
            }
        }
    }
}

uint32_t u16_at(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return h;
}

// The f16 at byte `off` of blocks b and b + 1 of each of R rows (R <= 4), as
// floats: lane 2r + i is row r, block b + i.
template <int R>
__m256 f16_pairs(const uint8_t *const *w, int64_t b, size_t bb, size_t off) {
    uint64_t q[2] = {0, 0};
    for (int r = 0; r < R; ++r) {
        const uint8_t *o = w[r] + b * int64_t(bb) + off;
        const uint64_t pair = u16_at(o) | (u16_at(o + bb) << 16);
        q[r / 2] |= pair << (32 * (r % 2));
    }
    return _mm256_cvtph_ps(_mm_set_epi64x(int64_t(q[1]), int64_t(q[0])));
}

// Two consecutive 32-element blocks, b and b + 1, of R <= 4 rows: as two
// block32 calls, but the float scales dw * dx (and Q4_1's mw * dx) of all R x 2
// blocks come from one f16 conversion and one multiplication per activation
// row (vcvtph2ps and vmulps round like the scalar _cvtsh_ss and *), which
// takes most of the per-block scalar work off the vector ports.
template <kernel_kind Kind, int R, int C>
void block32_pair(const uint8_t *const *w, int64_t b, const act_tile<C> &x, accumulators<R, C> &t) {
    static_assert(R <= 4 && (Kind == k_q4_0 || Kind == k_q4_1 || Kind == k_q5_0 || Kind == k_q5_1),
                  "4- and 5-bit pairs, up to 4 rows");
    constexpr int offset = Kind == k_q4_0 ? 8 : Kind == k_q5_0 ? 16 : 0;
    constexpr bool has_min = Kind == k_q4_1 || Kind == k_q5_1;
    constexpr size_t bb = Kind == k_q4_0 ? 18 : Kind == k_q4_1 ? 20 : Kind == k_q5_0 ? 22 : 24;
    const __m256i ones = _mm256_set1_epi16(1);
    alignas(32) float sd[C][8], sm[C][8];
    const __m256 dw = f16_pairs<R>(w, b, bb, 0);
    __m256 mw = _mm256_setzero_ps();
    if (has_min) mw = f16_pairs<R>(w, b, bb, 2);
    for (int c = 0; c < C; ++c) {
        const __m256 dx = _mm256_unpacklo_ps(_mm256_set1_ps(x.d[c][b]), _mm256_set1_ps(x.d[c][b + 1]));
        _mm256_store_ps(sd[c], _mm256_mul_ps(dw, dx));
        if (has_min) _mm256_store_ps(sm[c], _mm256_mul_ps(mw, dx));
    }
    // GEMV with 4 rows: the offset terms of the 4 rows as the lanes of one
    // register (the same fmaf per row and block, in block order), instead of 8
    // scalar chains. The products mw * dx are sm's, reordered to rows 0..3 of
    // block b | rows 0..3 of block b + 1.
    constexpr bool bias4 = has_min && R == 4 && C == 1;
    if constexpr (bias4) {
        const __m256 smr = _mm256_permutevar8x32_ps(_mm256_load_ps(sm[0]), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        __m128 bias = _mm_setr_ps(t.bias[0][0], t.bias[1][0], t.bias[2][0], t.bias[3][0]);
        bias = _mm_fmadd_ps(_mm_set1_ps(float(x.s32[0][b])), _mm256_castps256_ps128(smr), bias);
        bias = _mm_fmadd_ps(_mm_set1_ps(float(x.s32[0][b + 1])), _mm256_extractf128_ps(smr, 1), bias);
        alignas(16) float out[4];
        _mm_store_ps(out, bias);
        for (int r = 0; r < R; ++r) t.bias[r][0] = out[r];
    }
    for (int i = 0; i < 2; ++i) {
        __m256i xv[C], xoff[C];
        for (int c = 0; c < C; ++c) {
            xv[c] = load32(x.q[c] + 32 * (b + i));
            if (offset) xoff[c] = _mm256_maddubs_epi16(_mm256_set1_epi8(char(offset)), xv[c]);
        }
        for (int r = 0; r < R; ++r) {
            const uint8_t *o = w[r] + (b + i) * int64_t(bb);
            __m256i wv;
            if (Kind == k_q4_0) {
                wv = nibbles(o + 2);
            } else if (Kind == k_q4_1) {
                wv = nibbles(o + 4);
            } else {  // Q5_0: qh at 2, qs at 6; Q5_1: qh at 4, qs at 8
                constexpr int qh_at = Kind == k_q5_0 ? 2 : 4;
                uint32_t qh;
                __builtin_memcpy(&qh, o + qh_at, 4);
                wv = _mm256_or_si256(nibbles(o + qh_at + 4), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16)));
            }
            for (int c = 0; c < C; ++c) {
                __m256i pairs = _mm256_maddubs_epi16(wv, xv[c]);
                if (offset) pairs = _mm256_sub_epi16(pairs, xoff[c]);
                const __m256i p = _mm256_madd_epi16(pairs, ones);
                t.acc[r][c] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&sd[c][2 * r + i]), t.acc[r][c]);
                if (has_min && !bias4) {
                    const int32_t s = int32_t(x.s[c][2 * (b + i)]) + int32_t(x.s[c][2 * (b + i) + 1]);
                    t.bias[r][c] = __builtin_fmaf(float(s), sm[c][2 * r + i], t.bias[r][c]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Q4_0 and Q4_1: folded lanes
// Q4_0 and Q4_1 use 4 folded lanes per block (matmul_kernels.hpp): lane l
// sums elements 4l..4l+3 and 16+4l..16+4l+3. So a block's 16 bytes of
// nibbles need no reordering: the low nibbles (elements 0..15) meet the
// activations' first 16 bytes in one vpmaddubsw, the high nibbles the last 16
// in another, and the two int16 results are added (|int16| <= 2 * 2 * 15 *
// 127 before Q4_0's offset, 4 * 8 * 127 after). Each register then holds two
// weight rows (GEMV) or two activation rows (GEMM), 4 lanes each, and pays
// one vpmaddwd, one conversion and one vfmadd for both: 6 vector operations
// per row and block in the GEMV loop instead of 7, and no per-block offset
// vpmaddubsw (Q4_0's 8 * x sums come precomputed, act_rows::fold8).
//
// GEMV, one activation row against 4 weight rows (gemv32_rows4):
//  * The float scales are made in a pass of their own over a chunk of blocks
//    (dw * dx, and Q4_1's mw * dx, for 4 rows x 2 blocks from 4 loads, 4
//    vpshufb and 2 vcvtph2ps), stored to the stack, and read by the main loop
//    (one 16-byte broadcast per block, one vpermilps per row pair). Built
//    inside the main loop they cost about a third of its time: their long
//    load-shuffle-convert chains held the fmadds back.
//  * Q4_1's offset terms of the 4 rows are one 4-lane fmadd per block.
// Measured on the kernel alone (64 x 4096 weights in L2, 1 thread, 2-core
// EPYC VM, same binary): Q4_0 16.1 -> 18.1 GB/s, Q4_1 19.1 -> 19.8 against
// the 8-lane loop this replaced (the pre-pass of the scales is a quarter of
// the time that remains). Q5_0 stays on the generic tiles (8 lanes).
template <kernel_kind Kind>
struct gemv32_traits {
    static_assert(Kind == k_q4_0 || Kind == k_q4_1, "32-element 4-bit blocks");
    static constexpr int block_bytes = Kind == k_q4_0 ? 18 : 20;
    static constexpr int qs_offset = Kind == k_q4_0 ? 2 : 4;
    static constexpr int offset = Kind == k_q4_0 ? 8 : 0;  // Q4_0's levels are q - 8; Q4_1 adds a min instead
    static constexpr bool has_min = Kind == k_q4_1;
};

// vpshufb controls that gather the f16 scale (and Q4_1's f16 min) of blocks b
// and b + 1 of row r from 32 bytes read at block b: in each 128-bit half,
// int16 r <- the scale, int16 4 + r <- the min; the low half from block b
// (bytes 0..3), the high half from block b + 1 (bytes BB..BB + 3, i.e. BB - 16
// onwards in the high half).
template <int BB, bool HasMin>
struct f16_gather {
    alignas(32) int8_t ctl[4][32];
    constexpr f16_gather() : ctl() {
        for (int r = 0; r < 4; ++r)
            for (int i = 0; i < 32; ++i) {
                const int half = i / 16, pos = i % 16, word = pos / 2, byte = pos % 2;
                const int base = half == 0 ? 0 : BB - 16;
                int8_t v = -1;  // vpshufb writes 0
                if (word == r) v = int8_t(base + byte);
                if (HasMin && word == 4 + r) v = int8_t(base + 2 + byte);
                ctl[r][i] = v;
            }
    }
};

// The sum of the 4 floats of v as the folded lanes prescribe: (v0 + v2) + (v1 + v3).
float reduce4(__m128 v) {
    const __m128 t = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

__m128i load16(const void *p) { return _mm_loadu_si128(static_cast<const __m128i *>(p)); }
__m256i bcast16(const void *p) { return _mm256_broadcastsi128_si256(load16(p)); }
// The 16 bytes at a in the low half, those at b in the high half.
__m256i two16(const void *a, const void *b) {
    return _mm256_blend_epi32(_mm256_castsi128_si256(load16(a)), bcast16(b), 0xF0);
}

// The int16 sums of a folded-lane block of two rows: q holds 16 bytes of
// nibbles per half, xlo / xhi the activations' first / last 16 bytes for each
// half, xoff Q4_0's 8 * x sums for each half (act_rows::fold8).
template <kernel_kind Kind>
__m256i fold_pairs(__m256i q, __m256i xlo, __m256i xhi, __m256i xoff) {
    const __m256i low4 = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    const __m256i sum = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
    return Kind == k_q4_0 ? _mm256_sub_epi16(sum, xoff) : sum;
}

template <kernel_kind Kind>
void gemv32_rows4(const kernel_args &a, int64_t r0) {
    using tr = gemv32_traits<Kind>;
    constexpr int bb = tr::block_bytes;
    static constexpr f16_gather<bb, tr::has_min> gather{};
    const __m256i ctl0 = load32(gather.ctl[0]), ctl1 = load32(gather.ctl[1]);
    const __m256i ctl2 = load32(gather.ctl[2]), ctl3 = load32(gather.ctl[3]);
    const size_t rb = a.w_row_bytes;
    const uint8_t *w0 = a.w + size_t(r0) * rb, *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
    const uint8_t *next = w0 + 4 * rb;  // the next tile, prefetched while this one is read (see tile())
    const int8_t *xq = a.act.q;
    const float *xd = a.act.d;
    const int16_t *xs = a.act.sum32, *xf = a.act.fold8;
    const int64_t nb = a.act.k / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    // vpermilps controls: {s0 x 4 | s1 x 4} and {s2 x 4 | s3 x 4} from {s0..s3 | s0..s3}.
    const __m256i sel01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), sel23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    __m256 acc01 = _mm256_setzero_ps(), acc23 = acc01;  // rows 0 | 1 and 2 | 3, 4 lanes each
    __m128 bias = _mm_setzero_ps();                     // Q4_1: lane r is row r's offset term

    // Per block of the chunk: {dw * dx of rows 0..3, mw * dx of rows 0..3}.
    constexpr int64_t chunk = 128;
    alignas(32) float scales[chunk][8];
    alignas(32) float sums[chunk];  // Q4_1: float(sum32) of each block, converted 8 at a time
    for (int64_t c0 = 0; c0 < nb; c0 += chunk) {
        const int64_t cn = nb - c0 < chunk ? nb - c0 : chunk;
        int64_t j = 0;
        for (; j + 2 <= cn; j += 2) {
            const size_t off = size_t(c0 + j) * bb;
            const __m256i h01 = _mm256_or_si256(_mm256_shuffle_epi8(load32(w0 + off), ctl0),
                                                _mm256_shuffle_epi8(load32(w1 + off), ctl1));
            const __m256i h23 = _mm256_or_si256(_mm256_shuffle_epi8(load32(w2 + off), ctl2),
                                                _mm256_shuffle_epi8(load32(w3 + off), ctl3));
            const __m256i h = _mm256_or_si256(h01, h23);
            const __m256 dx0 = _mm256_set1_ps(xd[c0 + j]), dx1 = _mm256_set1_ps(xd[c0 + j + 1]);
            _mm256_store_ps(scales[j], _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), dx0));
            _mm256_store_ps(scales[j + 1], _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), dx1));
        }
        if (j < cn) {  // an odd last block: its scales one by one (a 32-byte read could pass the end)
            const size_t off = size_t(c0 + j) * bb;
            const __m128 dx = _mm_set1_ps(xd[c0 + j]);
            auto f16x4 = [&](size_t at) {
                return _mm_setr_ps(f16_at(w0 + at), f16_at(w1 + at), f16_at(w2 + at), f16_at(w3 + at));
            };
            _mm_store_ps(scales[j], _mm_mul_ps(f16x4(off), dx));
            if (tr::has_min) _mm_store_ps(scales[j] + 4, _mm_mul_ps(f16x4(off + 2), dx));
        }
        if (tr::has_min) {  // the block sums as floats, 8 at a time (exact)
            int64_t i = 0;
            for (; i + 8 <= cn; i += 8)
                _mm256_store_ps(sums + i, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(load16(xs + c0 + i))));
            for (; i < cn; ++i) sums[i] = float(xs[c0 + i]);
        }

        auto block = [&](int64_t j) {
            const int64_t b = c0 + j;
            const size_t off = size_t(b) * bb;
            const __m256i xlo = bcast16(xq + 32 * b), xhi = bcast16(xq + 32 * b + 16);
            const __m256i xoff = Kind == k_q4_0 ? bcast16(xf + 8 * b) : _mm256_setzero_si256();
            const __m256 s = _mm256_broadcast_ps(reinterpret_cast<const __m128 *>(scales[j]));
            auto rows = [&](const uint8_t *oa, const uint8_t *ob, __m256i sel, __m256 &acc) {
                const __m256i q = two16(oa + tr::qs_offset, ob + tr::qs_offset);
                const __m256i lanes = _mm256_madd_epi16(fold_pairs<Kind>(q, xlo, xhi, xoff), ones);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_permutevar_ps(s, sel), acc);
            };
            rows(w0 + off, w1 + off, sel01, acc01);
            rows(w2 + off, w3 + off, sel23, acc23);
            if (tr::has_min) bias = _mm_fmadd_ps(_mm_broadcast_ss(sums + j), _mm_load_ps(scales[j] + 4), bias);
        };
        // One prefetch per row and block pair (36 or 40 bytes), so every cache line gets one.
        auto prefetch = [&](int64_t j) {
            const char *p = reinterpret_cast<const char *>(next) + size_t(c0 + j) * bb;
            for (size_t r = 0; r < 4; ++r) _mm_prefetch(p + r * rb, _MM_HINT_T0);
        };
        for (j = 0; j + 2 <= cn; j += 2) {
            prefetch(j);
            block(j);
            block(j + 1);
        }
        if (j < cn) {
            prefetch(j);
            block(j);
        }
    }
    alignas(16) float bias_r[4];
    _mm_store_ps(bias_r, bias);
    float *y = a.y + r0 * a.y_col_stride;
    y[0] = reduce4(_mm256_castps256_ps128(acc01)) + bias_r[0];
    y[a.y_col_stride] = reduce4(_mm256_extractf128_ps(acc01, 1)) + bias_r[1];
    y[2 * a.y_col_stride] = reduce4(_mm256_castps256_ps128(acc23)) + bias_r[2];
    y[3 * a.y_col_stride] = reduce4(_mm256_extractf128_ps(acc23, 1)) + bias_r[3];
}

// GEMM (and the GEMV rows left over from gemv32_rows4): R weight rows from r0
// times C activation rows from c0. Activation rows go in pairs, one per half
// of a register, against each weight row's nibbles broadcast to both halves
// (the unpacking shared by all C); the scale {dw * dx_c x 4 | dw * dx_c' x 4}
// is one vmulps per weight row and pair. An odd last activation row adds the
// two halves of one vpmaddubsw instead.
template <kernel_kind Kind, int R, int C>
void fold_tile(const kernel_args &a, int64_t r0, int64_t c0) {
    using tr = gemv32_traits<Kind>;
    constexpr int bb = tr::block_bytes, P = C / 2;
    constexpr bool odd = C % 2 == 1;
    const int64_t nb = a.act.k / 32;
    const uint8_t *w[R];
    for (int r = 0; r < R; ++r) w[r] = a.w + size_t(r0 + r) * a.w_row_bytes;
    const int8_t *xq[C];
    const float *xd[C];
    const int16_t *xs[C], *xf[C];
    for (int c = 0; c < C; ++c) {
        xq[c] = a.act.q + (c0 + c) * a.act.k;
        xd[c] = a.act.d + (c0 + c) * nb;
        xs[c] = a.act.sum32 + (c0 + c) * nb;
        xf[c] = Kind == k_q4_0 ? a.act.fold8 + (c0 + c) * nb * 8 : nullptr;
    }
    const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(15);
    __m256 acc[R][P > 0 ? P : 1];
    __m128 acc1[R];  // the odd activation row
    float bias[R][C];
    for (int r = 0; r < R; ++r) {
        for (int p = 0; p < P; ++p) acc[r][p] = _mm256_setzero_ps();
        acc1[r] = _mm_setzero_ps();
        for (int c = 0; c < C; ++c) bias[r][c] = 0.0f;
    }
    const uintptr_t ahead = uintptr_t(R) * a.w_row_bytes;  // the next R rows (see tile())
    for (int64_t b = 0; b < nb; ++b) {
        __m256i q[R];
        float dw[R], mw[R];
        for (int r = 0; r < R; ++r) {
            const uint8_t *o = w[r] + b * bb;
            _mm_prefetch(reinterpret_cast<const char *>(o + ahead), _MM_HINT_T0);
            q[r] = bcast16(o + tr::qs_offset);
            dw[r] = f16_at(o);
            mw[r] = tr::has_min ? f16_at(o + 2) : 0.0f;
        }
        for (int p = 0; p < P; ++p) {
            const int c = 2 * p;
            const __m256i xlo = two16(xq[c] + 32 * b, xq[c + 1] + 32 * b);
            const __m256i xhi = two16(xq[c] + 32 * b + 16, xq[c + 1] + 32 * b + 16);
            const __m256i xoff = Kind == k_q4_0 ? two16(xf[c] + 8 * b, xf[c + 1] + 8 * b) : _mm256_setzero_si256();
            const __m256 dx = _mm256_setr_m128(_mm_set1_ps(xd[c][b]), _mm_set1_ps(xd[c + 1][b]));
            for (int r = 0; r < R; ++r) {
                const __m256i lanes = _mm256_madd_epi16(fold_pairs<Kind>(q[r], xlo, xhi, xoff), ones);
                acc[r][p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_mul_ps(_mm256_set1_ps(dw[r]), dx), acc[r][p]);
            }
        }
        if (odd) {
            const int c = C - 1;
            const __m256i xv = load32(xq[c] + 32 * b);
            const float dx = xd[c][b];
            for (int r = 0; r < R; ++r) {
                // {low nibbles | high nibbles} against x as stored, then the halves added.
                const __m256i wv = _mm256_and_si256(_mm256_srlv_epi64(q[r], _mm256_setr_epi64x(0, 0, 4, 4)), low4);
                const __m256i p = _mm256_maddubs_epi16(wv, xv);
                __m128i sum = _mm_add_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
                if (Kind == k_q4_0) sum = _mm_sub_epi16(sum, load16(xf[c] + 8 * b));
                const __m128i lanes = _mm_madd_epi16(sum, _mm_set1_epi16(1));
                acc1[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(lanes), _mm_set1_ps(dw[r] * dx), acc1[r]);
            }
        }
        if (tr::has_min)
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c) bias[r][c] = __builtin_fmaf(float(xs[c][b]), mw[r] * xd[c][b], bias[r][c]);
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            const __m128 v = odd && c == C - 1 ? acc1[r]
                             : c % 2 == 0      ? _mm256_castps256_ps128(acc[r][c / 2])
                                               : _mm256_extractf128_ps(acc[r][c / 2], 1);
            a.y[(c0 + c) * a.y_row_stride + (r0 + r) * a.y_col_stride] = reduce4(v) + bias[r][c];
        }
}

// Every activation row against R weight rows, folded lanes: tiles of up to 4 activation rows.
template <kernel_kind Kind, int R>
void fold_rows(const kernel_args &a, int64_t r0) {
    int64_t c = 0;
    for (; c + 4 <= a.act.m; c += 4) fold_tile<Kind, R, 4>(a, r0, c);
    switch (a.act.m - c) {
    case 3: fold_tile<Kind, R, 3>(a, r0, c); break;
    case 2: fold_tile<Kind, R, 2>(a, r0, c); break;
    case 1: fold_tile<Kind, R, 1>(a, r0, c); break;
    default: break;
    }
}

// ---------------------------------------------------------------- 256-element super-blocks
// The 8 six-bit scales and 8 six-bit mins of a Q4_K / Q5_K block (the 12
// bytes s at `p`, ggml's get_scale_min_k4 for j = 0..7) as bytes: scales in
// the low 8 bytes, mins in the high 8. In vector registers (10 operations,
// about half the scalar shifts and inserts): for j < 4, scale j = s[j] & 63
// and min j = s[j + 4] & 63; for j >= 4, scale j = (s[j + 4] & 15) |
// (s[j - 4] >> 6) << 4 and min j = (s[j + 4] >> 4) | (s[j] >> 6) << 4.
// Reads 16 bytes from p (the 4 past the scales are the block's own levels).
__m128i scales_mins_k4(const uint8_t *p) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    // Output byte i takes its low bits from byte `low` of s, its top two from byte `top` (bits 6-7, to 4-5).
    const __m128i low = _mm_shuffle_epi8(raw, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i top = _mm_shuffle_epi8(raw, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i low_bits = _mm_or_si128(
        _mm_and_si128(low, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
        _mm_and_si128(_mm_srli_epi16(low, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
    // (b >> 6) << 4 == (b & 0xC0) >> 2; the 16-bit shift's bits from the next byte land in bits 6-7, masked off.
    const __m128i top_bits = _mm_and_si128(_mm_srli_epi16(top, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(low_bits, top_bits);
}

// Lane 0 = the sum of the 4 int32 of v (exact), converted to float.
__m128 hsum_to_float(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
    return _mm_cvtepi32_ps(v);
}

// int16 element i of each 128-bit half of v, in all 8 int16 of that half.
__m256i broadcast_i16(__m256i v, int i) {
    const __m256i idx = _mm256_set1_epi16(int16_t((2 * i) | ((2 * i + 1) << 8)));
    return _mm256_shuffle_epi8(v, idx);
}

// Sum of the 4 int32 of each of v[0..3]: {sum v0, sum v1, sum v2, sum v3}.
__m128i hsum4x4(__m128i v0, __m128i v1, __m128i v2, __m128i v3) {
    return _mm_hadd_epi32(_mm_hadd_epi32(v0, v1), _mm_hadd_epi32(v2, v3));
}

// t[r] = the 4 int32 of v[r] summed (exact), 4 rows per hadd tree.
template <int R>
void hsum_rows(const __m128i *v, int32_t *t) {
    int r = 0;
    for (; r + 4 <= R; r += 4)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(t + r), hsum4x4(v[r], v[r + 1], v[r + 2], v[r + 3]));
    for (; r < R; ++r) {
        __m128i s = _mm_add_epi32(v[r], _mm_shuffle_epi32(v[r], 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        t[r] = _mm_cvtsi128_si32(s);
    }
}

// The per-group integers of a Q2_K or Q3_K block, as Q6_K's: `scales` the 16
// group multipliers as int16 (even groups in the low half, odd groups in the
// high half, so that broadcast_i16(scales, j) is sub-block j's [sc[2j] x 8 |
// sc[2j+1] x 8]), `bias16` the offset term's multipliers of the 16 groups in
// order (Q2_K: the 4-bit mins; Q3_K: the scales, the factor 4 applied later),
// and the float factors {d, dmin} (Q3_K: {d, -}).
struct q23_scales {
    __m256i scales, bias16;
    __m128 dd;
};

const __m128i k_even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);

template <kernel_kind Kind>
q23_scales q23_block_scales(const uint8_t *o) {
    q23_scales out;
    if (Kind == k_q2_k) {  // scales[16] at 0: scale in the low nibble, min in the high one; d, dmin at 80
        const __m128i raw = load16(o);
        const __m128i low4 = _mm_set1_epi8(15);
        const __m128i sc = _mm_and_si128(raw, low4), mins = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
        out.scales = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc, k_even_odd));
        out.bias16 = _mm256_cvtepu8_epi16(mins);
        out.dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(u16_at(o + 80) | u16_at(o + 82) << 16)));
    } else {  // Q3_K: 12 bytes at 96 (q3_scale in gguf_blocks.cpp), d at 108
        uint64_t lo8;
        uint32_t hi4;
        __builtin_memcpy(&lo8, o + 96, 8);
        __builtin_memcpy(&hi4, o + 104, 4);
        const __m128i raw = _mm_insert_epi32(_mm_cvtsi64_si128(int64_t(lo8)), int32_t(hi4), 2);
        // Low 4 bits of group g: byte g & 15 (g < 8), byte g - 8 >> 4 (g >= 8).
        const __m128i l = _mm_shuffle_epi8(raw, _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7));
        const __m128i low4 = _mm_set1_epi8(15);
        const __m128i low = _mm_blend_epi16(_mm_and_si128(l, low4), _mm_and_si128(_mm_srli_epi16(l, 4), low4), 0xF0);
        // Top 2 bits: bits 2 (g / 4) of byte 8 + g % 4; each 32-bit lane holds one g / 4.
        const __m128i h = _mm_shuffle_epi8(raw, _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11));
        const __m128i top = _mm_and_si128(_mm_srlv_epi32(h, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
        const __m128i sc = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(top, 4)), _mm_set1_epi8(32));
        out.scales = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, k_even_odd));
        out.bias16 = _mm256_cvtepi8_epi16(sc);
        out.dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(u16_at(o + 108))));
    }
    return out;
}

// The levels of the 4 sub-blocks 4h..4h+3 of a Q2_K / Q3_K block, one per
// call: `qs` the 32 bytes of half h (2 bits per sub-block, shifted right by 2
// after each call), `hm` Q3_K's hmask (bit 4h + j, shifted right by 1 after
// each call; the 16-bit shifts move no foreign bit into the bits kept).
template <kernel_kind Kind>
__m256i q23_levels(__m256i &qs, __m256i &hm) {
    __m256i q = _mm256_and_si256(qs, _mm256_set1_epi8(3));
    qs = _mm256_srli_epi16(qs, 2);
    if (Kind == k_q3_k) {
        q = _mm256_or_si256(q, _mm256_and_si256(_mm256_slli_epi16(hm, 2), _mm256_set1_epi8(4)));
        hm = _mm256_srli_epi16(hm, 1);
    }
    return q;
}

// IQ4_XS's 8 sub-block multipliers ls - 32 as int16, in both halves
// (broadcast_i16(v, j) is sub-block j's in all 16): ls = 4 bits of
// scales_l[j / 2] (low nibble for even j) | 2 bits of scales_h at 2j, << 4.
__m256i iq4xs_scales(const uint8_t *o) {
    uint32_t sl;
    __builtin_memcpy(&sl, o + 4, 4);
    const __m128i l = _mm_cvtepu8_epi16(
        _mm_shuffle_epi8(_mm_cvtsi32_si128(int32_t(sl)), _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1)));
    const __m128i low = _mm_blend_epi16(_mm_and_si128(l, _mm_set1_epi16(15)), _mm_srli_epi16(l, 4), 0xAA);
    // Bits 2j..2j+1 of scales_h: multiplied up to bits 14..15 (int16 products wrap), shifted down.
    const __m128i top = _mm_srli_epi16(_mm_mullo_epi16(_mm_set1_epi16(int16_t(u16_at(o + 2))),
                                                       _mm_setr_epi16(16384, 4096, 1024, 256, 64, 16, 4, 1)), 14);
    const __m128i ls = _mm_or_si128(low, _mm_slli_epi16(top, 4));
    return _mm256_broadcastsi128_si256(_mm_sub_epi16(ls, _mm_set1_epi16(32)));
}

template <kernel_kind Kind, int R, int C>
void block256(const uint8_t *const *w, int64_t b, const act_tile<C> &x, accumulators<R, C> &t) {
    const uint8_t *o[R];
    // Lane 0: the block scale d; lane 1 (Q4_K / Q5_K): dmin. The bias term is
    // fmaf(t, -(dmin * dx), bias) (Q6_K: -(d * dx)), which vfnmadd computes
    // with the same single rounding, the negation being exact.
    __m128 dd[R];
    __m256i sc16[R];  // Q4_K / Q5_K: the 8 sub-block scales as int16, in both halves; Q6_K: the 16 group scales
    __m128i bm[R];    // Q4_K / Q5_K: the 8 mins as int16; Q6_K: unused
    __m256i sc_eo[R];  // Q6_K, Q2_K, Q3_K: the even groups' scales (int16) in the low half, the odd ones' in the high
    // Q2_K / Q3_K: sc16 holds the offset multipliers per group (Q2_K the mins,
    // Q3_K the scales); IQ4_XS: the 8 sub-block scales in both halves.
    for (int r = 0; r < R; ++r) {
        o[r] = w[r] + b * int64_t(block_bytes(Kind));
        if (Kind == k_q2_k || Kind == k_q3_k) {
            const q23_scales qs = q23_block_scales<Kind>(o[r]);
            dd[r] = qs.dd;
            sc16[r] = qs.bias16;
            sc_eo[r] = qs.scales;
        } else if (Kind == k_iq4_xs) {
            dd[r] = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(u16_at(o[r]))));
            sc16[r] = iq4xs_scales(o[r]);
        } else if (Kind == k_q6_k) {
            dd[r] = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(u16_at(o[r] + 208))));
            const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(o[r] + 192));
            sc16[r] = _mm256_cvtepi8_epi16(raw);
            // The even groups' scales in the low half, the odd ones' in the high
            // half: one vpshufb then gives sub-block j's [sc[2j] x 8 | sc[2j+1] x 8].
            sc_eo[r] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(raw, k_even_odd));
        } else {
            uint32_t d_dmin;
            __builtin_memcpy(&d_dmin, o[r], 4);
            dd[r] = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(d_dmin)));
            const __m128i sm = scales_mins_k4(o[r] + 4);
            sc16[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
            bm[r] = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
        }
    }
    __m256i isum[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) isum[r][c] = _mm256_setzero_si256();

    if (Kind == k_q2_k || Kind == k_q3_k) {
        // Sub-block j = 4 * half + s: bits 2s..2s+1 of the half's 32 bytes of
        // qs (Q3_K: bit j of hmask as bit 2).
        constexpr bool three = Kind == k_q3_k;
        __m256i hm[R];
        for (int r = 0; r < R; ++r) hm[r] = three ? load32(o[r]) : _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            __m256i qs[R];
            for (int r = 0; r < R; ++r) qs[r] = load32(o[r] + (three ? 32 : 16) + 32 * half);
            for (int s = 0; s < 4; ++s) {
                const int j = 4 * half + s;
                __m256i q[R], scale[R];
                for (int r = 0; r < R; ++r) {
                    q[r] = q23_levels<Kind>(qs[r], hm[r]);
                    scale[r] = broadcast_i16(sc_eo[r], j);
                }
                for (int c = 0; c < C; ++c) {
                    const __m256i xv = load32(x.q[c] + 256 * b + 32 * j);
                    for (int r = 0; r < R; ++r)
                        isum[r][c] = _mm256_add_epi32(isum[r][c], dot_u8_scaled(q[r], xv, scale[r]));
                }
            }
        }
    } else if (Kind == k_iq4_xs) {
        // Sub-block j: 16 bytes of nibbles at 8 + 16j, IQ4_NL's codebook, signed
        // levels (|w| * (x * sign(w)) pairs fit int16: 2 * 127 * 127), times ls - 32.
        const __m256i book = codebook_iq4();
        for (int j = 0; j < 8; ++j) {
            __m256i wv[R], aw[R], scale[R];
            for (int r = 0; r < R; ++r) {
                wv[r] = _mm256_shuffle_epi8(book, nibbles(o[r] + 8 + 16 * j));
                aw[r] = _mm256_abs_epi8(wv[r]);
                scale[r] = broadcast_i16(sc16[r], j);
            }
            for (int c = 0; c < C; ++c) {
                const __m256i xv = load32(x.q[c] + 256 * b + 32 * j);
                for (int r = 0; r < R; ++r) {
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[r], _mm256_sign_epi8(xv, wv[r])), scale[r]);
                    isum[r][c] = _mm256_add_epi32(isum[r][c], p);
                }
            }
        }
    } else if (Kind == k_q6_k) {
        // Sub-block j = 4 * half + t holds elements 32j..32j+31: low or high
        // nibbles of ql (t even / odd: first or second 32 bytes of the half),
        // with two bits of qh at position 2t.
        for (int half = 0; half < 2; ++half) {
            __m256i qh[R], ql0[R], ql1[R];
            for (int r = 0; r < R; ++r) {
                qh[r] = load32(o[r] + 128 + 32 * half);
                ql0[r] = load32(o[r] + 64 * half);
                ql1[r] = load32(o[r] + 64 * half + 32);
            }
            for (int s = 0; s < 4; ++s) {
                const int j = 4 * half + s;
                __m256i q[R], scale[R];
                for (int r = 0; r < R; ++r) {
                    const __m256i ql = (s & 1) ? ql1[r] : ql0[r];
                    const __m256i lo = s < 2 ? _mm256_and_si256(ql, _mm256_set1_epi8(15))
                                             : _mm256_and_si256(_mm256_srli_epi16(ql, 4), _mm256_set1_epi8(15));
                    const __m256i hi = _mm256_and_si256(_mm256_slli_epi16(qh[r], 4), _mm256_set1_epi8(0x30));
                    qh[r] = _mm256_srli_epi16(qh[r], 2);
                    q[r] = _mm256_or_si256(lo, hi);
                    scale[r] = broadcast_i16(sc_eo[r], j);  // [sc[2j] x 8 | sc[2j+1] x 8]
                }
                for (int c = 0; c < C; ++c) {
                    const __m256i xv = load32(x.q[c] + 256 * b + 32 * j);
                    for (int r = 0; r < R; ++r)
                        isum[r][c] = _mm256_add_epi32(isum[r][c], dot_u8_scaled(q[r], xv, scale[r]));
                }
            }
        }
    } else {
        constexpr bool five = Kind == k_q5_k;
        // Chunk j of 64 elements: low nibbles are sub-block 2j, high nibbles
        // 2j + 1; Q5_K adds bit 2j (2j + 1) of qh[l] as the fifth bit.
        __m256i qh[R];
        if (five)
            for (int r = 0; r < R; ++r) qh[r] = load32(o[r] + 16);
        for (int j = 0; j < 4; ++j) {
            __m256i lo[R], hi[R], sl[R], sh[R];
            for (int r = 0; r < R; ++r) {
                const __m256i q = load32(o[r] + (five ? 48 : 16) + 32 * j);
                lo[r] = _mm256_and_si256(q, _mm256_set1_epi8(15));
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(15));
                if (five) {
                    // Bit 0 (1) of qh, shifted right 2j times, to bit 4.
                    const __m256i sixteen = _mm256_set1_epi8(16);
                    lo[r] = _mm256_or_si256(lo[r], _mm256_and_si256(_mm256_slli_epi16(qh[r], 4), sixteen));
                    hi[r] = _mm256_or_si256(hi[r], _mm256_and_si256(_mm256_slli_epi16(qh[r], 3), sixteen));
                    qh[r] = _mm256_srli_epi16(qh[r], 2);
                }
                sl[r] = broadcast_i16(sc16[r], 2 * j);
                sh[r] = broadcast_i16(sc16[r], 2 * j + 1);
            }
            for (int c = 0; c < C; ++c) {
                const __m256i x0 = load32(x.q[c] + 256 * b + 64 * j);
                const __m256i x1 = load32(x.q[c] + 256 * b + 64 * j + 32);
                for (int r = 0; r < R; ++r) {
                    const __m256i p0 = dot_u8_scaled(lo[r], x0, sl[r]);
                    const __m256i p1 = dot_u8_scaled(hi[r], x1, sh[r]);
                    isum[r][c] = _mm256_add_epi32(isum[r][c], _mm256_add_epi32(p0, p1));
                }
            }
        }
    }
    for (int c = 0; c < C; ++c) {
        const float dx = x.d[c][b];
        // The bias integers: sum over groups of multiplier * sum16 (|.| < 2^27, exact).
        __m128i part[R];
        if (Kind == k_iq4_xs) {  // no offset term
            for (int r = 0; r < R; ++r) {
                const float sr = _mm_cvtss_f32(dd[r]) * dx;
                t.acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][c]), _mm256_set1_ps(sr), t.acc[r][c]);
            }
            continue;
        }
        if (per16(Kind)) {  // Q6_K: 32 * the scales, Q3_K: 4 * the scales, Q2_K: the mins, against sum16
            constexpr int shift = Kind == k_q6_k ? 5 : Kind == k_q3_k ? 2 : 0;
            const __m256i xs = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.s[c] + 16 * b));
            for (int r = 0; r < R; ++r) {
                const __m256i p = _mm256_madd_epi16(sc16[r], xs);
                part[r] = _mm_slli_epi32(_mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)), shift);
            }
        } else {  // the mins are per 32 elements
            const __m128i xs32 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x.s32[c] + 8 * b));
            for (int r = 0; r < R; ++r) part[r] = _mm_madd_epi16(bm[r], xs32);
        }
        __m128 tf[R];  // lane 0: float(t) of row r (Q6_K: 32 t)
        if (R == 1) {
            tf[0] = hsum_to_float(part[0]);
        } else {
            int32_t ts[R];
            hsum_rows<R>(part, ts);
            for (int r = 0; r < R; ++r) tf[r] = _mm_set_ss(float(ts[r]));
        }
        const __m128 dxv = _mm_set1_ps(dx);
        for (int r = 0; r < R; ++r) {
            const __m128 s = _mm_mul_ps(dd[r], dxv);  // d * dx, dmin * dx
            t.acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][c]), _mm256_broadcastss_ps(s), t.acc[r][c]);
            const __m128 sb = Kind == k_q6_k || Kind == k_q3_k ? s : _mm_movehdup_ps(s);
            t.bias[r][c] = _mm_cvtss_f32(_mm_fnmadd_ss(tf[r], sb, _mm_set_ss(t.bias[r][c])));
        }
    }
}

// R weight rows from `r0` times C activation rows from `c0`.
template <kernel_kind Kind, int R, int C>
void tile(const kernel_args &a, int64_t r0, int64_t c0) {
    constexpr int64_t block = is_k(Kind) ? 256 : 32;
    const int64_t nb = a.act.k / block;
    const uint8_t *w[R];
    for (int r = 0; r < R; ++r) w[r] = a.w + size_t(r0 + r) * a.w_row_bytes;
    act_tile<C> x;
    for (int c = 0; c < C; ++c) {
        x.q[c] = a.act.q + (c0 + c) * a.act.k;
        x.d[c] = a.act.d + (c0 + c) * nb;
        x.s[c] = a.act.sum16 + (c0 + c) * (a.act.k / 16);
        x.s32[c] = a.act.sum32 + (c0 + c) * (a.act.k / 32);
    }
    accumulators<R, C> t;
    // Rows are short (a 4096-element Q4_0 row is 2.3 KB), too short for the
    // hardware prefetcher to ramp up on each; so fetch the next R rows' block
    // b while working on block b here (a prefetch never faults, so running
    // past the last row is harmless). Measured on the 14336 x 4096 GEMV
    // (2-core EPYC VM, shared): Q4_0 from DRAM went from 1.5 to 2.4 GB/s.
    const size_t bb = block_bytes(Kind);
    const uintptr_t ahead = uintptr_t(R) * a.w_row_bytes;
    auto prefetch = [&](int64_t b, size_t bytes) {
        for (int r = 0; r < R; ++r) {
            const uintptr_t p = reinterpret_cast<uintptr_t>(w[r]) + ahead + size_t(b) * bb;
            for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char *>(p + o), _MM_HINT_T0);
        }
    };
    int64_t b = 0;
    // (Not Q8_0, nor Q4_1 in GEMM tiles: their pairs measured slower than
    // single blocks.)
    if constexpr ((Kind == k_q4_0 || Kind == k_q5_0 || ((Kind == k_q4_1 || Kind == k_q5_1) && C == 1)) && R <= 4) {
        // Two blocks a step, one prefetch per row and 64 bytes of the pair
        // (every cache line of the row then gets one).
        for (; b + 2 <= nb; b += 2) {
            prefetch(b, 2 * bb);
            block32_pair<Kind, R, C>(w, b, x, t);
        }
    }
    for (; b < nb; ++b) {
        prefetch(b, bb);
        if (is_k(Kind))
            block256<Kind, R, C>(w, b, x, t);
        else
            block32<Kind, R, C>(w, b, x, t);
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            float y = reduce8(t.acc[r][c]) + t.bias[r][c];
            if (Kind == k_i8_rows) y *= a.row_scale[(r0 + r) * a.row_scale_stride];
            a.y[(c0 + c) * a.y_row_stride + (r0 + r) * a.y_col_stride] = y;
        }
}

// ---------------------------------------------------------------- Q8_0 GEMM
// As tile<k_q8_0, R, C>, with the float scales made ahead: per chunk of 64
// blocks, the R rows' f16 scales are gathered and converted 8 at a time, and
// the R x C products dw * dx (vmulps rounds as the scalar product does) stored
// for the main loop to broadcast from memory. In tile() each block paid R
// scalar conversions and R x C scalar multiplies and register broadcasts, a
// quarter of the vector operations of a 2 x 4 tile. Same lanes, same fmadds in
// the same order, so the same bits.
template <int R, int C>
void q8_tile(const kernel_args &a, int64_t r0, int64_t c0) {
    constexpr int64_t chunk = 64, bb = 34;
    const int64_t nb = a.act.k / 32;
    const uint8_t *w[R];
    for (int r = 0; r < R; ++r) w[r] = a.w + size_t(r0 + r) * a.w_row_bytes;
    const int8_t *xq[C];
    const float *xd[C];
    for (int c = 0; c < C; ++c) {
        xq[c] = a.act.q + (c0 + c) * a.act.k;
        xd[c] = a.act.d + (c0 + c) * nb;
    }
    __m256 acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    alignas(32) uint16_t h[R][chunk];
    alignas(32) float sp[R][C][chunk];
    const uintptr_t ahead = uintptr_t(R) * a.w_row_bytes;  // the next R rows (see tile())
    for (int64_t b0 = 0; b0 < nb; b0 += chunk) {
        const int64_t cn = nb - b0 < chunk ? nb - b0 : chunk;
        for (int r = 0; r < R; ++r)
            for (int64_t j = 0; j < cn; ++j) h[r][j] = uint16_t(u16_at(w[r] + (b0 + j) * bb));
        int64_t j = 0;
        for (; j + 8 <= cn; j += 8)
            for (int r = 0; r < R; ++r) {
                const __m256 dw = _mm256_cvtph_ps(load16(h[r] + j));
                for (int c = 0; c < C; ++c)
                    _mm256_store_ps(sp[r][c] + j, _mm256_mul_ps(dw, _mm256_loadu_ps(xd[c] + b0 + j)));
            }
        for (; j < cn; ++j)
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c) sp[r][c][j] = _cvtsh_ss(h[r][j]) * xd[c][b0 + j];
        for (j = 0; j < cn; ++j) {
            const int64_t b = b0 + j;
            __m256i wv[R], aw[R];
            for (int r = 0; r < R; ++r) {
                const uint8_t *o = w[r] + b * bb;
                _mm_prefetch(reinterpret_cast<const char *>(o + ahead), _MM_HINT_T0);
                wv[r] = load32(o + 2);
                aw[r] = _mm256_abs_epi8(wv[r]);
            }
            for (int c = 0; c < C; ++c) {
                const __m256i xv = load32(xq[c] + 32 * b);
                for (int r = 0; r < R; ++r)
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_s8(aw[r], wv[r], xv)),
                                                _mm256_broadcast_ss(sp[r][c] + j), acc[r][c]);
            }
        }
    }
    // + 0.0f: the other kernels add the (zero) offset term, which turns -0 into +0.
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) a.y[(c0 + c) * a.y_row_stride + (r0 + r) * a.y_col_stride] = reduce8(acc[r][c]) + 0.0f;
}

// Every activation row against R Q8_0 weight rows: q8_tile of up to 4 activation rows.
template <int R>
void q8_rows(const kernel_args &a, int64_t r0) {
    int64_t c = 0;
    for (; c + 4 <= a.act.m; c += 4) q8_tile<R, 4>(a, r0, c);
    switch (a.act.m - c) {
    case 3: q8_tile<R, 3>(a, r0, c); break;
    case 2: q8_tile<R, 2>(a, r0, c); break;
    case 1: q8_tile<R, 1>(a, r0, c); break;
    default: break;
    }
}

// Every activation row against R weight rows: tiles of up to 4 activation rows.
template <kernel_kind Kind, int R>
void rows_tile(const kernel_args &a, int64_t r0) {
    int64_t c = 0;
    for (; c + 4 <= a.act.m; c += 4) tile<Kind, R, 4>(a, r0, c);
    switch (a.act.m - c) {
    case 3: tile<Kind, R, 3>(a, r0, c); break;
    case 2: tile<Kind, R, 2>(a, r0, c); break;
    case 1: tile<Kind, R, 1>(a, r0, c); break;
    default: break;
    }
}

// ---------------------------------------------------------------- K-quant GEMM: weight rows decoded once
// For M >= 4 activation rows, each weight row is unpacked once (6-bit scales
// and mins, Q5_K's and Q6_K's high bits, the nibble split) into a small buffer
// of bytes and int16 scale vectors, and every activation row then runs against
// that buffer: the inner loop is a load, vpmaddubsw, vpmaddwd (the sub-block
// scale) and vpaddd per 32 elements and activation row, with nothing left to
// unpack. The tiles above unpacked each block again for every 4 activation rows,
// and their 2 x 4 tiles spilled registers. The arithmetic is unchanged (same
// integer lanes, same float operations in the same order), so the bits are too.
//
// One decoded 256-element block: the levels (0..63, unsigned as vpmaddubsw takes
// them; IQ4_XS: its signed codebook entries) of sub-block j = elements
// 32j..32j+31 in order, and the multiplier of each int16 pair lane of sub-block
// j (Q4_K / Q5_K / IQ4_XS: its 6-bit scale in all 16; Q6_K / Q2_K / Q3_K: the
// scale of elements 32j..32j+15 in the low 8, of 32j+16.. in the high 8).
struct kdecoded_block {
    uint8_t q[8][32];
    int16_t scale[8][16];
};

// 256-bit vectors of offset multipliers (and of activation sums) per block:
// Q4_K / Q5_K 4 int16 pairs x 4 rows, Q6_K / Q2_K / Q3_K 8 pairs x 4 rows,
// IQ4_XS none (no offset term).
constexpr int kbm_vectors(kernel_kind k) { return per16(k) ? 4 : k == k_iq4_xs ? 0 : 2; }

// Weight rows decoded together: the activation tile then stays in L1 while
// it meets each of them (a decoded row is 512 bytes per block, 8 KB at k = 4096).
constexpr int k_panel_rows = 4;

// A panel's buffer, one array after the other (all 32-byte aligned sizes):
// blocks [P][nb], d [P][nb][4] (the block scale, 4 copies: one per activation
// row of a tile), nd [P][nb][4] (the offset term's float factor: -dmin, Q6_K
// -d), bm (the offset term's int16 multipliers: Q4_K / Q5_K the 8 mins of the
// sub-blocks, against the activations' sums over 32; Q6_K 32 * the 16 group
// scales, against the sums over 16), as pairs of int16 each repeated 4 times
// for vpmaddwd against xst: [P][nb][kbm_vectors][8] int32.
//
// Per tile of (up to) 4 activation rows, [nb][4] floats with the rows side by
// side: xdt their block scales dx; st = d * dx and ft = nd * dx of the weight
// row at hand (the float factors of the lanes and of the offset term). And xst,
// their sums over 32 (Q6_K: 16) as int16 pairs, pair by pair with the 4 rows
// side by side: [nb][kbm_vectors][8] int32 (see ktile_scales).
struct kpanel {
    kdecoded_block *blocks;
    float *d, *nd;
    int32_t *bm;
    float *xdt, *st, *ft;
    int32_t *xst;
    int64_t nb;

    static size_t bytes(int64_t nb) {
        const size_t n = size_t(k_panel_rows) * size_t(nb);
        return n * sizeof(kdecoded_block) + 2 * n * 16 + n * 128 + 3 * size_t(nb) * 16 + size_t(nb) * 128 + 64;
    }
    void carve(void *raw, int64_t n_blocks) {
        nb = n_blocks;
        const size_t n = size_t(k_panel_rows) * size_t(nb);
        uint8_t *p = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(raw) + 63) & ~uintptr_t(63));
        blocks = reinterpret_cast<kdecoded_block *>(p);
        p += n * sizeof(kdecoded_block);
        d = reinterpret_cast<float *>(p);
        p += n * 16;
        nd = reinterpret_cast<float *>(p);
        p += n * 16;
        bm = reinterpret_cast<int32_t *>(p);
        p += n * 128;
        xdt = reinterpret_cast<float *>(p);
        st = xdt + 4 * nb;
        ft = st + 4 * nb;
        xst = reinterpret_cast<int32_t *>(ft + 4 * nb);
    }
};

// Decodes the weight row at w (k = 256 * nb elements) into slot `slot` of the panel.
template <kernel_kind Kind>
void kdecode_row(const uint8_t *w, kpanel &pn, int slot) {
    const int64_t nb = pn.nb;
    for (int64_t b = 0; b < nb; ++b) {
        const size_t i = size_t(slot) * size_t(nb) + size_t(b);
        const uint8_t *o = w + b * int64_t(block_bytes(Kind));
        kdecoded_block &out = pn.blocks[i];
        __m256i *q = reinterpret_cast<__m256i *>(out.q);
        __m256i *scale = reinterpret_cast<__m256i *>(out.scale);
        // The offset multipliers of the 16 groups (int16, in order), pairs (2g,
        // 2g + 1): vector v holds pair v in its low half and pair v + 4 in its
        // high half, 4 times each.
        auto store_bm16 = [&](__m256i bm) {
            for (int v = 0; v < 4; ++v)
                _mm256_storeu_si256(reinterpret_cast<__m256i *>(pn.bm + 32 * i + 8 * v),
                                    _mm256_permutevar8x32_epi32(bm, _mm256_setr_epi32(v, v, v, v, v + 4, v + 4, v + 4, v + 4)));
        };
        if (Kind == k_q2_k || Kind == k_q3_k) {
            const q23_scales sc = q23_block_scales<Kind>(o);
            _mm_storeu_ps(pn.d + 4 * i, _mm_broadcastss_ps(sc.dd));
            // -dmin (Q3_K: -d) by flipping the sign bit, as the scalar negation does.
            const __m128 f = Kind == k_q2_k ? _mm_movehdup_ps(sc.dd) : sc.dd;
            _mm_storeu_ps(pn.nd + 4 * i, _mm_broadcastss_ps(_mm_xor_ps(f, _mm_set1_ps(-0.0f))));
            store_bm16(Kind == k_q3_k ? _mm256_slli_epi16(sc.bias16, 2) : sc.bias16);  // Q3_K: 4 * sc (|.| <= 128)
            constexpr bool three = Kind == k_q3_k;
            __m256i hm = three ? load32(o) : _mm256_setzero_si256();
            for (int half = 0; half < 2; ++half) {
                __m256i qs = load32(o + (three ? 32 : 16) + 32 * half);
                for (int t = 0; t < 4; ++t) {
                    const int j = 4 * half + t;
                    _mm256_store_si256(q + j, q23_levels<Kind>(qs, hm));
                    _mm256_store_si256(scale + j, broadcast_i16(sc.scales, j));
                }
            }
        } else if (Kind == k_iq4_xs) {
            _mm_storeu_ps(pn.d + 4 * i, _mm_set1_ps(f16_at(o)));
            _mm_storeu_ps(pn.nd + 4 * i, _mm_setzero_ps());  // unused: no offset term
            const __m256i sc = iq4xs_scales(o), book = codebook_iq4();
            for (int j = 0; j < 8; ++j) {
                _mm256_store_si256(q + j, _mm256_shuffle_epi8(book, nibbles(o + 8 + 16 * j)));
                _mm256_store_si256(scale + j, broadcast_i16(sc, j));
            }
        } else if (Kind == k_q6_k) {
            const float d = f16_at(o + 208);
            _mm_storeu_ps(pn.d + 4 * i, _mm_set1_ps(d));
            _mm_storeu_ps(pn.nd + 4 * i, _mm_set1_ps(-d));
            const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(o + 192));
            store_bm16(_mm256_slli_epi16(_mm256_cvtepi8_epi16(raw), 5));  // 32 * the group scales (|.| <= 4096)
            const __m256i sc_eo = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(raw, k_even_odd));
            // As in block256: sub-block 4 * half + s from the low (s < 2) or high
            // nibbles of ql's first (s even) or second 32 bytes, qh bits 2s..2s+1.
            for (int half = 0; half < 2; ++half) {
                __m256i qh = load32(o + 128 + 32 * half);
                const __m256i ql0 = load32(o + 64 * half), ql1 = load32(o + 64 * half + 32);
                for (int s = 0; s < 4; ++s) {
                    const int j = 4 * half + s;
                    const __m256i ql = (s & 1) ? ql1 : ql0;
                    const __m256i lo = s < 2 ? _mm256_and_si256(ql, _mm256_set1_epi8(15))
                                             : _mm256_and_si256(_mm256_srli_epi16(ql, 4), _mm256_set1_epi8(15));
                    const __m256i hi = _mm256_and_si256(_mm256_slli_epi16(qh, 4), _mm256_set1_epi8(0x30));
                    qh = _mm256_srli_epi16(qh, 2);
                    _mm256_store_si256(q + j, _mm256_or_si256(lo, hi));
                    _mm256_store_si256(scale + j, broadcast_i16(sc_eo, j));
                }
            }
        } else {
            constexpr bool five = Kind == k_q5_k;
            uint32_t d_dmin;
            __builtin_memcpy(&d_dmin, o, 4);
            const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(d_dmin)));
            _mm_storeu_ps(pn.d + 4 * i, _mm_broadcastss_ps(dd));
            // -dmin by flipping the sign bit, as the scalar negation does (0 - x would make -0 of +0).
            _mm_storeu_ps(pn.nd + 4 * i, _mm_broadcastss_ps(_mm_xor_ps(_mm_movehdup_ps(dd), _mm_set1_ps(-0.0f))));
            const __m128i sm = scales_mins_k4(o + 4);
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
            // The mins, pairs (2p, 2p + 1): vector 0 holds pairs 0 and 1, vector 1 pairs 2 and 3, 4 times each.
            const __m256i mins = _mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm)));
            for (int v = 0; v < 2; ++v)
                _mm256_storeu_si256(
                    reinterpret_cast<__m256i *>(pn.bm + 16 * i + 8 * v),
                    _mm256_permutevar8x32_epi32(mins, _mm256_setr_epi32(2 * v, 2 * v, 2 * v, 2 * v, 2 * v + 1,
                                                                        2 * v + 1, 2 * v + 1, 2 * v + 1)));
            // Chunk j of 64 elements: low nibbles are sub-block 2j, high nibbles
            // 2j + 1; Q5_K adds bit 2j (2j + 1) of qh[l] as the fifth bit.
            __m256i qh = five ? load32(o + 16) : _mm256_setzero_si256();
            for (int j = 0; j < 4; ++j) {
                const __m256i raw = load32(o + (five ? 48 : 16) + 32 * j);
                __m256i lo = _mm256_and_si256(raw, _mm256_set1_epi8(15));
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(15));
                if (five) {
                    const __m256i sixteen = _mm256_set1_epi8(16);
                    lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), sixteen));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), sixteen));
                    qh = _mm256_srli_epi16(qh, 2);
                }
                _mm256_store_si256(q + 2 * j, lo);
                _mm256_store_si256(q + 2 * j + 1, hi);
                _mm256_store_si256(scale + 2 * j, broadcast_i16(sc16, 2 * j));
                _mm256_store_si256(scale + 2 * j + 1, broadcast_i16(sc16, 2 * j + 1));
            }
        }
    }
}

// Decoded row `slot` of the panel times C <= 4 activation rows from c0 (their
// block scales already in pn.xdt): writes y.
template <kernel_kind Kind, int C>
void kpanel_tile(const kernel_args &a, const kpanel &pn, int slot, int64_t r, int64_t c0) {
    const int64_t nb = pn.nb, k = a.act.k;
    const size_t row0 = size_t(slot) * size_t(nb);
    const kdecoded_block *wb = pn.blocks + row0;
    const int32_t *bm = pn.bm + row0 * 8 * kbm_vectors(Kind);
    // The float factors of this weight row and the C activation rows, 2 blocks
    // a step (vmulps rounds as the scalar products do).
    {
        const float *d4 = pn.d + 4 * row0, *nd4 = pn.nd + 4 * row0;
        int64_t i = 0;
        for (; i + 8 <= 4 * nb; i += 8) {
            const __m256 dx = _mm256_loadu_ps(pn.xdt + i);
            _mm256_storeu_ps(pn.st + i, _mm256_mul_ps(_mm256_loadu_ps(d4 + i), dx));
            _mm256_storeu_ps(pn.ft + i, _mm256_mul_ps(_mm256_loadu_ps(nd4 + i), dx));
        }
        if (i < 4 * nb) {
            const __m128 dx = _mm_loadu_ps(pn.xdt + i);
            _mm_storeu_ps(pn.st + i, _mm_mul_ps(_mm_loadu_ps(d4 + i), dx));
            _mm_storeu_ps(pn.ft + i, _mm_mul_ps(_mm_loadu_ps(nd4 + i), dx));
        }
    }
    const int8_t *xq[C];
    for (int c = 0; c < C; ++c) xq[c] = a.act.q + (c0 + c) * k;
    // The offset terms take the C activation rows as the lanes of one register
    // (bias, lane c): t of each exactly (vpmaddwd of the weight row's int16
    // pairs with the 4 rows' sums, pn.xst), then bias = fmaf(t, nd * dx, bias).
    // That fmadd chain has 4 cycles of latency per block; inside the block loop
    // it hides under the integer work.
    __m128 bias = _mm_setzero_ps();
    __m256 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        constexpr int V = kbm_vectors(Kind);
        if constexpr (V > 0) {
            const int32_t *bmb = bm + 8 * V * b, *xsb = pn.xst + 8 * V * b;
            __m256i tv = _mm256_madd_epi16(load32(bmb), load32(xsb));
            for (int v = 1; v < V; ++v)
                tv = _mm256_add_epi32(tv, _mm256_madd_epi16(load32(bmb + 8 * v), load32(xsb + 8 * v)));
            const __m128i t = _mm_add_epi32(_mm256_castsi256_si128(tv), _mm256_extracti128_si256(tv, 1));
            bias = _mm_fmadd_ps(_mm_cvtepi32_ps(t), _mm_loadu_ps(pn.ft + 4 * b), bias);
        }
        const __m256i *q = reinterpret_cast<const __m256i *>(wb[b].q);
        const __m256i *scale = reinterpret_cast<const __m256i *>(wb[b].scale);
        __m256i isum[C];
        for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
        // Not unrolled: unrolled, GCC 12 reassociates the (exact) integer sums
        // into a tree of all 8 x C products and spills them to the stack.
#pragma GCC unroll 1
        for (int j = 0; j < 8; ++j) {
            const __m256i wq = _mm256_load_si256(q + j), sc = _mm256_load_si256(scale + j);
            if constexpr (Kind == k_iq4_xs) {  // signed levels: |w| * (x * sign(w))
                const __m256i aw = _mm256_abs_epi8(wq);
                for (int c = 0; c < C; ++c)
                    isum[c] = _mm256_add_epi32(isum[c], dot_u8_scaled(aw, _mm256_sign_epi8(load32(xq[c] + 256 * b + 32 * j), wq), sc));
            } else {
                for (int c = 0; c < C; ++c)
                    isum[c] = _mm256_add_epi32(isum[c], dot_u8_scaled(wq, load32(xq[c] + 256 * b + 32 * j), sc));
            }
        }
        for (int c = 0; c < C; ++c)
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_broadcast_ss(pn.st + 4 * b + c), acc[c]);
    }
    alignas(16) float bias_c[4];
    _mm_store_ps(bias_c, bias);
    for (int c = 0; c < C; ++c) a.y[(c0 + c) * a.y_row_stride + r * a.y_col_stride] = reduce8(acc[c]) + bias_c[c];
}

// pn.xdt and pn.xst for activation rows c0..c0 + n - 1 (n <= 4; 0 past n).
// xst: per block, the rows' int16 pairs of sums (as int32 units) transposed
// 4 x 4, so that pair p of the 4 rows lies side by side (Q6_K: pairs v and v + 4
// in the two halves of vector v, Q4_K / Q5_K: pairs 2v and 2v + 1), as kpanel::bm
// holds the weight row's pairs.
template <kernel_kind Kind>
void ktile_scales(const kernel_args &a, kpanel &pn, int64_t c0, int n) {
    const int64_t nb = pn.nb, k = a.act.k;
    for (int64_t b = 0; b < nb; ++b)
        for (int c = 0; c < 4; ++c) pn.xdt[4 * b + c] = c < n ? a.act.d[(c0 + c) * nb + b] : 0.0f;
    constexpr int V = kbm_vectors(Kind);
    if constexpr (V == 0) return;  // IQ4_XS: no offset term
    for (int64_t b = 0; b < nb; ++b) {
        __m256i r[4];  // row c's sums of block b: Q6_K / Q2_K / Q3_K 8 pairs; Q4_K / Q5_K 4 pairs (low half)
        for (int c = 0; c < 4; ++c) {
            if (c >= n)
                r[c] = _mm256_setzero_si256();
            else if (per16(Kind))
                r[c] = load32(a.act.sum16 + (c0 + c) * (k / 16) + 16 * b);
            else
                r[c] = _mm256_castsi128_si256(load16(a.act.sum32 + (c0 + c) * (k / 32) + 8 * b));
        }
        // 4 x 4 transpose of int32 in each 128-bit half: out[p] = pair p (p + 4) of rows 0..3.
        const __m256i t01l = _mm256_unpacklo_epi32(r[0], r[1]), t01h = _mm256_unpackhi_epi32(r[0], r[1]);
        const __m256i t23l = _mm256_unpacklo_epi32(r[2], r[3]), t23h = _mm256_unpackhi_epi32(r[2], r[3]);
        const __m256i out[4] = {_mm256_unpacklo_epi64(t01l, t23l), _mm256_unpackhi_epi64(t01l, t23l),
                                _mm256_unpacklo_epi64(t01h, t23h), _mm256_unpackhi_epi64(t01h, t23h)};
        __m256i *dst = reinterpret_cast<__m256i *>(pn.xst + 8 * V * b);
        if (per16(Kind)) {
            for (int v = 0; v < 4; ++v) _mm256_storeu_si256(dst + v, out[v]);
        } else {  // pairs 0 and 1, then 2 and 3, one vector each
            _mm256_storeu_si256(dst, _mm256_permute2x128_si256(out[0], out[1], 0x20));
            _mm256_storeu_si256(dst + 1, _mm256_permute2x128_si256(out[2], out[3], 0x20));
        }
    }
}

// GEMM for the K-quants: panels of k_panel_rows weight rows, decoded once, each
// against every activation row in tiles of 4. Returns false (nothing written)
// when the buffer cannot be allocated; the caller then uses the tiles above.
template <kernel_kind Kind>
bool kpanel_gemm(const kernel_args &a) {
    const int64_t nb = a.act.k / 256;
    void *raw = __builtin_malloc(kpanel::bytes(nb));
    if (!raw) return false;
    kpanel pn;
    pn.carve(raw, nb);
    for (int64_t r0 = 0; r0 < a.rows; r0 += k_panel_rows) {
        const int pr = a.rows - r0 < k_panel_rows ? int(a.rows - r0) : k_panel_rows;
        for (int s = 0; s < pr; ++s) kdecode_row<Kind>(a.w + size_t(r0 + s) * a.w_row_bytes, pn, s);
        int64_t c = 0;
        for (; c + 4 <= a.act.m; c += 4) {
            ktile_scales<Kind>(a, pn, c, 4);
            for (int s = 0; s < pr; ++s) kpanel_tile<Kind, 4>(a, pn, s, r0 + s, c);
        }
        if (c < a.act.m) ktile_scales<Kind>(a, pn, c, int(a.act.m - c));
        for (int s = 0; s < pr; ++s) switch (a.act.m - c) {
            case 3: kpanel_tile<Kind, 3>(a, pn, s, r0 + s, c); break;
            case 2: kpanel_tile<Kind, 2>(a, pn, s, r0 + s, c); break;
            case 1: kpanel_tile<Kind, 1>(a, pn, s, r0 + s, c); break;
            default: break;
            }
    }
    __builtin_free(raw);
    return true;
}

// GEMM uses the same int8 arithmetic as GEMV, so a row of a prefill gives the
// same bits as that row decoded alone: 2 x 4 tiles, and for the K-quants from
// 4 activation rows on the decoded panels of kpanel_gemm. The alternative,
// decoding the weights to float and running a float GEMM, measured slower in
// most cells (bench/bench_qmatmul.py, 4096 x 4096 weights, 1 / 2 threads,
// GFLOP/s, on a shared 2-core EPYC VM): M = 32: Q4_0 10.8 / 15.2 here against
// 4.5 / 2.6 for llmkit.dequantize + torch fp32 mm, Q8_0 12.5 / 14.2 against
// 4.8 / 2.9, Q4_K 12.4 / 11.7 against 1.6 / 1.6; M = 128: Q4_0 5.6 / 7.1
// against 4.1 / 3.9, Q8_0 6.2 / 7.6 against 4.3 / 4.6, but Q4_K 5.6 / 7.4
// against 6.6 / 5.9. This CPU has no AVX-512 BF16, so no bf16 path was tried.
template <kernel_kind Kind>
void kernel(const kernel_args &a) {
    int64_t r = 0;
    if (a.act.m == 1) {
        // GEMV: 4 weight rows share each activation block, but not for the
        // K-quants: their 4-row tiles need more than the 16 ymm registers and
        // spill. One row at a time measured faster (4096 x 4096, 1 thread, warm,
        // 2-core EPYC VM): Q4_K 11.4 -> 15.2 GB/s, Q5_K 10.4 -> 14.9, Q6_K 13.6 -> 19.8.
        if constexpr (is_k(Kind)) {
            for (; r < a.rows; ++r) tile<Kind, 1, 1>(a, r, 0);
        } else if constexpr (Kind == k_q4_0 || Kind == k_q4_1) {
            for (; r + 4 <= a.rows; r += 4) gemv32_rows4<Kind>(a, r);
            for (; r < a.rows; ++r) fold_tile<Kind, 1, 1>(a, r, 0);
        } else {
            for (; r + 4 <= a.rows; r += 4) tile<Kind, 4, 1>(a, r, 0);
        }
    } else if constexpr (Kind == k_q4_0 || Kind == k_q4_1) {  // GEMM, folded lanes: 2 x 4 tiles too
        for (; r + 2 <= a.rows; r += 2) fold_rows<Kind, 2>(a, r);
        for (; r < a.rows; ++r) fold_rows<Kind, 1>(a, r);
    } else {  // GEMM: 2 x 4 tiles, each weight block unpacked once for 4 activation rows
        if constexpr (is_k(Kind))  // K-quants from 4 activation rows: decoded panels (kpanel_gemm)
            if (a.act.m >= 4 && kpanel_gemm<Kind>(a)) return;
        if constexpr (Kind == k_q8_0) {  // scales made ahead (q8_tile)
            for (; r + 2 <= a.rows; r += 2) q8_rows<2>(a, r);
            if (r < a.rows) q8_rows<1>(a, r);
            return;
        }
        for (; r + 2 <= a.rows; r += 2) rows_tile<Kind, 2>(a, r);
    }
    if constexpr (Kind != k_q4_0 && Kind != k_q4_1)
        for (; r < a.rows; ++r) rows_tile<Kind, 1>(a, r);
}

void quantize_act(const float *x, int64_t k, int64_t block, int8_t *q, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / block; ++b, x += block, q += block) {
        __m256 m = _mm256_setzero_ps();
        for (int64_t j = 0; j < block; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        float db = amax / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        if (!(id <= 3.40282347e+38f)) db = id = 0.0f;  // amax so tiny that 1 / d overflows
        d[b] = db;
        const __m256 idv = _mm256_set1_ps(id);
        for (int64_t j = 0; j < block; j += 32) {
            // Round half to even (the default MXCSR mode), as nearbyint does.
            const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), idv));
            const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), idv));
            const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), idv));
            const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), idv));
            // packs interleaves the 128-bit halves; the permute puts the bytes back in order.
            const __m256i w01 = _mm256_packs_epi32(i0, i1), w23 = _mm256_packs_epi32(i2, i3);
            const __m256i bytes = _mm256_packs_epi16(w01, w23);
            const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(q + j), ordered);
        }
    }
}

const kernel_table k_avx2 = {"avx2",
                             quantize_act,
                             {kernel<k_q4_0>, kernel<k_q4_1>, kernel<k_q5_0>, kernel<k_q5_1>, kernel<k_q8_0>,
                              kernel<k_i8_rows>, kernel<k_iq4_nl>, kernel<k_mxfp4>, kernel<k_q4_k>, kernel<k_q5_k>,
                              kernel<k_q6_k>, kernel<k_q2_k>, kernel<k_q3_k>, kernel<k_iq4_xs>}};

}  // namespace

// A variable, not a function: reading it runs no code compiled for AVX2.
extern const kernel_table *const avx2_table = &k_avx2;

#else

extern const kernel_table *const avx2_table = nullptr;

#endif

}  // namespace llmkit::quant::mm
