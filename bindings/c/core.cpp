// C ABI: versions, errors, devices, threads.
#include "guard.hpp"

#include "core/backend.hpp"
#include "core/philox.hpp"
#include "core/threads.hpp"
#include "llmkit/llmkit.h"

using namespace llmkit;

extern "C" {

const char *llmkit_version(void) { return LLMKIT_VERSION_STRING; }

uint32_t llmkit_version_number(void) { return LLMKIT_VERSION_NUMBER; }

const char *llmkit_status_string(llmkit_status status) { return core::status_name(status); }

const char *llmkit_last_error_message(void) { return core::last_error_message(); }

void llmkit_clear_error(void) { core::clear_last_error(); }

int llmkit_backend_compiled(int32_t device_type) {
    switch (device_type) {
    case LLMKIT_DEVICE_CPU:
    case LLMKIT_DEVICE_CUDA_HOST: return 1;
    case LLMKIT_DEVICE_CUDA:
    case LLMKIT_DEVICE_CUDA_MANAGED: return core::cuda_backend() != nullptr;
    default: return 0;
    }
}

llmkit_status llmkit_device_count(int32_t *count, int32_t device_type) {
    return capi::guard([&] {
        capi::require_non_null(count, "count");
        *count = 0;
        switch (device_type) {
        case LLMKIT_DEVICE_CPU: *count = 1; return;
        case LLMKIT_DEVICE_CUDA:
        case LLMKIT_DEVICE_CUDA_MANAGED:
        case LLMKIT_DEVICE_CUDA_HOST:
            if (!core::cuda_backend())
                core::fail(LLMKIT_ERROR_NO_DEVICE, "this llmkit was built without CUDA");
            *count = core::cuda_backend()->device_count();
            return;
        default: core::fail(LLMKIT_ERROR_NO_DEVICE, "device type ", device_type, " is not supported by llmkit");
        }
    });
}

llmkit_status llmkit_set_num_threads(int32_t n_threads) {
    return capi::guard([&] {
        if (n_threads < 0) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "n_threads must be >= 0, got ", n_threads);
        core::set_default_num_threads(n_threads);
    });
}

int32_t llmkit_get_num_threads(void) { return core::default_num_threads(); }

llmkit_status llmkit_philox4x32_10(uint32_t out[4], const uint32_t counter[4], const uint32_t key[2]) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(counter, "counter");
        capi::require_non_null(key, "key");
        const core::philox_block b = core::philox4x32_10(counter, key);
        for (int i = 0; i < 4; ++i) out[i] = b.v[i];
    });
}

}  // extern "C"

extern "C" const char *llmkit_build_info(void) {
    return "cuda="
#ifdef LLMKIT_WITH_CUDA
           "on"
#else
           "off"
#endif
           " onednn="
#ifdef LLMKIT_WITH_ONEDNN
           "on"
#else
           "off"
#endif
           " sanitizers="
#ifdef LLMKIT_SANITIZE
           "on"
#else
           "off"
#endif
        ;
}
