// Shared by the per-block files of llmkit._llmkit: how Python arrays become
// llmkit_tensor descriptors (numpy, __dlpack__, anything numpy.asarray takes)
// and how llmkit::error becomes a Python exception. See _llmkit.cpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmkit/llmkit.hpp"


namespace llmkit_py {

namespace py = pybind11;

// ---------------------------------------------------------------------------
// DLPack, declared here from the DLPack specification (legacy, unversioned
// protocol: __dlpack__() without max_version returns a PyCapsule named
// "dltensor" that points at a DLManagedTensor). The DLTensor it starts with has
// the memory layout of llmkit_tensor, which llmkit.h guarantees.
struct dl_managed_tensor {
    llmkit_tensor dl_tensor;                   // DLTensor
    void *manager_ctx;                         // the producer's context
    void (*deleter)(dl_managed_tensor *self);  // releases the tensor; may be NULL
};

// The consumer owns a managed tensor once it has renamed the capsule to
// "used_dltensor", and must call its deleter (with the GIL held, since
// producers such as numpy and cupy may touch Python objects in it).
struct dl_release {
    void operator()(dl_managed_tensor *m) const {
        if (m && m->deleter) m->deleter(m);
    }
};

// An input array as llmkit sees it, plus whatever keeps its memory alive.
// Must be destroyed with the GIL held.
struct tensor_arg {
    void *data = nullptr;
    uint64_t byte_offset = 0;
    llmkit_dtype dtype{};
    llmkit_device device{LLMKIT_DEVICE_CPU, 0};
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;  // elements; empty means compact row-major
    py::object owner;              // a numpy array, when the data is numpy's
    std::unique_ptr<dl_managed_tensor, dl_release> managed;

    int ndim() const { return int(shape.size()); }
    int64_t dim(int i) const { return i < ndim() ? shape[size_t(i)] : 1; }

    // A descriptor pointing at this argument's memory (valid while it lives).
    llmkit::tensor_ref ref() const {
        llmkit::tensor_ref r(data, dtype, shape, device, strides);
        r.get()->byte_offset = byte_offset;
        return r;
    }

    // Adds a leading axis of extent 1 (a single sequence becomes a batch of one).
    void unsqueeze0() {
        if (!strides.empty()) strides.insert(strides.begin(), shape.empty() ? 1 : shape[0] * strides[0]);
        shape.insert(shape.begin(), 1);
    }
};


enum class fallback { floating, index };

py::module_ &numpy();
std::string type_name(py::handle obj);
tensor_arg from_numpy(py::array a, const std::string &name);
tensor_arg from_dlpack(py::handle obj, const std::string &name);
// Any Python object as an input tensor. `fb` chooses how objects that are
// neither arrays nor DLPack producers (lists, scalars) are converted.
tensor_arg to_tensor(py::handle obj, const std::string &name, fallback fb);

using seq_ids_arg = std::optional<py::array_t<int64_t, py::array::c_style | py::array::forcecast>>;
using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

extern PyObject *g_llmkit_error;  // llmkit.LlmkitError, created at import
void raise_llmkit_error(const llmkit::error &e);
void translate(std::exception_ptr p);

// One registration function per block, each in its own py_<block>.cpp.
void bind_sampling(py::module_ &m);
void bind_tokenizer(py::module_ &m);
void bind_quant(py::module_ &m);
void bind_quant_calib(py::module_ &m);
void bind_quant_matmul(py::module_ &m);
void bind_attention(py::module_ &m);
void bind_gguf(py::module_ &m);

}  // namespace llmkit_py
