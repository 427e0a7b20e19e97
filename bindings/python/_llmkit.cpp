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

namespace py = pybind11;

namespace {

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

py::module_ &numpy() {
    static py::module_ np = py::module_::import("numpy");
    return np;
}

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

tensor_arg from_numpy(py::array a, const std::string &name) {
    py::object dt = a.attr("dtype");
    if (!dt.attr("isnative").cast<bool>()) {  // byte-swapped data: make a native copy
        a = py::array(a.attr("astype")(dt.attr("newbyteorder")("=")));
        dt = a.attr("dtype");
    }
    const std::string kind = py::str(dt.attr("kind"));
    const std::string dtname = py::str(dt.attr("name"));
    const auto itemsize = py::ssize_t(a.itemsize());
    tensor_arg t;
    const auto bits = uint8_t(itemsize * 8);
    if (kind == "f") {
        t.dtype = {LLMKIT_DTYPE_FLOAT, bits, 1};
    } else if (kind == "i") {
        t.dtype = {LLMKIT_DTYPE_INT, bits, 1};
    } else if (kind == "u") {
        t.dtype = {LLMKIT_DTYPE_UINT, bits, 1};
    } else if (kind == "b") {
        t.dtype = {LLMKIT_DTYPE_BOOL, 8, 1};
    } else if (kind == "V" && dtname == "bfloat16" && itemsize == 2) {  // ml_dtypes.bfloat16
        t.dtype = {LLMKIT_DTYPE_BFLOAT, 16, 1};
    } else {
        throw py::value_error(name + ": numpy dtype " + dtname +
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

using seq_ids_arg = std::optional<py::array_t<int64_t, py::array::c_style | py::array::forcecast>>;

// ---------------------------------------------------------------------------
// Errors.

PyObject *g_llmkit_error = nullptr;  // llmkit.LlmkitError, created at import

PyObject *exception_type_for(llmkit_status s) {
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

// ---------------------------------------------------------------------------
// Sampler chain.

// The chain plus a mutex: a chain's calls must not overlap (llmkit.h), and with
// the GIL released two Python threads could otherwise enter it at once. The
// mutex is always taken after the GIL is released and let go before it is
// taken back, so the two locks never deadlock.
struct py_chain {
    explicit py_chain(uint64_t s) : chain(s), seed(s) {}
    llmkit::sampler_chain chain;
    uint64_t seed;
    std::mutex mutex;

    template <typename F>
    auto locked(F &&f) {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(mutex);
        return f();
    }
};

int64_t rows_of(const tensor_arg &logits) { return logits.ndim() >= 2 ? logits.shape[0] : 1; }

py::object first_or_all(const py::array &a, bool single) {
    if (!single) return a;
    return a[py::int_(0)];
}

py::tuple chain_sample(py_chain &c, py::handle logits_obj, const seq_ids_arg &seq_ids, int32_t num_threads,
                       bool want_logprobs, int64_t n_top, int32_t source) {
    if (n_top < 0) throw py::value_error("top_logprobs must be >= 0, got " + std::to_string(n_top));
    const tensor_arg logits = to_tensor(logits_obj, "logits", fallback::floating);
    const bool single = logits.ndim() == 1;
    const int64_t rows = rows_of(logits);
    py::array_t<int32_t> tokens({py::ssize_t(rows)});
    std::optional<py::array_t<float>> chosen;
    std::optional<py::array_t<int32_t>> top_ids;
    std::optional<py::array_t<float>> top_lp;
    if (want_logprobs) chosen.emplace(std::vector<py::ssize_t>{py::ssize_t(rows)});
    if (n_top > 0) {
        top_ids.emplace(std::vector<py::ssize_t>{py::ssize_t(rows), py::ssize_t(n_top)});
        top_lp.emplace(std::vector<py::ssize_t>{py::ssize_t(rows), py::ssize_t(n_top)});
    }
    llmkit::tensor_ref lt = logits.ref();
    llmkit::tensor_ref tt = llmkit::i32(tokens.mutable_data(), {rows});
    std::optional<llmkit::tensor_ref> ct, it, lpt;
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.n_threads = num_threads;
    o.logprob_source = source;
    if (seq_ids) {
        o.seq_ids = seq_ids->data();
        o.n_seq_ids = size_t(seq_ids->size());
    }
    if (chosen) o.chosen_logprobs = ct.emplace(llmkit::f32(chosen->mutable_data(), {rows})).get();
    if (top_ids) {
        o.top_ids = it.emplace(llmkit::i32(top_ids->mutable_data(), {rows, n_top})).get();
        o.top_logprobs = lpt.emplace(llmkit::f32(top_lp->mutable_data(), {rows, n_top})).get();
    }
    c.locked([&] { c.chain.sample(lt, tt, &o); });
    py::object none = py::none();
    return py::make_tuple(first_or_all(tokens, single), chosen ? first_or_all(*chosen, single) : none,
                          top_ids ? first_or_all(*top_ids, single) : none,
                          top_lp ? first_or_all(*top_lp, single) : none);
}

py::array_t<float> chain_apply(py_chain &c, py::handle logits_obj, const seq_ids_arg &seq_ids, int32_t num_threads) {
    const tensor_arg logits = to_tensor(logits_obj, "logits", fallback::floating);
    std::vector<py::ssize_t> shape(logits.shape.begin(), logits.shape.end());
    py::array_t<float> out(shape);
    llmkit::tensor_ref lt = logits.ref();
    llmkit::tensor_ref ot = llmkit::f32(out.mutable_data(), logits.shape);
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.n_threads = num_threads;
    if (seq_ids) {
        o.seq_ids = seq_ids->data();
        o.n_seq_ids = size_t(seq_ids->size());
    }
    c.locked([&] { c.chain.apply(lt, ot, &o); });
    return out;
}

void bind_chain(py::module_ &m) {
    py::class_<py_chain> cls(m, "SamplerChain",
                  "Native sampler chain (private; use llmkit.SamplerChain). Methods mirror "
                  "llmkit_sampler_chain_* in llmkit.h; add_* methods return self.");
    cls.def(py::init<uint64_t>(), py::arg("seed") = 0);
    cls.def_readonly("seed", &py_chain::seed);
    auto ret = py::return_value_policy::reference_internal;
    cls.def("greedy", [](py_chain &c) -> py_chain & { c.locked([&] { c.chain.greedy(); }); return c; }, ret);
    cls.def("dist", [](py_chain &c) -> py_chain & { c.locked([&] { c.chain.dist(); }); return c; }, ret);
    cls.def(
        "temperature", [](py_chain &c, float t) -> py_chain & { c.locked([&] { c.chain.temperature(t); }); return c; },
        ret, py::arg("t"));
    cls.def(
        "dynamic_temperature",
        [](py_chain &c, float t, float delta, float exponent) -> py_chain & {
            c.locked([&] { c.chain.dynamic_temperature(t, delta, exponent); });
            return c;
        },
        ret, py::arg("t"), py::arg("delta"), py::arg("exponent") = 1.0f);
    cls.def(
        "top_k", [](py_chain &c, int32_t k) -> py_chain & { c.locked([&] { c.chain.top_k(k); }); return c; }, ret,
        py::arg("k"));
    cls.def(
        "top_p",
        [](py_chain &c, float p, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.top_p(p, min_keep); });
            return c;
        },
        ret, py::arg("p"), py::arg("min_keep") = 1);
    cls.def(
        "min_p",
        [](py_chain &c, float p, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.min_p(p, min_keep); });
            return c;
        },
        ret, py::arg("p"), py::arg("min_keep") = 1);
    cls.def(
        "typical",
        [](py_chain &c, float p, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.typical(p, min_keep); });
            return c;
        },
        ret, py::arg("p"), py::arg("min_keep") = 1);
    cls.def(
        "top_n_sigma", [](py_chain &c, float n) -> py_chain & { c.locked([&] { c.chain.top_n_sigma(n); }); return c; },
        ret, py::arg("n"));
    cls.def(
        "xtc",
        [](py_chain &c, float probability, float threshold, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.xtc(probability, threshold, min_keep); });
            return c;
        },
        ret, py::arg("probability"), py::arg("threshold"), py::arg("min_keep") = 1);
    cls.def(
        "penalties",
        [](py_chain &c, int32_t last_n, float repeat, float frequency, float presence) -> py_chain & {
            c.locked([&] { c.chain.penalties(last_n, repeat, frequency, presence); });
            return c;
        },
        ret, py::arg("last_n") = 64, py::arg("repeat") = 1.0f, py::arg("frequency") = 0.0f,
        py::arg("presence") = 0.0f);
    cls.def(
        "dry",
        [](py_chain &c, float multiplier, float base, int32_t allowed_length, int32_t last_n,
           const std::vector<int32_t> &breakers) -> py_chain & {
            c.locked([&] { c.chain.dry(multiplier, base, allowed_length, last_n, breakers); });
            return c;
        },
        ret, py::arg("multiplier"), py::arg("base") = 1.75f, py::arg("allowed_length") = 2, py::arg("last_n") = -1,
        py::arg("breakers") = std::vector<int32_t>{});
    cls.def(
        "logit_bias",
        [](py_chain &c, const std::vector<int32_t> &ids, const std::vector<float> &biases) -> py_chain & {
            c.locked([&] { c.chain.logit_bias(ids, biases); });
            return c;
        },
        ret, py::arg("ids"), py::arg("biases"));
    cls.def(
        "banned_tokens",
        [](py_chain &c, const std::vector<int32_t> &ids) -> py_chain & {
            c.locked([&] { c.chain.banned_tokens(ids); });
            return c;
        },
        ret, py::arg("ids"));
    cls.def(
        "mirostat",
        [](py_chain &c, float tau, float eta, int32_t m) -> py_chain & {
            c.locked([&] { c.chain.mirostat(tau, eta, m); });
            return c;
        },
        ret, py::arg("tau") = 5.0f, py::arg("eta") = 0.1f, py::arg("m") = 100);
    cls.def(
        "mirostat_v2",
        [](py_chain &c, float tau, float eta) -> py_chain & {
            c.locked([&] { c.chain.mirostat_v2(tau, eta); });
            return c;
        },
        ret, py::arg("tau") = 5.0f, py::arg("eta") = 0.1f);
    cls.def("__len__", [](py_chain &c) { return c.locked([&] { return c.chain.size(); }); });
    cls.def("describe", [](py_chain &c) { return c.locked([&] { return c.chain.describe(); }); });
    cls.def(
        "accept",
        [](py_chain &c, py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens, int64_t seq_id) {
            std::vector<int32_t> v(tokens.data(), tokens.data() + tokens.size());
            c.locked([&] { c.chain.accept(seq_id, v); });
        },
        py::arg("tokens"), py::arg("seq_id") = 0);
    cls.def(
        "reset", [](py_chain &c, int64_t seq_id) { c.locked([&] { c.chain.reset(seq_id); }); },
        py::arg("seq_id") = -1);
    cls.def("sample", &chain_sample, py::arg("logits"), py::arg("seq_ids") = py::none(), py::arg("num_threads") = 0,
            py::arg("logprobs") = false, py::arg("top_logprobs") = 0, py::arg("logprob_source") = 0,
            "Returns (tokens, logprobs, top_ids, top_logprobs); unrequested parts are None. "
            "For 1-D logits each part is a scalar (or 1-D) instead of having a batch axis.");
    cls.def("apply", &chain_apply, py::arg("logits"), py::arg("seq_ids") = py::none(), py::arg("num_threads") = 0);
}

