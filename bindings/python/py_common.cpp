// Array conversion and error translation shared by every block's bindings.
#include "py_common.hpp"

namespace llmkit_py {

py::module_ &numpy() {
    // Deliberately never destroyed: a static py::module_ would be released by
    // the C++ exit handlers after Python has finalized, and its Py_DECREF then
    // reads freed interpreter state (a crash at exit that ASan reports).
    static py::module_ &np = *new py::module_(py::module_::import("numpy"));
    return np;
}

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

// Whether a numpy byte-order character means this machine's order ('=' native,
// '|' not applicable, or the explicit character for this machine's order).
static bool native_order(char byteorder) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return byteorder != '<';
#else
    return byteorder != '>';
#endif
}

tensor_arg from_numpy(py::array a, const std::string &name) {
    // The dtype's fields are read from its C struct (dtype::kind, byteorder):
    // the Python attributes cost about a microsecond a call, which a GEMV of
    // a few rows notices.
    py::dtype dt = a.dtype();
    if (!native_order(dt.byteorder())) {  // byte-swapped data: make a native copy
        a = py::array(a.attr("astype")(dt.attr("newbyteorder")("=")));
        dt = a.dtype();
    }
    const char kind = dt.kind();
    const auto itemsize = py::ssize_t(a.itemsize());
    const auto dtname = [&] { return std::string(py::str(dt.attr("name"))); };
    tensor_arg t;
    const auto bits = uint8_t(itemsize * 8);
    if (kind == 'f') {
        t.dtype = {LLMKIT_DTYPE_FLOAT, bits, 1};
    } else if (kind == 'i') {
        t.dtype = {LLMKIT_DTYPE_INT, bits, 1};
    } else if (kind == 'u') {
        t.dtype = {LLMKIT_DTYPE_UINT, bits, 1};
    } else if (kind == 'b') {
        t.dtype = {LLMKIT_DTYPE_BOOL, 8, 1};
    } else if (kind == 'V' && itemsize == 2 && dtname() == "bfloat16") {  // ml_dtypes.bfloat16
        t.dtype = {LLMKIT_DTYPE_BFLOAT, 16, 1};
    } else {
        throw py::value_error(name + ": numpy dtype " + dtname() +
                              " is not a numeric type llmkit can read (use float32, float16 or bfloat16 for "
                              "logits and probabilities, int32 or int64 for token ids)");
    }
    // numpy strides count bytes, llmkit's count elements: copy the rare array
    // whose strides are not a multiple of its item size.
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (a.strides(i) % itemsize != 0) {
            a = py::array(numpy().attr("ascontiguousarray")(a));
            break;
        }
    }
    t.data = const_cast<void *>(a.data());
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        t.shape.push_back(int64_t(a.shape(i)));
        t.strides.push_back(int64_t(a.strides(i) / itemsize));
    }
    t.owner = a;
    return t;
}

tensor_arg from_dlpack(py::handle obj, const std::string &name) {
    // torch keeps a negation lazy as a bit on the tensor (x._neg_view(),
    // x.conj().imag) and exports such a tensor through DLPack as its storage,
    // without the sign; refuse it rather than read every value negated.
    if (py::hasattr(obj, "is_neg")) {
        py::object is_neg = obj.attr("is_neg");
        if (PyCallable_Check(is_neg.ptr()) && py::bool_(is_neg()))
            throw py::value_error(name + ": the torch tensor has its negative bit set (a lazy negation, which DLPack "
                                         "cannot carry); pass x.resolve_neg()");
    }
    // For a CUDA tensor, tell the producer which stream llmkit reads on: llmkit
    // is called with stream NULL, the legacy default stream, which DLPack
    // numbers 1. The producer then orders its pending work before that stream.
    // Host producers get no stream argument (numpy refuses one).
    int device_type = LLMKIT_DEVICE_CPU;
    if (py::hasattr(obj, "__dlpack_device__")) {
        py::tuple dev = obj.attr("__dlpack_device__")();
        if (dev.size() >= 1) device_type = py::int_(dev[0]).cast<int>();
    }
    py::object cap = (device_type == LLMKIT_DEVICE_CUDA || device_type == LLMKIT_DEVICE_CUDA_MANAGED)
                         ? obj.attr("__dlpack__")(py::arg("stream") = 1)
                         : obj.attr("__dlpack__")();
    if (!PyCapsule_IsValid(cap.ptr(), "dltensor")) {
        const char *got = PyCapsule_CheckExact(cap.ptr()) ? PyCapsule_GetName(cap.ptr()) : nullptr;
        throw py::value_error(name + ": " + type_name(obj) +
                              ".__dlpack__() did not return a DLPack 'dltensor' capsule (got " +
                              (got ? std::string("a capsule named '") + got + "'" : type_name(cap)) + ")");
    }
    auto *m = static_cast<dl_managed_tensor *>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
    if (!m) throw py::error_already_set();
    // Consume the capsule: from here on the managed tensor is ours to delete.
    if (PyCapsule_SetName(cap.ptr(), "used_dltensor") != 0) throw py::error_already_set();
    tensor_arg t;
    t.managed.reset(m);
    const llmkit_tensor &d = m->dl_tensor;
    if (d.ndim < 0 || d.ndim > 64)
        throw py::value_error(name + ": DLPack tensor has ndim = " + std::to_string(d.ndim));
    if (d.ndim > 0 && !d.shape) throw py::value_error(name + ": DLPack tensor has a NULL shape");
    t.data = d.data;
    t.byte_offset = d.byte_offset;
    t.dtype = d.dtype;
    t.device = d.device;
    t.shape.assign(d.shape, d.shape + d.ndim);
    if (d.strides) t.strides.assign(d.strides, d.strides + d.ndim);
    return t;
}

