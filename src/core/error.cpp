#include "core/error.hpp"

namespace llmkit::core {

namespace {
// One message per thread, so concurrent failures never overwrite each other.
thread_local std::string tls_message;
}  // namespace

void set_last_error(llmkit_status status, const std::string &message) noexcept {
    try {
        tls_message = std::string(status_name(status)) + ": " + message;
    } catch (...) {
        // Out of memory while reporting an error: keep whatever was there.
    }
}

const char *last_error_message() noexcept { return tls_message.c_str(); }

void clear_last_error() noexcept { tls_message.clear(); }

const char *status_name(llmkit_status status) noexcept {
    switch (status) {
    case LLMKIT_OK: return "LLMKIT_OK";
    case LLMKIT_ERROR_INVALID_ARGUMENT: return "LLMKIT_ERROR_INVALID_ARGUMENT";
    case LLMKIT_ERROR_NULL_POINTER: return "LLMKIT_ERROR_NULL_POINTER";
    case LLMKIT_ERROR_SHAPE: return "LLMKIT_ERROR_SHAPE";
    case LLMKIT_ERROR_DTYPE: return "LLMKIT_ERROR_DTYPE";
    case LLMKIT_ERROR_OUT_OF_RANGE: return "LLMKIT_ERROR_OUT_OF_RANGE";
    case LLMKIT_ERROR_NON_FINITE: return "LLMKIT_ERROR_NON_FINITE";
    case LLMKIT_ERROR_BUFFER_TOO_SMALL: return "LLMKIT_ERROR_BUFFER_TOO_SMALL";
    case LLMKIT_ERROR_OUT_OF_MEMORY: return "LLMKIT_ERROR_OUT_OF_MEMORY";
    case LLMKIT_ERROR_UNSUPPORTED: return "LLMKIT_ERROR_UNSUPPORTED";
    case LLMKIT_ERROR_NO_DEVICE: return "LLMKIT_ERROR_NO_DEVICE";
    case LLMKIT_ERROR_DEVICE: return "LLMKIT_ERROR_DEVICE";
    case LLMKIT_ERROR_IO: return "LLMKIT_ERROR_IO";
    case LLMKIT_ERROR_FORMAT: return "LLMKIT_ERROR_FORMAT";
    case LLMKIT_ERROR_INTERNAL: return "LLMKIT_ERROR_INTERNAL";
    case LLMKIT_ERROR_CANCELLED: return "LLMKIT_ERROR_CANCELLED";
    }
    return "LLMKIT_ERROR_UNKNOWN";
}

}  // namespace llmkit::core
