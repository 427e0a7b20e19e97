// llmkit._llmkit: the native half of the Python face.
//
// A thin pybind11 layer over llmkit.hpp (the header-only C++ face of the C ABI).
// It turns Python arrays into llmkit_tensor descriptors without copying:
//   - numpy arrays through their data pointer, dtype and byte strides;
//   - any object with __dlpack__ (torch, cupy, jax, ...) through a legacy
//     "dltensor" capsule, whose DLTensor has exactly llmkit_tensor's layout;
//   - anything else through numpy.asarray.
// Outputs are new numpy arrays on the host, except where the Python layer
// passes its own output (attention, RoPE: an array of the input's kind, so a
// torch tensor gets a torch tensor back). Every C compute call runs with the
// GIL released; llmkit::error becomes ValueError, MemoryError or
// llmkit.LlmkitError, carrying the C message (llmkit_last_error_message()).
//
// User-facing argument handling and docstrings live in the pure-Python package
// (llmkit/__init__.py, llmkit/_sampling.py, llmkit/_tokenizer.py, llmkit/_quant.py,
// llmkit/_attention.py); this module is private.
//
// Layout: py_common.{hpp,cpp} hold the array and error plumbing; each block
// registers its functions from its own py_<block>.cpp (bind_<block>).
#include "py_common.hpp"

using namespace llmkit_py;

PYBIND11_MODULE(_llmkit, m) {
    m.doc() = "Private native module of llmkit (pybind11 over llmkit.hpp). Use the llmkit package instead.";

    g_llmkit_error = PyErr_NewExceptionWithDoc(
        "llmkit.LlmkitError",
        "An llmkit failure that is not a bad argument: no device, a device error, an unsupported combination, "
        "I/O, a malformed file, or an internal error.\n\n"
        "Attributes: status (the C status name, e.g. 'LLMKIT_ERROR_NO_DEVICE') and status_code (its int value).",
        PyExc_RuntimeError, nullptr);
    if (!g_llmkit_error) throw py::error_already_set();
    m.add_object("LlmkitError", py::handle(g_llmkit_error));
    py::register_exception_translator(&translate);

    m.def("version", [] { return std::string(llmkit_version()); });
    m.def("version_number", [] { return llmkit_version_number(); });
    m.def("build_info", [] { return std::string(llmkit_build_info()); });
    m.def("status_string", [](int status) { return std::string(llmkit_status_string(llmkit_status(status))); },
          py::arg("status"));
    m.def("last_error_message", [] { return std::string(llmkit_last_error_message()); });
    m.def("set_num_threads", [](int32_t n) { llmkit::check(llmkit_set_num_threads(n)); }, py::arg("n"));
    m.def("get_num_threads", [] { return llmkit_get_num_threads(); });
    m.def("cuda_compiled", [] { return llmkit_backend_compiled(LLMKIT_DEVICE_CUDA) != 0; });
    m.def("cuda_device_count", [] {
        if (!llmkit_backend_compiled(LLMKIT_DEVICE_CUDA)) return int32_t(0);
        int32_t count = 0;
        llmkit::check(llmkit_device_count(&count, LLMKIT_DEVICE_CUDA));
        return count;
    });
    m.def(
        "philox4x32_10",
        [](const std::array<uint32_t, 4> &counter, const std::array<uint32_t, 2> &key) {
            uint32_t out[4];
            llmkit::check(llmkit_philox4x32_10(out, counter.data(), key.data()));
            return py::make_tuple(out[0], out[1], out[2], out[3]);
        },
        py::arg("counter"), py::arg("key"));

    bind_sampling(m);
    bind_tokenizer(m);
    bind_quant(m);
    bind_quant_calib(m);
    bind_quant_matmul(m);
    bind_attention(m);
    bind_gguf(m);
}

