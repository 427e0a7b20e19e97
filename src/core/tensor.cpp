#include "core/tensor.hpp"

#include <cstring>
#include <limits>
#include <sstream>

namespace llmkit::core {

const char *dtype_name(dtype t) noexcept {
    switch (t) {
    case dtype::f32: return "float32";
    case dtype::f16: return "float16";
    case dtype::bf16: return "bfloat16";
    case dtype::f64: return "float64";
    case dtype::i32: return "int32";
    case dtype::i64: return "int64";
    case dtype::u8: return "uint8";
    case dtype::i8: return "int8";
    case dtype::boolean: return "bool";
    case dtype::other: break;
    }
    return "unsupported";
}

static dtype classify(const llmkit_dtype &d) {
    if (d.lanes != 1) return dtype::other;
    switch (d.code) {
    case LLMKIT_DTYPE_FLOAT:
        return d.bits == 32 ? dtype::f32 : d.bits == 16 ? dtype::f16 : d.bits == 64 ? dtype::f64 : dtype::other;
    case LLMKIT_DTYPE_BFLOAT: return d.bits == 16 ? dtype::bf16 : dtype::other;
    case LLMKIT_DTYPE_INT:
        return d.bits == 32 ? dtype::i32 : d.bits == 64 ? dtype::i64 : d.bits == 8 ? dtype::i8 : dtype::other;
    case LLMKIT_DTYPE_UINT: return d.bits == 8 ? dtype::u8 : dtype::other;
    case LLMKIT_DTYPE_BOOL: return d.bits == 8 ? dtype::boolean : dtype::other;
    default: return dtype::other;
    }
}

// A dtype llmkit does not read, spelled as numpy and torch do ("int16",
// "complex64", "bool8", "float32x4"), so the refusal names it.
static std::string dlpack_dtype_name(const llmkit_dtype &d) {
    static const char *const kinds[] = {"int", "uint", "float", "opaque handle ", "bfloat", "complex", "bool"};
    std::ostringstream s;
    if (d.code < sizeof kinds / sizeof kinds[0]) s << kinds[d.code];
    else s << "type code " << int(d.code) << " of ";
    s << int(d.bits);
    if (d.code >= sizeof kinds / sizeof kinds[0] || d.code == 3) s << " bits";
    if (d.lanes != 1) s << "x" << d.lanes;
    return s.str();
}

tensor_view tensor_view::from(const llmkit_tensor *t, const char *name) {
    tensor_view v;
    v.name = name;
    if (!t) fail(LLMKIT_ERROR_NULL_POINTER, name, ": tensor pointer is NULL");
    if (t->ndim < 0 || t->ndim > max_dims)
        fail(LLMKIT_ERROR_SHAPE, name, ": ndim = ", t->ndim, " is outside 0..", max_dims);
    if (t->ndim > 0 && !t->shape) fail(LLMKIT_ERROR_NULL_POINTER, name, ": shape is NULL");
    v.type = classify(t->dtype);
    if (v.type == dtype::other)
        fail(LLMKIT_ERROR_DTYPE, name, ": unsupported dtype ", dlpack_dtype_name(t->dtype), " (DLPack code ",
             int(t->dtype.code), ", bits ", int(t->dtype.bits), ", lanes ", int(t->dtype.lanes), ")");
    v.elem_size = t->dtype.bits / 8;
    v.ndim = t->ndim;
    v.device_type = t->device.device_type;
    v.device_id = t->device.device_id;
    if (v.device_type != LLMKIT_DEVICE_CPU && v.device_type != LLMKIT_DEVICE_CUDA &&
        v.device_type != LLMKIT_DEVICE_CUDA_HOST && v.device_type != LLMKIT_DEVICE_CUDA_MANAGED)
        fail(LLMKIT_ERROR_NO_DEVICE, name, ": device type ", v.device_type, " is not supported by llmkit");
    int64_t expect = 1;
    for (int i = v.ndim - 1; i >= 0; --i) {
        if (t->shape[i] < 0) fail(LLMKIT_ERROR_SHAPE, name, ": dimension ", i, " is negative (", t->shape[i], ")");
        v.shape[i] = t->shape[i];
        v.strides[i] = t->strides ? t->strides[i] : expect;
        if (t->shape[i] != 0 && expect > std::numeric_limits<int64_t>::max() / t->shape[i])
            fail(LLMKIT_ERROR_SHAPE, name, ": element count overflows");
        expect *= t->shape[i] ? t->shape[i] : 1;
    }
    if (v.numel() == 0) {
        // An empty tensor reads nothing and its strides say nothing (numpy
        // gives them as 0): the compact ones stand in, so that no stride
        // check of any block refuses it.
        int64_t s = 1;
        for (int i = v.ndim - 1; i >= 0; --i) {
            v.strides[i] = s;
            s *= v.shape[i] ? v.shape[i] : 1;
        }
    }
    if (v.numel() > 0) {
        // Every element's byte offset (sum of index * stride * elem_size)
        // must be a number: a stride near 2^63 would overflow it, and the
        // address arithmetic of every kernel with it.
        const int64_t max = std::numeric_limits<int64_t>::max();
        int64_t reach = 0;  // the largest |offset| of an element, in bytes
        for (int i = 0; i < v.ndim; ++i) {
            const int64_t st = v.strides[i];
            const int64_t mag = st == std::numeric_limits<int64_t>::min() ? max : (st < 0 ? -st : st);
            const int64_t n = v.shape[i] - 1;
            if (n > 0 && mag > (max - reach) / n / int64_t(v.elem_size))
                fail(LLMKIT_ERROR_SHAPE, name, ": stride ", st, " of dimension ", i, " (extent ", v.shape[i],
                     ") puts elements past 2^63 bytes");
            reach += n * mag * int64_t(v.elem_size);
        }
    }
    if (v.numel() > 0 && !t->data) fail(LLMKIT_ERROR_NULL_POINTER, name, ": data is NULL");
    v.data = static_cast<char *>(t->data) + t->byte_offset;
    return v;
}

int64_t tensor_view::numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
}

