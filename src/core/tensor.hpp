// A validated, internal view of an llmkit_tensor (the DLPack layout).
// Every C entry point turns its tensor arguments into tensor_views first, so the
// checks (null data, rank, negative extents, lanes) live in one place and every
// error names the argument it is about.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace llmkit::core {

enum class dtype { f32, f16, bf16, f64, i32, i64, u8, i8, boolean, other };

const char *dtype_name(dtype t) noexcept;

struct tensor_view {
    static constexpr int max_dims = 8;

    std::string name;  // the argument's name, for error messages
    char *data = nullptr;  // byte_offset already applied
    int32_t device_type = LLMKIT_DEVICE_CPU;
    int32_t device_id = 0;
    int ndim = 0;
    dtype type = dtype::other;
    size_t elem_size = 0;
    int64_t shape[max_dims] = {};
    int64_t strides[max_dims] = {};  // in elements, always filled in

    // Validates `t`; throws core::error naming `name` on any problem.
    static tensor_view from(const llmkit_tensor *t, const char *name);

    int64_t numel() const;
    bool on_host() const {
        return device_type == LLMKIT_DEVICE_CPU || device_type == LLMKIT_DEVICE_CUDA_HOST;
    }
    bool is_compact() const;
    // The bytes spanned from data to the last element (for staging copies).
    size_t span_bytes() const;
    std::string shape_string() const;
    // For outputs: refuses a stride of 0 on a dimension of more than one
    // element (its elements would share memory, and threads writing them race).
    void require_own_elements() const;

    void require_dtype(std::initializer_list<dtype> allowed) const;
    void require_ndim(int lo, int hi) const;

    // The int32 or int64 element `offset` elements from data (the caller
    // applies the strides; the dtype was checked to be one of the two).
    int64_t integer_at(int64_t offset) const;

    template <typename T>
    T *at(int64_t i0) const {
        return reinterpret_cast<T *>(data + i0 * strides[0] * int64_t(elem_size));
    }
    template <typename T>
    T *at(int64_t i0, int64_t i1) const {
        return reinterpret_cast<T *>(data + (i0 * strides[0] + i1 * strides[1]) * int64_t(elem_size));
    }
    template <typename T>
    T *at(int64_t i0, int64_t i1, int64_t i2) const {
        return reinterpret_cast<T *>(data +
                                     (i0 * strides[0] + i1 * strides[1] + i2 * strides[2]) * int64_t(elem_size));
    }
};

// fp16 and bf16 <-> fp32, bit-exact (round to nearest even on the way down).
inline float bf16_to_f32(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

// Reads n elements of a float tensor (f32, f16, bf16 or f64) starting at `src`
// with element stride `stride` into dst as float.
void load_floats(float *dst, const char *src, int64_t n, int64_t stride, dtype t);

// Writes an integer to an int32 or int64 element.
inline void store_index(const tensor_view &t, char *p, int64_t v) {
    if (t.type == dtype::i32) {
        const int32_t x = int32_t(v);
        std::memcpy(p, &x, 4);
    } else {
        std::memcpy(p, &v, 8);
    }
}

}  // namespace llmkit::core