// ---------------------------------------------------------------------------
// One-call sampling and speculative verification.

py::object sample(py::handle logits_obj, float temperature, int32_t top_k, float top_p, float min_p, uint64_t seed,
                  int32_t num_threads) {
    const tensor_arg logits = to_tensor(logits_obj, "logits", fallback::floating);
    const bool single = logits.ndim() == 1;
    const int64_t rows = rows_of(logits);
    py::array_t<int32_t> tokens({py::ssize_t(rows)});
    llmkit::tensor_ref lt = logits.ref();
    llmkit::tensor_ref tt = llmkit::i32(tokens.mutable_data(), {rows});
    llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    p.n_threads = num_threads;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_sample(lt.get(), tt.get(), &p));
    }
    return first_or_all(tokens, single);
}

py::tuple verify_speculative(py::handle draft_tokens_obj, py::handle draft_probs_obj, py::handle target_probs_obj,
                             uint64_t seed, uint64_t step, const seq_ids_arg &seq_ids, int32_t num_threads) {
    tensor_arg a = to_tensor(draft_tokens_obj, "draft_tokens", fallback::index);
    tensor_arg p = to_tensor(draft_probs_obj, "draft_probs", fallback::floating);
    tensor_arg q = to_tensor(target_probs_obj, "target_probs", fallback::floating);
    // One sequence: draft_tokens [K], draft_probs [K, V], target_probs [K+1, V].
    const bool single = a.ndim() == 1;
    if (single) {
        a.unsqueeze0();
        if (p.ndim() == 2) p.unsqueeze0();
        if (q.ndim() == 2) q.unsqueeze0();
    }
    const int64_t rows = a.dim(0), k = a.ndim() >= 2 ? a.shape[1] : 0;
    py::array_t<int32_t> tokens({py::ssize_t(rows), py::ssize_t(k + 1)});
    py::array_t<int32_t> n_accepted({py::ssize_t(rows)});
    llmkit::tensor_ref at = a.ref(), pt = p.ref(), qt = q.ref();
    llmkit::tensor_ref tt = llmkit::i32(tokens.mutable_data(), {rows, k + 1});
    llmkit::tensor_ref nt = llmkit::i32(n_accepted.mutable_data(), {rows});
    llmkit_speculative_options o = LLMKIT_SPECULATIVE_OPTIONS_INIT;
    o.seed = seed;
    o.step = step;
    o.n_threads = num_threads;
    if (seq_ids) {
        o.seq_ids = seq_ids->data();
        o.n_seq_ids = size_t(seq_ids->size());
    }
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_verify_speculative(at.get(), pt.get(), qt.get(), tt.get(), nt.get(), &o));
    }
    return py::make_tuple(first_or_all(tokens, single), first_or_all(n_accepted, single));
}