bool tensor_view::is_compact() const {
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
        if (shape[i] != 1 && strides[i] != expect) return false;
        expect *= shape[i];
    }
    return true;
}

size_t tensor_view::span_bytes() const {
    if (numel() == 0) return 0;
    int64_t last = 0;
    for (int i = 0; i < ndim; ++i) {
        if (strides[i] < 0) fail(LLMKIT_ERROR_UNSUPPORTED, name, ": negative strides are not supported here");
        last += (shape[i] - 1) * strides[i];
    }
    return size_t(last + 1) * elem_size;
}

void tensor_view::require_own_elements() const {
    if (numel() <= 1) return;
    for (int i = 0; i < ndim; ++i)
        if (shape[i] > 1 && strides[i] == 0)
            fail(LLMKIT_ERROR_UNSUPPORTED, name, ": dimension ", i, " (extent ", shape[i],
                 ") has stride 0; an output needs memory of its own for each element");
}

std::string tensor_view::shape_string() const {
    std::ostringstream os;
    os << "[";
    for (int i = 0; i < ndim; ++i) os << (i ? ", " : "") << shape[i];
    os << "]";
    return os.str();
}

void tensor_view::require_dtype(std::initializer_list<dtype> allowed) const {
    std::string names;
    for (dtype d : allowed) {
        if (d == type) return;
        names += names.empty() ? "" : ", ";
        names += dtype_name(d);
    }
    fail(LLMKIT_ERROR_DTYPE, name, ": dtype ", dtype_name(type), " is not accepted (expected ", names, ")");
}

void tensor_view::require_ndim(int lo, int hi) const {
    if (ndim < lo || ndim > hi) {
        if (lo == hi) fail(LLMKIT_ERROR_SHAPE, name, ": expected ", lo, " dimensions, got shape ", shape_string());
        fail(LLMKIT_ERROR_SHAPE, name, ": expected ", lo, " to ", hi, " dimensions, got shape ", shape_string());
    }
}

int64_t tensor_view::integer_at(int64_t offset) const {
    const char *p = data + offset * int64_t(elem_size);
    if (type == dtype::i32) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return v;
    }
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | mant << 13;
    } else {
        bits = sign | (exp + 112) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0));  // inf / nan
    if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u);                                  // overflow
    if (x < 0x38800000u) {  // subnormal or zero in half
        if (x < 0x33000000u) return uint16_t(sign);
        const uint32_t e = x >> 23;
        const uint32_t m = (x & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // 14..24
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;
        return uint16_t(sign | r);
    }
    uint32_t r = ((x >> 13) - (112u << 10));
    const uint32_t rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) ++r;
    return uint16_t(sign | r);
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return uint16_t(x >> 16);
}

void load_floats(float *dst, const char *src, int64_t n, int64_t stride, dtype t) {
    switch (t) {
    case dtype::f32:
        if (stride == 1) {
            std::memcpy(dst, src, size_t(n) * 4);
        } else {
            for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i, src + i * stride * 4, 4);
        }
        return;
    case dtype::bf16:
        for (int64_t i = 0; i < n; ++i) {
            uint16_t h;
            std::memcpy(&h, src + i * stride * 2, 2);
            dst[i] = bf16_to_f32(h);
        }
        return;
    case dtype::f16:
        for (int64_t i = 0; i < n; ++i) {
            uint16_t h;
            std::memcpy(&h, src + i * stride * 2, 2);
            dst[i] = f16_to_f32(h);
        }
        return;
    case dtype::f64:
        for (int64_t i = 0; i < n; ++i) {
            double d;
            std::memcpy(&d, src + i * stride * 8, 8);
            dst[i] = float(d);
        }
        return;
    default: fail(LLMKIT_ERROR_INTERNAL, "load_floats called with a non-float dtype");
    }
}

}  // namespace llmkit::core
