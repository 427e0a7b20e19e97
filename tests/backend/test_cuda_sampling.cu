// CUDA backend against the CPU reference: the same logits and seed must give
// the same tokens from device tensors as from host tensors. Exits 77 (ctest's
// skip) with the reason when no GPU is present.
#include <cuda_runtime.h>

#include <cstdio>
#include <random>
#include <vector>

#include "llmkit/llmkit.h"

static llmkit_tensor make(void *data, int32_t device, llmkit_dtype dt, int ndim, const int64_t *shape) {
    llmkit_tensor t{};
    t.data = data;
    t.device = {device, 0};
    t.ndim = ndim;
    t.dtype = dt;
    t.shape = shape;
    return t;
}

int main() {
    int32_t n = 0;
    if (llmkit_device_count(&n, LLMKIT_DEVICE_CUDA) != LLMKIT_OK || n == 0) {
        std::printf("SKIP: no CUDA device on this machine (%s)\n", llmkit_last_error_message());
        return 77;
    }
    const int64_t b = 32, v = 32000;
    std::vector<float> host(static_cast<size_t>(b * v));
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    for (float &x : host) x = nd(rng);
    float *dev = nullptr;
    int32_t *dev_tokens = nullptr;
    if (cudaMalloc(&dev, host.size() * 4) != cudaSuccess || cudaMalloc(&dev_tokens, b * 4) != cudaSuccess) {
        std::printf("cudaMalloc failed\n");
        return 1;
    }
    cudaMemcpy(dev, host.data(), host.size() * 4, cudaMemcpyHostToDevice);
    const int64_t ls[2] = {b, v}, ts[1] = {b};
    const llmkit_dtype f32 = LLMKIT_DTYPE_F32, i32 = LLMKIT_DTYPE_I32;
    int failed = 0;
    for (int round = 0; round < 2; ++round) {
        llmkit_sampler_chain *cpu = nullptr, *gpu = nullptr;
        llmkit_sampler_chain_options o = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
        o.seed = 99 + round;
        llmkit_sampler_chain_create(&cpu, &o);
        llmkit_sampler_chain_create(&gpu, &o);
        for (llmkit_sampler_chain *c : {cpu, gpu}) {
            llmkit_sampler_chain_add_top_k(c, 50);
            llmkit_sampler_chain_add_top_p(c, 0.9f, 1);
            llmkit_sampler_chain_add_temperature(c, 0.8f);
        }
        std::vector<int32_t> cpu_tokens(static_cast<size_t>(b)), gpu_tokens(static_cast<size_t>(b));
        llmkit_tensor hl = make(host.data(), LLMKIT_DEVICE_CPU, f32, 2, ls);
        llmkit_tensor ht = make(cpu_tokens.data(), LLMKIT_DEVICE_CPU, i32, 1, ts);
        llmkit_tensor dl = make(dev, LLMKIT_DEVICE_CUDA, f32, 2, ls);
        llmkit_tensor dt = make(dev_tokens, LLMKIT_DEVICE_CUDA, i32, 1, ts);
        if (llmkit_sampler_chain_sample(cpu, &hl, &ht, nullptr) != LLMKIT_OK ||
            llmkit_sampler_chain_sample(gpu, &dl, &dt, nullptr) != LLMKIT_OK) {
            std::printf("sample failed: %s\n", llmkit_last_error_message());
            return 1;
        }
        cudaMemcpy(gpu_tokens.data(), dev_tokens, b * 4, cudaMemcpyDeviceToHost);
        failed += cpu_tokens != gpu_tokens;
        llmkit_sampler_chain_free(cpu);
        llmkit_sampler_chain_free(gpu);
    }
    cudaFree(dev);
    cudaFree(dev_tokens);
    std::printf("gpu_sampling: %d passed, %d failed\n", 2 - failed, failed);
    return failed ? 1 : 0;
}
