// libFuzzer harness: arbitrary bytes as quantized weights. Every byte string
// of the right length is a valid run of blocks of every GGUF type (a file's
// tensor data is whatever the file holds, f16 scales of inf and NaN
// included), so:
//   - dequantizing it must stay inside the blocks and clear of undefined
//     behaviour (ASan, UBSan);
//   - the quantized matmul must too, and its SIMD and scalar kernels must give
//     the same bits (NaN for NaN), as they do on quantizer output.
// Input: byte 0 picks the type, bytes 1..3 the shape (m x rows, blocks per
// row), the rest are the weights (repeated as needed); x is pseudo-random,
// finite, from a seed the input also sets.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "quant/gguf_blocks.hpp"
#include "quant/matmul.hpp"

using namespace llmkit;

namespace {

bool same_bits(float a, float b) {
    if (std::isnan(a) && std::isnan(b)) return true;  // NaN payloads may come from either operand
    return std::memcmp(&a, &b, 4) == 0;
}

// y from the kernels of `isa`; false when this CPU cannot run them.
bool run(const quant::matmul_problem &base, quant::matmul_isa isa, std::vector<float> &y) {
    quant::matmul_problem p = base;
    p.y = y.data();
    if (!quant::matmul_force_isa(isa)) return false;
    quant::matmul(p, 1);
    quant::matmul_force_isa(quant::matmul_isa::automatic);
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    size_t count = 0;
    const quant::type_traits *types = quant::all_types(&count);
    const quant::type_traits &t = types[data[0] % count];
    // m up to 20: the K-quant GEMM of the VNNI set takes 8 rows on, 16 per group.
    const int64_t m = 1 + data[1] % 20, n = 1 + data[2] % 9, blocks = 1 + data[3] % 3;
    const int64_t k = blocks * t.block_elems;
    const size_t row_bytes = size_t(blocks * t.block_bytes);
    const uint8_t *body = data + 4;
    const size_t body_size = size - 4;
    std::vector<uint8_t> w(row_bytes * size_t(n));
    for (size_t i = 0; i < w.size(); ++i) w[i] = body[i % body_size];

    // Exactly the blocks' bytes on the heap, so ASan sees any read past them.
    for (int64_t r = 0; r < n; ++r) {
        std::vector<uint8_t> row(w.begin() + std::ptrdiff_t(size_t(r) * row_bytes),
                                 w.begin() + std::ptrdiff_t(size_t(r + 1) * row_bytes));
        std::vector<float> out(static_cast<size_t>(k));
        t.dequantize_row(row.data(), out.data(), k);
    }
    if (!quant::matmul_supports(t.id)) return 0;

    std::vector<float> x(size_t(m * k));
    uint32_t s = 2166136261u;
    for (size_t i = 0; i < size && i < 64; ++i) s = (s ^ data[i]) * 16777619u;
    for (float &v : x) {
        s = s * 1664525u + 1013904223u;
        v = std::ldexp(float(int32_t(s >> 8) - (1 << 23)), -23 + int(s & 7));  // [-128, 128), many magnitudes
    }
    quant::matmul_problem p;
    p.x = x.data();
    p.m = m;
    p.k = k;
    p.x_row_stride = k;
    p.type = t.id;
    p.w = w.data();
    p.w_row_bytes = row_bytes;
    p.n = n;
    p.y_row_stride = n;
    std::vector<float> y_scalar(size_t(m * n), -1.0f);
    run(p, quant::matmul_isa::scalar, y_scalar);
    // Every SIMD set this CPU runs (none: nothing to compare).
    for (const auto isa : {quant::matmul_isa::avx2, quant::matmul_isa::avx512vnni, quant::matmul_isa::avx512vnni_no_gfni}) {
        std::vector<float> y_simd(size_t(m * n), -2.0f);
        if (!run(p, isa, y_simd)) continue;
        for (size_t i = 0; i < y_scalar.size(); ++i)
            if (!same_bits(y_scalar[i], y_simd[i])) {
                std::fprintf(stderr, "fuzz_quant_blocks: %s m=%lld n=%lld k=%lld: y[%zu] scalar %a, %s %a\n", t.name,
                             (long long)m, (long long)n, (long long)k, i, double(y_scalar[i]),
                             quant::matmul_isa_name(isa), double(y_simd[i]));
                std::abort();
            }
    }
    return 0;
}