// ---------------------------------------------------------------------------
// Tokenizer.
//
// Texts cross as the str object's own UTF-8 buffer (PyUnicode_AsUTF8AndSize:
// no copy for ASCII strings, a cached one otherwise), which stays valid while
// the object is referenced, so encoding runs with the GIL released. A str with
// lone surrogates raises UnicodeEncodeError here; the Python layer repairs it.

struct py_tokenizer {
    llmkit::tokenizer tok;
};

// The UTF-8 bytes of a str, owned by the str.
std::string_view utf8_of(py::handle text, const char *what) {
    if (!PyUnicode_Check(text.ptr()))
        throw py::type_error(std::string(what) + " must be str, got " + type_name(text));
    Py_ssize_t n = 0;
    const char *p = PyUnicode_AsUTF8AndSize(text.ptr(), &n);
    if (!p) throw py::error_already_set();
    return {p, size_t(n)};
}

// The option struct for a call; `names` must outlive it.
llmkit_encode_options encode_options(const std::vector<std::string> &allowed_special, bool allow_all_special,
                                     bool special_as_text, int32_t num_threads, std::vector<const char *> &names) {
    names.clear();
    for (const auto &s : allowed_special) names.push_back(s.c_str());
    llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
    o.allow_all_special = allow_all_special ? 1 : 0;
    o.allowed_special = names.empty() ? nullptr : names.data();
    o.n_allowed_special = names.size();
    o.special_as_text = special_as_text ? 1 : 0;
    o.n_threads = num_threads;
    return o;
}

