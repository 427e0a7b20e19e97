// A/B of attention prefill between builds of llmkit, in one process: each
// shared library named on the command line is loaded (dlopen, its own copy of
// llmkit) and the libraries take turns on the same call, so the machine's
// drift from minute to minute falls on all of them alike. The call is the
// prefill of bench_attention.py: causal, 32 query heads, 8 KV heads, head_dim
// 128, [1, S, H, D] tensors of N(0, 1) values, the output preallocated. Prints
// each library's best time and GFLOP/s (4 * D flops per visible query-key
// pair), and whether the libraries' outputs are the same bits.
//
//   llmkit_attention_ab_driver lib1.so [lib2.so ...] S threads reps [f32|bf16]
//
// e.g. build two trees and run
//   llmkit_attention_ab_driver old/libllmkit.so new/libllmkit.so 2048 2 5 bf16
#include <dlfcn.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.h"

namespace {

double now() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// The header's own types (decltype names them without linking the library):
// calling through any other function type is undefined (UBSan's -fsanitize=function).
using attention_fn = decltype(&llmkit_attention);
using message_fn = decltype(&llmkit_last_error_message);

// Round to nearest even, as llmkit's own conversion (inputs are finite).
uint16_t to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

bool ends_with(const std::string &s, const char *tail) {
    const size_t n = std::strlen(tail);
    return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<std::string> libs;
    int a = 1;
    for (; a < argc && (ends_with(argv[a], ".so") || std::strstr(argv[a], ".so.")); ++a) libs.push_back(argv[a]);
    if (libs.empty() || argc - a < 3) {
        std::fprintf(stderr, "usage: %s lib1.so [lib2.so ...] S threads reps [f32|bf16]\n", argv[0]);
        return 2;
    }
    const int64_t S = std::atoll(argv[a]);
    const int threads = std::atoi(argv[a + 1]), reps = std::atoi(argv[a + 2]);
    const bool bf16 = argc > a + 3 && std::strcmp(argv[a + 3], "bf16") == 0;
    if (S < 1 || reps < 1) {
        std::fprintf(stderr, "S and reps must be positive\n");
        return 2;
    }

    std::vector<attention_fn> fns;
    std::vector<message_fn> messages;
    for (const auto &lib : libs) {
        // RTLD_LOCAL: each library keeps its own symbols, so two builds of the same SONAME can coexist.
        // A name without a slash would be looked up on the library path, not here.
        const std::string path = lib.find('/') == std::string::npos ? "./" + lib : lib;
        void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            std::fprintf(stderr, "cannot load %s: %s\n", lib.c_str(), dlerror());
            return 1;
        }
        fns.push_back(reinterpret_cast<attention_fn>(dlsym(h, "llmkit_attention")));
        messages.push_back(reinterpret_cast<message_fn>(dlsym(h, "llmkit_last_error_message")));
        if (!fns.back() || !messages.back()) {
            std::fprintf(stderr, "%s has no llmkit_attention\n", lib.c_str());
            return 1;
        }
    }

    const int64_t D = 128, Hq = 32, Hkv = 8;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> q(size_t(S * Hq * D)), k(size_t(S * Hkv * D)), v(size_t(S * Hkv * D));
    for (auto *t : {&q, &k, &v})
        for (float &x : *t) x = normal(rng);
    std::vector<uint16_t> qh, kh, vh;
    if (bf16)
        for (auto [src, dst] : {std::pair{&q, &qh}, std::pair{&k, &kh}, std::pair{&v, &vh}})
            for (float x : *src) dst->push_back(to_bf16(x));
    const size_t out_bytes = size_t(S * Hq * D) * (bf16 ? 2 : 4);
    std::vector<std::vector<unsigned char>> outs(libs.size(), std::vector<unsigned char>(out_bytes));

    const int64_t shape_q[4] = {1, S, Hq, D}, shape_kv[4] = {1, S, Hkv, D};
    const llmkit_dtype dt = bf16 ? llmkit_dtype LLMKIT_DTYPE_BF16 : llmkit_dtype LLMKIT_DTYPE_F32;
    const auto tensor = [&](void *data, const int64_t *shape) {
        return llmkit_tensor{data, LLMKIT_DEVICE_HOST, 4, dt, shape, nullptr, 0};
    };
    const llmkit_tensor tq = tensor(bf16 ? static_cast<void *>(qh.data()) : q.data(), shape_q);
    const llmkit_tensor tk = tensor(bf16 ? static_cast<void *>(kh.data()) : k.data(), shape_kv);
    const llmkit_tensor tv = tensor(bf16 ? static_cast<void *>(vh.data()) : v.data(), shape_kv);
    llmkit_attention_options opt = LLMKIT_ATTENTION_OPTIONS_INIT;
    opt.causal = 1;
    opt.n_threads = threads;

    std::vector<double> best(libs.size(), 1e30);
    for (int r = 0; r <= reps; ++r)  // round 0 warms up
        for (size_t i = 0; i < libs.size(); ++i) {
            const llmkit_tensor to = tensor(outs[i].data(), shape_q);
            const double t0 = now();
            if (fns[i](&tq, &tk, &tv, &to, &opt) != LLMKIT_OK) {
                std::fprintf(stderr, "%s: %s\n", libs[i].c_str(), messages[i]());
                return 1;
            }
            if (r > 0) best[i] = std::min(best[i], now() - t0);
        }
    const double flops = 4.0 * double(D) * double(Hq) * double(S) * double(S + 1) / 2;
    for (size_t i = 0; i < libs.size(); ++i)
        std::printf("%s  S=%lld %s %d threads: %.2f ms  %.1f GFLOP/s%s\n", libs[i].c_str(), static_cast<long long>(S),
                    bf16 ? "bf16" : "f32", threads, best[i] * 1e3, flops / best[i] * 1e-9,
                    i > 0 ? (outs[i] == outs[0] ? "  (same bits as the first)" : "  (other bits than the first)") : "");
    return 0;
}
