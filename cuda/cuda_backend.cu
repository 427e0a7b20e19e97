// The CUDA device backend: device discovery and host<->device copies on the
// caller's stream. Kernels for each block register here as they are written
// (attention: issue 6; quantized matmul and sampling: issue 7); until then the
// dispatch point stages those calls through host memory.
#include <cuda_runtime.h>

#include "core/backend.hpp"

namespace llmkit::core {

namespace {

void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) fail(LLMKIT_ERROR_DEVICE, what, ": ", cudaGetErrorString(e));
}

class cuda_device_backend final : public device_backend {
public:
    const char *name() const override { return "cuda"; }

    int device_count() override {
        int n = 0;
        // No driver or no GPU both mean "no usable device", not an error.
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError();  // clear the sticky error
            return 0;
        }
        return n;
    }

    void copy_to_host(void *dst, const void *src, size_t bytes, int device_id, void *stream) override {
        check(cudaSetDevice(device_id), "cudaSetDevice");
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)),
              "cudaMemcpyAsync (device to host)");
    }

    void copy_to_device(void *dst, const void *src, size_t bytes, int device_id, void *stream) override {
        check(cudaSetDevice(device_id), "cudaSetDevice");
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)),
              "cudaMemcpyAsync (host to device)");
    }

    void synchronize(int device_id, void *stream) override {
        check(cudaSetDevice(device_id), "cudaSetDevice");
        check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
    }
};

}  // namespace

device_backend *cuda_backend() {
    static cuda_device_backend backend;
    return &backend;
}

}  // namespace llmkit::core
