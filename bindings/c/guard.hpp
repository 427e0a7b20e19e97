// Every exported function body runs inside guard(): C++ exceptions become a
// status code plus this thread's last-error message, never an unwinding across
// the C boundary.
#pragma once

#include <cstring>
#include <new>

#include "core/error.hpp"
#include "option_fields.hpp"

namespace llmkit::capi {

template <typename F>
llmkit_status guard(F &&body) noexcept {
    try {
        body();
        return LLMKIT_OK;
    } catch (const core::error &e) {
        core::set_last_error(e.status(), e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        core::set_last_error(LLMKIT_ERROR_OUT_OF_MEMORY, "out of memory");
        return LLMKIT_ERROR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        core::set_last_error(LLMKIT_ERROR_INTERNAL, e.what());
        return LLMKIT_ERROR_INTERNAL;
    } catch (...) {
        core::set_last_error(LLMKIT_ERROR_INTERNAL, "unknown exception");
        return LLMKIT_ERROR_INTERNAL;
    }
}

template <typename T>
void require_non_null(const T *p, const char *what) {
    if (!p) core::fail(LLMKIT_ERROR_NULL_POINTER, what, " is NULL");
}

// Reads a caller's option struct over the defaults. A struct from an older
// header (smaller struct_size) keeps the defaults for the fields it lacks; one
// from a newer header (larger) is refused, since it may set fields we ignore,
// and so is a size that ends inside a field (option_fields.hpp).
template <typename T>
T read_options(const T *in, const T &defaults, const char *what) {
    static_assert(fields_in_order<T>(), "option_fields<T> must list every field of T, in order");
    T out = defaults;
    if (!in) return out;
    const uint32_t size = in->struct_size;
    if (size < sizeof(uint32_t) || size > sizeof(T))
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, what, ".struct_size = ", size, " but this llmkit expects at most ",
                   sizeof(T), " (initialise it with its _INIT macro)");
    for (const field_span &f : option_fields<T>::list)
        if (size > f.begin && size < f.end)
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, what, ".struct_size = ", size, " ends inside field ", f.name,
                       " (bytes ", f.begin, "..", f.end, "); initialise it with its _INIT macro");
    std::memcpy(&out, in, size);
    return out;
}

}  // namespace llmkit::capi
