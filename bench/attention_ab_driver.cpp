// A/B of attention between builds of llmkit, in one process: each shared
// library named on the command line is loaded (dlopen, its own copy of
// llmkit) and the libraries take turns on the same call, so the machine's
// drift from minute to minute falls on all of them alike. Prints each
// library's best time, and whether the libraries' outputs are the same bits.
//
//   llmkit_attention_ab_driver lib1.so [lib2.so ...] S threads reps [f32|bf16] [decode B]
//
// Without "decode": the prefill of bench_attention.py, causal, 32 query heads,
// 8 KV heads, head_dim 128, [1, S, H, D] tensors of N(0, 1) values, the output
// preallocated; GFLOP/s counts 4 * D flops per visible query-key pair.
//
// With "decode B": B sequences of S keys each take one query (the bench's
// "dense" decode cell): K and V lie in torch's [B, H, S, D] order and are
// passed as [B, S, H, D] views. GB/s counts the K and V bytes. Each round also
// times a plain read of K and V on `threads` threads (the bench's probe), so
// a run shows which memory phase it met; compare libraries, not runs.
//
// e.g. build two trees and run
//   llmkit_attention_ab_driver old/libllmkit.so new/libllmkit.so 2048 2 5 bf16
//   llmkit_attention_ab_driver old/libllmkit.so new/libllmkit.so 8192 2 20 bf16 decode 16
#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
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

