#include "core/backend.hpp"

namespace llmkit::core {

static bool is_device_memory(const tensor_view &t) { return !t.on_host(); }

dispatch select_backend(std::initializer_list<const tensor_view *> tensors) {
    dispatch d;
    const tensor_view *first_device = nullptr;
    for (const tensor_view *t : tensors) {
        if (!t || !is_device_memory(*t)) continue;
        if (!first_device) {
            first_device = t;
            continue;
        }
        if (t->device_id != first_device->device_id)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, t->name, " is on CUDA device ", t->device_id, " but ",
                 first_device->name, " is on CUDA device ", first_device->device_id);
    }
    if (!first_device) return d;

    device_backend *cuda = cuda_backend();
    if (!cuda)
        fail(LLMKIT_ERROR_NO_DEVICE, first_device->name,
             " is a CUDA tensor, but this llmkit was built without CUDA (configure with LLMKIT_WITH_CUDA=ON)");
    const int count = cuda->device_count();
    if (count == 0)
        fail(LLMKIT_ERROR_NO_DEVICE, first_device->name,
             " is a CUDA tensor, but no CUDA device is available on this machine");
    if (first_device->device_id < 0 || first_device->device_id >= count)
        fail(LLMKIT_ERROR_NO_DEVICE, first_device->name, " is on CUDA device ", first_device->device_id,
             ", but only ", count, " device(s) exist");
    d.kind = backend_kind::cuda;
    d.device = cuda;
    d.device_id = first_device->device_id;
    return d;
}

host_stage::host_stage(const dispatch &d, const tensor_view &t, bool copy_in, void *stream)
    : d_(d), device_(t), host_(t) {
    if (t.on_host()) return;
    const size_t bytes = t.span_bytes();
    buffer_.resize(bytes);
    host_.data = buffer_.data();
    host_.device_type = LLMKIT_DEVICE_CPU;
    host_.device_id = 0;
    if (copy_in && bytes) {
        d_.device->copy_to_host(buffer_.data(), t.data, bytes, d_.device_id, stream);
        d_.device->synchronize(d_.device_id, stream);
    }
}

void host_stage::write_back(void *stream) {
    if (device_.on_host() || buffer_.empty()) return;
    d_.device->copy_to_device(device_.data, buffer_.data(), buffer_.size(), d_.device_id, stream);
    d_.device->synchronize(d_.device_id, stream);
}

}  // namespace llmkit::core
