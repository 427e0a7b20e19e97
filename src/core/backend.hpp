// The one dispatch point. Every block's entry function asks select_backend()
// which implementation runs a call, by the devices of its tensors. The CPU path
// is the reference every other backend is tested against.
//
// A device backend (today: CUDA, compiled from cuda/ when nvcc is found)
// registers itself through cuda_backend(). Ops that have no device kernel yet
// stage through host memory with the backend's copy functions, so the API
// already accepts device tensors and gives the CPU's answer.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/tensor.hpp"

namespace llmkit::core {

class device_backend {
public:
    virtual ~device_backend() = default;
    virtual const char *name() const = 0;
    // Number of usable devices; 0 when there is no GPU or no driver.
    virtual int device_count() = 0;
    virtual void copy_to_host(void *dst, const void *src, size_t bytes, int device_id, void *stream) = 0;
    virtual void copy_to_device(void *dst, const void *src, size_t bytes, int device_id, void *stream) = 0;
    virtual void synchronize(int device_id, void *stream) = 0;
};

// nullptr when llmkit was built without CUDA (see src/core/no_cuda.cpp).
device_backend *cuda_backend();

enum class backend_kind { cpu, cuda };

struct dispatch {
    backend_kind kind = backend_kind::cpu;
    device_backend *device = nullptr;  // set when kind != cpu
    int device_id = 0;
};

// Picks the backend for a call. Tensors may be null (optional outputs). Every
// device tensor must be on the same device; host tensors may be mixed in (they
// are outputs read back to the host). Throws LLMKIT_ERROR_NO_DEVICE with a
// message that says why when the device cannot be used.
dispatch select_backend(std::initializer_list<const tensor_view *> tensors);

// A host copy of a device tensor for the staging path. For inputs the contents
// are copied in at construction; for outputs, write_back() copies them out.
class host_stage {
public:
    host_stage(const dispatch &d, const tensor_view &t, bool copy_in, void *stream);
    const tensor_view &view() const { return host_; }
    void write_back(void *stream);

private:
    const dispatch &d_;
    tensor_view device_;
    tensor_view host_;
    std::vector<char> buffer_;
};

}  // namespace llmkit::core