// Seconds to read n bytes at p on `threads` threads (a sum, so the reads stay).
double read_seconds(const unsigned char *p, size_t n, int threads) {
    std::vector<std::thread> pool;
    std::vector<uint64_t> sums(size_t(threads > 0 ? threads : 1));
    const size_t part = n / sums.size() / 64 * 64;
    const double t0 = now();
    for (size_t t = 0; t < sums.size(); ++t)
        pool.emplace_back([&, t] {
            const uint64_t *w = reinterpret_cast<const uint64_t *>(p + t * part);
            uint64_t acc = 0;
            for (size_t i = 0; i < part / 8; ++i) acc += w[i];
            sums[t] = acc;
        });
    for (auto &th : pool) th.join();
    const double dt = now() - t0;
    volatile uint64_t sink = 0;
    for (uint64_t x : sums) sink = sink + x;
    return dt;
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
        std::fprintf(stderr, "usage: %s lib1.so [lib2.so ...] S threads reps [f32|bf16] [decode B [bshd]]\n", argv[0]);
        return 2;
    }
    const int64_t S = std::atoll(argv[a]);
    const int threads = std::atoi(argv[a + 1]), reps = std::atoi(argv[a + 2]);
    const bool bf16 = argc > a + 3 && std::strcmp(argv[a + 3], "bf16") == 0;
    const bool decode = argc > a + 5 && std::strcmp(argv[a + 4], "decode") == 0;
    const int64_t B = decode ? std::atoll(argv[a + 5]) : 1;
    // Decode's K and V as compact [B, S, H, D] (every token's heads side by
    // side, the Python API's layout) instead of torch's [B, H, S, D].
    const bool bshd = decode && argc > a + 6 && std::strcmp(argv[a + 6], "bshd") == 0;
    if (S < 1 || reps < 1 || B < 1) {
        std::fprintf(stderr, "S, reps and B must be positive\n");
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
    const int64_t Sq = decode ? 1 : S;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> q(size_t(B * Sq * Hq * D)), k(size_t(B * S * Hkv * D)), v(size_t(B * S * Hkv * D));
    for (auto *t : {&q, &k, &v})
        for (float &x : *t) x = normal(rng);
    std::vector<uint16_t> qh, kh, vh;
    if (bf16)
        for (auto [src, dst] : {std::pair{&q, &qh}, std::pair{&k, &kh}, std::pair{&v, &vh}}) {
            for (float x : *src) dst->push_back(to_bf16(x));
            std::vector<float>().swap(*src);
        }
    const size_t elem = bf16 ? 2 : 4;
    const size_t out_bytes = size_t(B * Sq * Hq * D) * elem;
    std::vector<std::vector<unsigned char>> outs(libs.size(), std::vector<unsigned char>(out_bytes));

    // Prefill: compact [1, S, H, D]. Decode: K and V stored [B, H, S, D], seen as [B, S, H, D]
    // (or compact [B, S, H, D] with bshd).
    const int64_t shape_q[4] = {B, Sq, Hq, D}, shape_kv[4] = {B, S, Hkv, D};
    const int64_t strides_kv[4] = {Hkv * S * D, D, S * D, 1};
    const llmkit_dtype dt = bf16 ? llmkit_dtype LLMKIT_DTYPE_BF16 : llmkit_dtype LLMKIT_DTYPE_F32;
    const auto tensor = [&](void *data, const int64_t *shape, const int64_t *strides) {
        return llmkit_tensor{data, LLMKIT_DEVICE_HOST, 4, dt, shape, strides, 0};
    };
    void *kd = bf16 ? static_cast<void *>(kh.data()) : k.data();
    void *vd = bf16 ? static_cast<void *>(vh.data()) : v.data();
    const llmkit_tensor tq = tensor(bf16 ? static_cast<void *>(qh.data()) : q.data(), shape_q, nullptr);
    const int64_t *kv_strides = decode && !bshd ? strides_kv : nullptr;
    const llmkit_tensor tk = tensor(kd, shape_kv, kv_strides);
    const llmkit_tensor tv = tensor(vd, shape_kv, kv_strides);
    llmkit_attention_options opt = LLMKIT_ATTENTION_OPTIONS_INIT;
    opt.causal = 1;
    opt.n_threads = threads;
    const size_t kv_bytes = size_t(B * S * Hkv * D) * elem;

    // Decode rounds also time the plain read right after each call, and keep
    // each call's time over the read's: the memory's phase moves within
    // seconds here, and the ratio moves less than either.
    std::vector<double> best(libs.size(), 1e30);
    std::vector<std::vector<double>> over_read(libs.size());
    double probe_best = 1e30, probe_worst = 0;
    for (int r = 0; r <= reps; ++r) {  // round 0 warms up
        for (size_t i = 0; i < libs.size(); ++i) {
            const llmkit_tensor to = tensor(outs[i].data(), shape_q, nullptr);
            const double t0 = now();
            if (fns[i](&tq, &tk, &tv, &to, &opt) != LLMKIT_OK) {
                std::fprintf(stderr, "%s: %s\n", libs[i].c_str(), messages[i]());
                return 1;
            }
            const double t = now() - t0;
            if (r > 0) best[i] = std::min(best[i], t);
            if (decode && r > 0) {
                const double tp = read_seconds(static_cast<const unsigned char *>(kd), kv_bytes, threads) +
                                  read_seconds(static_cast<const unsigned char *>(vd), kv_bytes, threads);
                probe_best = std::min(probe_best, tp);
                probe_worst = std::max(probe_worst, tp);
                over_read[i].push_back(tp / t);
            }
        }
    }
    if (decode)
        std::printf("read probe (K and V, %d threads): %.1f-%.1f GB/s\n", threads, 2 * kv_bytes / probe_worst * 1e-9,
                    2 * kv_bytes / probe_best * 1e-9);
    const auto median = [](std::vector<double> x) {
        std::sort(x.begin(), x.end());
        return x.empty() ? 0.0 : x[x.size() / 2];
    };
    const double flops = 4.0 * double(D) * double(Hq) * double(S) * double(S + 1) / 2;
    for (size_t i = 0; i < libs.size(); ++i) {
        const char *same =
            i > 0 ? (outs[i] == outs[0] ? "  (same bits as the first)" : "  (other bits than the first)") : "";
        if (decode)
            std::printf("%s  decode %s B=%lld S=%lld %s %d threads: %.3f ms  %.1f GB/s, %.0f %% of the read after it "
                        "(median)%s\n",
                        libs[i].c_str(), bshd ? "[B,S,H,D]" : "[B,H,S,D]", static_cast<long long>(B),
                        static_cast<long long>(S), bf16 ? "bf16" : "f32",
                        threads, best[i] * 1e3, 2 * kv_bytes / best[i] * 1e-9, 100 * median(over_read[i]), same);
        else
            std::printf("%s  S=%lld %s %d threads: %.2f ms  %.1f GFLOP/s%s\n", libs[i].c_str(),
                        static_cast<long long>(S), bf16 ? "bf16" : "f32", threads, best[i] * 1e3,
                        flops / best[i] * 1e-9, same);
    }
    return 0;
}
