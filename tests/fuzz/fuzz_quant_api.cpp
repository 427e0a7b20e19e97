// libFuzzer harness: the quantization block's C API (llmkit.h) on arbitrary
// descriptors and buffers. Where fuzz_quant_blocks feeds the block decoders
// well-formed lengths, this one feeds the entry points everything around the
// blocks: any type id, float rows of any strides (NaNs and infinities
// included), importance weights, destination capacities that are exact,
// short or absent, source byte counts that match or not, conversions between
// any two types, and matmuls over blocks that llmkit wrote or that the input
// made up, with y of any strides; int8 matmuls over int8 tensors with row
// strides. Every tensor lies in a heap buffer of exactly the bytes it
// reaches, every byte buffer is exactly its stated size (fuzz_tensors.hpp).
// What must hold:
//   - no crash and no sanitizer report;
//   - a failed call returns a documented status with a message;
//   - quantize reports the bytes it needs whenever it knows them, and
//     succeeds only when they fit;
//   - a successful quantize of finite rows dequantizes to finite values and
//     multiplies finite x into finite y (GGUF types).
#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz_tensors.hpp"
#include "llmkit/llmkit.h"

namespace {

using namespace llmkit_fuzz;

int32_t pick_type(script &s) {
    // Mostly real types (llmkit_quant_type_name knows them), sometimes wild ids.
    if (s.pick(16) == 15) return int32_t(s.u16()) - 1000;
    for (int tries = 0; tries < 4; ++tries) {
        const int32_t t = s.pick(64);
        if (llmkit_quant_type_name(t)) return t;
    }
    return 0;
}

// A heap buffer of exactly n bytes from the input's seed (n may be 0).
std::vector<uint8_t> bytes_of(script &s, size_t n) {
    std::vector<uint8_t> b(n);
    uint32_t seed = s.u16() * 2654435761u + 7;
    for (auto &x : b) {
        seed = seed * 1664525u + 1013904223u;
        x = uint8_t(seed >> 24);
    }
    return b;
}

size_t capacity_for(script &s, size_t needed) {
    switch (s.pick(8)) {
    case 7: return needed > 0 ? needed - 1 : 0;
    case 6: return needed / 2;
    default: return needed;
    }
}

void quantize_and_use(script &s) {
    const int32_t type = pick_type(s);
    int64_t block = 0, block_bytes = 0;
    const llmkit_status bs = llmkit_quant_block_size(&block, &block_bytes, type);
    check_status(bs);
    if (bs != LLMKIT_OK) block = 32;
    const int64_t rows = 1 + s.pick(4), n = block * (1 + s.pick(3)) + (s.pick(16) == 15 ? 1 : 0);
    fuzz_tensor src;
    if (!make_tensor(s, src, {dim(s, rows), n}, s.pick(16) == 15 ? kind::bf16 : kind::f32, s.pick(16) == 15)) return;
    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.n_threads = s.pick(3);
    o.zero_point = s.pick(8) == 7 ? int32_t(s.pick(5)) - 1 : 0;
    std::vector<float> imatrix(size_t(n > 0 ? n : 1));
    for (auto &x : imatrix) x = s.pick(32) == 31 ? -1.0f : float(s.pick(16));
    if (s.pick(4) == 3) o.imatrix = imatrix.data();
    if (s.pick(32) == 31) o.struct_size = s.pick(40);
    size_t needed = 0;
    const llmkit_status probe = llmkit_quantize(&needed, type, &src.t, nullptr, 0, &o);
    check_status(probe);
    if (probe != LLMKIT_ERROR_BUFFER_TOO_SMALL) return;  // refused before the size (type, shape, options)
    const size_t cap = capacity_for(s, needed);
    std::vector<uint8_t> dst(cap);
    size_t written = 0;
    const llmkit_status st = llmkit_quantize(&written, type, &src.t, cap ? dst.data() : nullptr, cap, &o);
    check_status(st);
    if (written != needed) fail("quantize reported two sizes");
    if (st != LLMKIT_OK) return;
    if (cap < needed) fail("quantize succeeded into too small a buffer");
    if (src.poisoned || src.hostile) fail("bad rows were quantized");
    if (bs != LLMKIT_OK) return;  // an int4 packing: no GGUF decode or matmul below

    // Decode into a float32 tensor of any strides.
    fuzz_tensor back;
    if (!make_tensor(s, back, {rows, n}, kind::f32, false)) return;
    clear(back);
    const llmkit_status ds = llmkit_dequantize(type, dst.data(), dst.size(), &back.t, nullptr);
    check_status(ds);
    if (ds == LLMKIT_OK && !self_overlapping(back)) check_finite(back);

    // y = x W^T over these blocks.
    if (!llmkit_quant_matmul_supported(type)) return;
    const int64_t m = 1 + s.pick(5);
    fuzz_tensor x, y;
    if (!make_tensor(s, x, {dim(s, m), dim(s, n)}, kind::f32, s.pick(16) == 15)) return;
    if (!make_tensor(s, y, {dim(s, m), dim(s, rows)}, kind::f32, false)) return;
    clear(y);
    llmkit_quant_matmul_options mo = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    mo.n_threads = s.pick(3);
    mo.x_rounding = s.pick(8) == 7 ? 1 : 0;
    const size_t w_bytes = s.pick(16) == 15 ? dst.size() - 1 : dst.size();
    const llmkit_status ms = llmkit_quant_matmul(&x.t, type, dst.data(), w_bytes, rows, n, &y.t, &mo);
    check_status(ms);
    if (ms != LLMKIT_OK) return;
    if (x.poisoned || x.hostile || y.hostile) fail("bad x was accepted");
    if (!self_overlapping(y)) check_finite(y);
}

void dequantize_bytes(script &s) {
    const int32_t type = pick_type(s);
    const int64_t rows = 1 + s.pick(3), n = 32 * (1 + s.pick(16));
    size_t row = 0;
    const llmkit_status rb = llmkit_quant_row_bytes(&row, type, n);
    check_status(rb);
    const size_t exact = rb == LLMKIT_OK ? row * size_t(rows) : 64;
    const size_t len = s.pick(8) == 7 ? exact + 1 - size_t(s.pick(3)) : exact;
    std::vector<uint8_t> src = bytes_of(s, len);
    fuzz_tensor dst;
    if (!make_tensor(s, dst, {dim(s, rows), dim(s, n)}, s.pick(16) == 15 ? kind::f64 : kind::f32, false)) return;
    check_status(llmkit_dequantize(type, len ? src.data() : nullptr, len, &dst.t, nullptr));
}

void convert_bytes(script &s) {
    const int32_t from = pick_type(s), to = pick_type(s);
    const int64_t rows = 1 + s.pick(3), n = 32 * (1 + s.pick(8)) + (s.pick(16) == 15 ? 16 : 0);
    size_t src_bytes = 0;
    const llmkit_status tb = llmkit_quant_tensor_bytes(&src_bytes, from, rows, n);
    check_status(tb);
    if (tb != LLMKIT_OK) src_bytes = 128;
    if (s.pick(16) == 15) src_bytes += 1;
    std::vector<uint8_t> src = bytes_of(s, src_bytes);
    size_t needed = 0;
    const llmkit_status probe =
        llmkit_quant_convert(&needed, to, nullptr, 0, from, src.data(), src.size(), rows, n, nullptr, nullptr);
    check_status(probe);
    if (probe != LLMKIT_ERROR_BUFFER_TOO_SMALL) return;
    const size_t cap = capacity_for(s, needed);
    std::vector<uint8_t> dst(cap);
    llmkit_quant_convert_stats stats{};
    stats.struct_size = s.pick(8) == 7 ? s.pick(32) : sizeof stats;
    size_t written = 0;
    const llmkit_status st = llmkit_quant_convert(&written, to, cap ? dst.data() : nullptr, cap, from, src.data(),
                                                  src.size(), rows, n, nullptr, s.bit() ? &stats : nullptr);
    check_status(st);
    if (st == LLMKIT_OK && cap < needed) fail("convert succeeded into too small a buffer");
}

void matmul_int8(script &s) {
    const int64_t m = 1 + s.pick(4), n = 1 + s.pick(6), k = 32 * (1 + s.pick(4)) + (s.pick(16) == 15 ? 8 : 0);
    fuzz_tensor x, w, scales, y;
    if (!make_tensor(s, x, {dim(s, m), dim(s, k)}, kind::f32, s.pick(16) == 15)) return;
    if (!make_tensor(s, w, {dim(s, n), dim(s, k)}, kind::i8, false)) return;
    if (!make_tensor(s, scales, {dim(s, n)}, kind::f32, false)) return;
    if (!make_tensor(s, y, {dim(s, m), dim(s, n)}, kind::f32, false)) return;
    clear(y);
    llmkit_quant_matmul_options mo = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    mo.n_threads = s.pick(3);
    mo.x_rounding = s.pick(4) == 3 ? int32_t(s.pick(3)) : 0;
    const llmkit_status st = llmkit_quant_matmul_int8(&x.t, &w.t, &scales.t, &y.t, &mo);
    check_status(st);
    if (st != LLMKIT_OK) return;
    for (const fuzz_tensor *t : {&x, &w, &scales, &y})
        if (t->poisoned || t->hostile) fail("bad int8 matmul inputs were accepted");
    if (!self_overlapping(y)) check_finite(y);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    script s{data, size};
    for (int op = 0; op < 4 && (op == 0 || s.i < s.n); ++op) {
        switch (s.pick(4)) {
        case 0: quantize_and_use(s); break;
        case 1: dequantize_bytes(s); break;
        case 2: convert_bytes(s); break;
        default: matmul_int8(s); break;
        }
    }
    return 0;
}