py::list int_list(const int32_t *ids, size_t n) {
    py::list out(n);
    for (size_t i = 0; i < n; ++i) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) throw py::error_already_set();
        PyList_SET_ITEM(out.ptr(), Py_ssize_t(i), v);  // steals v
    }
    return out;
}

// Token ids from a list or tuple of ints (fast path) or an int32 numpy array
// (the Python layer converts every other input to one).
std::vector<int32_t> ids_of(py::handle obj) {
    std::vector<int32_t> ids;
    if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
        py::object seq = py::reinterpret_steal<py::object>(PySequence_Fast(obj.ptr(), "ids"));
        if (!seq) throw py::error_already_set();
        const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
        PyObject **items = PySequence_Fast_ITEMS(seq.ptr());
        ids.resize(size_t(n));
        for (Py_ssize_t i = 0; i < n; ++i) {
            if (!PyLong_Check(items[i]))
                throw py::type_error("ids[" + std::to_string(i) + "] must be an int, got " + type_name(items[i]));
            int overflow = 0;
            const long long v = PyLong_AsLongLongAndOverflow(items[i], &overflow);
            if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
            if (overflow || v < INT32_MIN || v > INT32_MAX)
                throw py::value_error("ids[" + std::to_string(i) + "] = " + std::string(py::str(items[i])) +
                                      " is not a token id (it does not fit int32)");
            ids[size_t(i)] = int32_t(v);
        }
        return ids;
    }
    auto a = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(obj);
    if (!a) throw py::type_error("ids must be a list of ints or an integer array, got " + type_name(obj));
    ids.assign(a.data(), a.data() + a.size());
    return ids;
}