// Any Python object as an input tensor. `fb` chooses how objects that are
// neither arrays nor DLPack producers (lists, scalars) are converted.
tensor_arg to_tensor(py::handle obj, const std::string &name, fallback fb) {
    if (py::isinstance<py::array>(obj)) return from_numpy(py::reinterpret_borrow<py::array>(obj), name);
    if (py::hasattr(obj, "__dlpack__")) return from_dlpack(obj, name);
    py::object arr;
    if (PyObject_CheckBuffer(obj.ptr())) {
        arr = numpy().attr("asarray")(obj);
    } else if (fb == fallback::floating) {
        arr = numpy().attr("asarray")(obj, py::arg("dtype") = "float32");
    } else {
        arr = numpy().attr("asarray")(obj);
        if (py::int_(arr.attr("size")).cast<int64_t>() == 0) arr = arr.attr("astype")("int32");
    }
    return from_numpy(py::reinterpret_borrow<py::array>(arr), name);
}


// ---------------------------------------------------------------------------
// Errors.

PyObject *g_llmkit_error = nullptr;

static PyObject *exception_type_for(llmkit_status s) {
    switch (s) {
    case LLMKIT_ERROR_INVALID_ARGUMENT:
    case LLMKIT_ERROR_NULL_POINTER:
    case LLMKIT_ERROR_SHAPE:
    case LLMKIT_ERROR_DTYPE:
    case LLMKIT_ERROR_OUT_OF_RANGE:
    case LLMKIT_ERROR_NON_FINITE:
    case LLMKIT_ERROR_BUFFER_TOO_SMALL: return PyExc_ValueError;
    case LLMKIT_ERROR_OUT_OF_MEMORY: return PyExc_MemoryError;
    default: return g_llmkit_error;  // NO_DEVICE, DEVICE, UNSUPPORTED, IO, FORMAT, INTERNAL
    }
}

// Raises the Python exception for a failed llmkit call; the instance carries
// .status (the status name, e.g. "LLMKIT_ERROR_SHAPE") and .status_code (the int).
void raise_llmkit_error(const llmkit::error &e) {
    PyObject *type = exception_type_for(e.status());
    const char *msg = e.what();
    py::object text =
        py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(msg, Py_ssize_t(std::strlen(msg)), "replace"));
    if (!text) return;  // a Python error is already set
    py::object inst = py::reinterpret_steal<py::object>(PyObject_CallOneArg(type, text.ptr()));
    if (!inst) return;
    py::object status = py::str(llmkit_status_string(e.status()));
    py::object code = py::int_(int(e.status()));
    if (PyObject_SetAttrString(inst.ptr(), "status", status.ptr()) != 0 ||
        PyObject_SetAttrString(inst.ptr(), "status_code", code.ptr()) != 0)
        PyErr_Clear();  // an exception type without a __dict__: raise it without the attributes
    PyErr_SetObject(type, inst.ptr());
}

void translate(std::exception_ptr p) {
    try {
        if (p) std::rethrow_exception(p);
    } catch (const llmkit::error &e) {
        raise_llmkit_error(e);
    }
}


}  // namespace llmkit_py