py::list tokenizer_encode(const py_tokenizer &t, py::handle text, const std::vector<std::string> &allowed_special,
                          bool allow_all_special, bool special_as_text) {
    const std::string_view s = utf8_of(text, "text");
    std::vector<const char *> names;
    const llmkit_encode_options o = encode_options(allowed_special, allow_all_special, special_as_text, 0, names);
    std::vector<int32_t> ids(s.size());  // never more ids than bytes
    size_t n = 0;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_tokenizer_encode(t.tok.get(), s.data(), s.size(), ids.data(), ids.size(), &n, &o));
    }
    return int_list(ids.data(), n);
}

py::list tokenizer_encode_batch(const py_tokenizer &t, py::handle texts_obj, const std::vector<std::string> &allowed_special,
                                bool allow_all_special, bool special_as_text, int32_t num_threads) {
    // Own a reference to every text: the caller's list could change while the GIL is released.
    py::object seq = py::reinterpret_steal<py::object>(PySequence_Fast(texts_obj.ptr(), "texts must be a sequence of str"));
    if (!seq) throw py::error_already_set();
    const size_t n = size_t(PySequence_Fast_GET_SIZE(seq.ptr()));
    std::vector<py::object> keep(n);
    std::vector<const char *> ptrs(n);
    std::vector<size_t> lens(n);
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        keep[i] = py::reinterpret_borrow<py::object>(PySequence_Fast_GET_ITEM(seq.ptr(), Py_ssize_t(i)));
        const std::string what = "texts[" + std::to_string(i) + "]";
        const std::string_view s = utf8_of(keep[i], what.c_str());
        ptrs[i] = s.data();
        lens[i] = s.size();
        total += s.size();
    }
    std::vector<const char *> names;
    const llmkit_encode_options o =
        encode_options(allowed_special, allow_all_special, special_as_text, num_threads, names);
    std::vector<int32_t> ids(total);  // never more ids than bytes
    std::vector<size_t> offsets(n + 1);
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_tokenizer_encode_batch(t.tok.get(), ptrs.data(), lens.data(), n, ids.data(), ids.size(),
                                                    offsets.data(), &o));
    }
    py::list out(n);
    for (size_t i = 0; i < n; ++i) {
        py::list row = int_list(ids.data() + offsets[i], offsets[i + 1] - offsets[i]);
        PyList_SET_ITEM(out.ptr(), Py_ssize_t(i), row.release().ptr());
    }
    return out;
}

py::bytes tokenizer_decode_bytes(const py_tokenizer &t, py::handle ids_obj) {
    const std::vector<int32_t> ids = ids_of(ids_obj);
    std::string bytes;
    {
        py::gil_scoped_release nogil;
        bytes = t.tok.decode(ids);
    }
    return py::bytes(bytes);
}

py::dict tokenizer_special_tokens(const py_tokenizer &t) {
    const int32_t n = t.tok.vocab_size();
    std::vector<int32_t> special;
    {
        py::gil_scoped_release nogil;
        for (int32_t id = 0; id < n; ++id) {
            size_t needed = 0;
            int32_t is_special = 0;
            if (llmkit_tokenizer_id_to_token(t.tok.get(), id, nullptr, 0, &needed, &is_special) == LLMKIT_OK &&
                is_special)
                special.push_back(id);
        }
    }
    py::dict out;
    for (int32_t id : special) {
        const std::string text = t.tok.id_to_token(id);
        out[py::reinterpret_steal<py::object>(
            PyUnicode_DecodeUTF8(text.data(), Py_ssize_t(text.size()), "surrogateescape"))] = id;
    }
    return out;
}

void bind_tokenizer(py::module_ &m) {
    py::class_<py_tokenizer> cls(m, "Tokenizer",
                                 "Native tokenizer (private; use llmkit.Tokenizer). Methods mirror "
                                 "llmkit_tokenizer_* in llmkit.h; encoding and decoding release the GIL.");
    cls.def_static(
        "from_tiktoken",
        [](const std::string &path, const std::string &encoding) {
            py::gil_scoped_release nogil;
            return std::make_unique<py_tokenizer>(py_tokenizer{llmkit::tokenizer::from_tiktoken(path, encoding)});
        },
        py::arg("path"), py::arg("encoding"));
    cls.def("encode", &tokenizer_encode, py::arg("text"), py::arg("allowed_special") = std::vector<std::string>{},
            py::arg("allow_all_special") = false, py::arg("special_as_text") = false);
    cls.def("encode_batch", &tokenizer_encode_batch, py::arg("texts"),
            py::arg("allowed_special") = std::vector<std::string>{}, py::arg("allow_all_special") = false,
            py::arg("special_as_text") = false, py::arg("num_threads") = 0);
    cls.def("decode_bytes", &tokenizer_decode_bytes, py::arg("ids"));
    cls.def_property_readonly("vocab_size", [](const py_tokenizer &t) { return t.tok.vocab_size(); });
    cls.def("token_to_id", [](const py_tokenizer &t, const py::bytes &token) {
        return t.tok.token_to_id(std::string(token));
    }, py::arg("token"));
    cls.def("id_to_token", [](const py_tokenizer &t, int32_t id) { return py::bytes(t.tok.id_to_token(id)); },
            py::arg("id"));
    cls.def("special_tokens", &tokenizer_special_tokens);
}

// ---------------------------------------------------------------------------
// Quantization (GGUF block formats). The Python layer (llmkit/_quant.py) turns
// type names into ggml type ids and keeps the bytes with their type and shape.

std::optional<std::string> quant_type_name(int32_t type) {
    const char *n = llmkit_quant_type_name(type);
    if (!n) return std::nullopt;
    return std::string(n);
}

py::tuple quant_block_size(int32_t type) {
    int64_t elements = 0, bytes = 0;
    llmkit::check(llmkit_quant_block_size(&elements, &bytes, type));
    return py::make_tuple(elements, bytes);
}

size_t quant_row_bytes(int32_t type, int64_t n) {
    size_t out = 0;
    llmkit::check(llmkit_quant_row_bytes(&out, type, n));
    return out;
}

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Quantizes a float32 [rows, n] or [n] array; returns the blocks as uint8.
// The output size comes from the shape; where the shape is one llmkit refuses
// (rank, n not a multiple of the block), the call is made with no buffer so
// that the C library reports the problem in its own words.
py::array_t<uint8_t> quantize(py::handle src_obj, int32_t type, const std::optional<f32_array> &imatrix,
                              int32_t num_threads) {
    const tensor_arg src = to_tensor(src_obj, "array", fallback::floating);
    size_t needed = 0;
    if (src.ndim() == 1 || src.ndim() == 2) {
        size_t row = 0;
        if (llmkit_quant_row_bytes(&row, type, src.shape.back()) == LLMKIT_OK)
            needed = row * size_t(src.ndim() == 2 ? src.shape[0] : 1);
    }
    py::array_t<uint8_t> out({py::ssize_t(needed)});
    llmkit::tensor_ref st = src.ref();
    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.n_threads = num_threads;
    if (imatrix) o.imatrix = imatrix->data();
    size_t written = 0;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_quantize(&written, type, st.get(), needed ? out.mutable_data() : nullptr, needed, &o));
    }
    return out;
}

// Decodes blocks into a new float32 array of the given shape ([rows, n] or [n]).
py::array_t<float> dequantize(int32_t type, py::array_t<uint8_t, py::array::c_style> blocks,
                              const std::vector<int64_t> &shape, int32_t num_threads) {
    std::vector<py::ssize_t> pshape(shape.begin(), shape.end());
    py::array_t<float> out(pshape);
    llmkit::tensor_ref dt = llmkit::f32(out.mutable_data(), shape);
    llmkit_dequantize_options o = LLMKIT_DEQUANTIZE_OPTIONS_INIT;
    o.n_threads = num_threads;
    const void *src = blocks.data();
    const size_t n = size_t(blocks.size());
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_dequantize(type, src, n, dt.get(), &o));
    }
    return out;
}

// ---------------------------------------------------------------------------
// Attention, RoPE, KV-cache sizes. Outputs are allocated by the Python layer
// (llmkit/_attention.py) in the input's own array type, so a bf16 or CUDA torch
// tensor gets a torch tensor back; here every array is just a tensor.

void attention(py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle out_obj, bool causal, int64_t window,
               float softcap, float scale, const std::optional<f32_array> &alibi_slopes, py::handle mask_obj,
               int32_t num_threads) {
    const tensor_arg q = to_tensor(q_obj, "q", fallback::floating);
    const tensor_arg k = to_tensor(k_obj, "k", fallback::floating);
    const tensor_arg v = to_tensor(v_obj, "v", fallback::floating);
    const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
    std::optional<tensor_arg> mask;
    if (!mask_obj.is_none()) mask.emplace(to_tensor(mask_obj, "mask", fallback::floating));
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.causal = causal ? 1 : 0;
    o.window = window;
    o.softcap = softcap;
    o.scale = scale;
    o.n_threads = num_threads;
    if (alibi_slopes) {
        // The C call reads Hq slopes from a bare pointer: the count is checked here.
        const int64_t hq = q.ndim() == 4 ? q.shape[2] : -1;
        if (hq >= 0 && alibi_slopes->ndim() != 1)
            throw py::value_error("alibi_slopes must be 1-D with one slope per query head (" + std::to_string(hq) +
                                  "), got " + std::to_string(alibi_slopes->ndim()) + " dimensions");
        if (hq >= 0 && alibi_slopes->size() != hq)
            throw py::value_error("alibi_slopes has " + std::to_string(alibi_slopes->size()) +
                                  " slopes, but q has " + std::to_string(hq) + " heads");
        o.alibi_slopes = alibi_slopes->data();
    }
    llmkit::tensor_ref qt = q.ref(), kt = k.ref(), vt = v.ref(), ot = out.ref();
    std::optional<llmkit::tensor_ref> mt;
    if (mask) o.mask = mt.emplace(mask->ref()).get();
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_attention(qt.get(), kt.get(), vt.get(), ot.get(), &o));
    }
}

// Rotates x in place (the Python layer copies first unless asked not to).
void rope(py::handle x_obj, py::handle positions_obj, int32_t layout, double theta, int32_t rotary_dims,
          int32_t scaling, double factor, double alpha, double low_freq_factor, double high_freq_factor,
          double original_max_position, double beta_fast, double beta_slow, double attention_factor,
          int32_t num_threads) {
    const tensor_arg x = to_tensor(x_obj, "x", fallback::floating);
    const tensor_arg pos = to_tensor(positions_obj, "positions", fallback::index);
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    o.layout = layout;
    o.theta = theta;
    o.rotary_dims = rotary_dims;
    o.scaling = scaling;
    o.factor = factor;
    o.alpha = alpha;
    o.low_freq_factor = low_freq_factor;
    o.high_freq_factor = high_freq_factor;
    o.original_max_position = original_max_position;
    o.beta_fast = beta_fast;
    o.beta_slow = beta_slow;
    o.attention_factor = attention_factor;
    o.n_threads = num_threads;
    llmkit::tensor_ref xt = x.ref(), pt = pos.ref();
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_rope(xt.get(), pt.get(), &o));
    }
}

uint64_t kv_cache_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t dtype_bytes, int64_t context,
                        int64_t batch) {
    uint64_t out = 0;
    llmkit::check(llmkit_kv_cache_bytes(&out, n_layers, n_kv_heads, head_dim, dtype_bytes, context, batch));
    return out;
}

}  // namespace

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

    bind_chain(m);
    bind_tokenizer(m);
    m.def("sample", &sample, py::arg("logits"), py::arg("temperature") = 1.0f, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f, py::arg("seed") = 0, py::arg("num_threads") = 0);
    m.def("verify_speculative", &verify_speculative, py::arg("draft_tokens"), py::arg("draft_probs"),
          py::arg("target_probs"), py::arg("seed") = 0, py::arg("step") = 0, py::arg("seq_ids") = py::none(),
          py::arg("num_threads") = 0);

    m.def("quant_type_from_name", [](const std::string &name) { return llmkit::quant_type_from_name(name); },
          py::arg("name"));
    m.def("quant_type_name", &quant_type_name, py::arg("type"));
    m.def("quant_block_size", &quant_block_size, py::arg("type"));
    m.def("quant_row_bytes", &quant_row_bytes, py::arg("type"), py::arg("n"));
    m.def("quantize", &quantize, py::arg("array"), py::arg("type"), py::arg("imatrix") = py::none(),
          py::arg("num_threads") = 0);
    m.def("dequantize", &dequantize, py::arg("type"), py::arg("blocks"), py::arg("shape"), py::arg("num_threads") = 0);
    m.def("attention", &attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("causal") = false,
          py::arg("window") = 0, py::arg("softcap") = 0.0f, py::arg("scale") = 0.0f,
          py::arg("alibi_slopes") = py::none(), py::arg("mask") = py::none(), py::arg("num_threads") = 0);
    m.def("rope", &rope, py::arg("x"), py::arg("positions"), py::arg("layout") = 0, py::arg("theta") = 10000.0,
          py::arg("rotary_dims") = 0, py::arg("scaling") = 0, py::arg("factor") = 1.0, py::arg("alpha") = 1.0,
          py::arg("low_freq_factor") = 1.0, py::arg("high_freq_factor") = 4.0,
          py::arg("original_max_position") = 8192.0, py::arg("beta_fast") = 32.0, py::arg("beta_slow") = 1.0,
          py::arg("attention_factor") = 0.0, py::arg("num_threads") = 0);
    m.def("kv_cache_bytes", &kv_cache_bytes, py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"),
          py::arg("dtype_bytes"), py::arg("context"), py::arg("batch") = 1);
}
