// llmkit._llmkit: the tokenizer.
#include <algorithm>

#include "py_common.hpp"

namespace llmkit_py {
namespace {

// ---------------------------------------------------------------------------
// Tokenizer.
//
// Texts cross as the str object's own UTF-8 buffer (PyUnicode_AsUTF8AndSize:
// no copy for ASCII strings, a cached one otherwise), which stays valid while
// the object is referenced, so encoding runs with the GIL released. A str with
// lone surrogates raises UnicodeEncodeError here; the Python layer repairs it.

// The Python int of each token id, made the first time an encode returns
// that id and kept (one reference) while the tokenizer lives, so that a list
// of ids takes a reference to an existing int per id (CPython caches only
// -5..256) instead of allocating one: for o200k on a 1.2 MB text, 280k
// PyLong_FromLong (and as many frees when the list goes) were a fifth of
// encode()'s time. Memory: a pointer per id of the vocabulary, made on the
// first encode (o200k: 200k ids, 1.6 MB), and 32 bytes (a one-digit int in
// pymalloc) per distinct id ever returned: at most 6.4 MB more for o200k,
// ~1 MB after a 1.2 MB text in 60 languages. Ids at or above k_max_ids (or
// the vocabulary) are made afresh as before.
//
// Thread-safety: every use, the first (which sizes the table) included, runs
// with the GIL held (the encodes release it only around the C call, before
// the list is built), and nothing between reading a slot and filling it can
// release the GIL (PyLong_FromLong runs no Python code), so two threads never
// fill or size the table at once. (A free-threaded CPython build would need
// a lock here.)
class id_ints {
public:
    static constexpr int32_t k_max_ids = int32_t(1) << 20;  // 8 MiB of pointers at most

    id_ints() = default;
    id_ints(id_ints &&o) noexcept : objs_(std::move(o.objs_)) {}
    id_ints(const id_ints &) = delete;
    id_ints &operator=(const id_ints &) = delete;
    id_ints &operator=(id_ints &&) = delete;
    // Destroyed with the GIL held (pybind11's dealloc) whenever the table was
    // used; a tokenizer that never encoded holds an empty table.
    ~id_ints() {
        for (PyObject *o : objs_) Py_XDECREF(o);
    }

    // A list of the ids; the GIL must be held. vocab: the tokenizer's vocab_size().
    py::list list(const int32_t *ids, size_t n, int32_t vocab) {
        if (objs_.empty() && n > 0) objs_.assign(size_t(std::clamp(vocab, int32_t(1), k_max_ids)), nullptr);
        py::list out(n);
        PyObject **objs = objs_.data();
        const uint32_t size = uint32_t(objs_.size());
        for (size_t i = 0; i < n; ++i) {
#if defined(__GNUC__)
            // The table (1.6 MB for o200k) and the ints a long text returns
            // (~1 MB) outgrow L2, so each id waits on up to two misses: start
            // the table slot 16 ids ahead and the int object 8 ids ahead.
            if (i + 16 < n && uint32_t(ids[i + 16]) < size) __builtin_prefetch(objs + uint32_t(ids[i + 16]));
            if (i + 8 < n && uint32_t(ids[i + 8]) < size) __builtin_prefetch(objs[uint32_t(ids[i + 8])], 1);
#endif
            const uint32_t id = uint32_t(ids[i]);  // a negative id (never from an encoder) wraps past size
            PyObject *v;
            if (id < size) {
                v = objs[id];
                if (!v) {
                    v = PyLong_FromLong(long(id));
                    if (!v) throw py::error_already_set();
                    objs[id] = v;
                }
                Py_INCREF(v);
            } else {
                v = PyLong_FromLong(ids[i]);
                if (!v) throw py::error_already_set();
            }
            PyList_SET_ITEM(out.ptr(), Py_ssize_t(i), v);  // steals the reference
        }
        return out;
    }

private:
    std::vector<PyObject *> objs_;  // id -> its int (a reference owned here) or null
};

struct py_tokenizer {
    llmkit::tokenizer tok;
    mutable id_ints ints{};  // used with the GIL held (see id_ints)
    // The ids as a list of Python ints; the GIL must be held.
    py::list id_list(const int32_t *ids, size_t n) const { return ints.list(ids, n, tok.vocab_size()); }
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
                                     bool special_as_text, int32_t num_threads, std::vector<const char *> &names,
                                     bool add_special_tokens = false) {
    names.clear();
    for (const auto &s : allowed_special) names.push_back(s.c_str());
    llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
    o.allow_all_special = allow_all_special ? 1 : 0;
    o.allowed_special = names.empty() ? nullptr : names.data();
    o.n_allowed_special = names.size();
    o.special_as_text = special_as_text ? 1 : 0;
    o.n_threads = num_threads;
    o.add_special_tokens = add_special_tokens ? 1 : 0;
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
                          bool allow_all_special, bool special_as_text, bool add_special_tokens) {
    const std::string_view s = utf8_of(text, "text");
    std::vector<const char *> names;
    const llmkit_encode_options o =
        encode_options(allowed_special, allow_all_special, special_as_text, 0, names, add_special_tokens);
    // Enough for tiktoken (never more ids than bytes); other formats may need
    // the retry. Left uninitialised: the encoder writes the first n, and the
    // pages past them are never touched (zero-filling one int32 per byte of a
    // megabyte text cost about a millisecond of page faults per call).
    size_t capacity = s.size() + 8, n = 0;
    std::unique_ptr<int32_t[]> ids(new int32_t[capacity]);
    {
        py::gil_scoped_release nogil;
        llmkit_status st = llmkit_tokenizer_encode(t.tok.get(), s.data(), s.size(), ids.get(), capacity, &n, &o);
        if (st == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            ids.reset(new int32_t[capacity = n]);
            st = llmkit_tokenizer_encode(t.tok.get(), s.data(), s.size(), ids.get(), capacity, &n, &o);
        }
        llmkit::check(st);
    }
    return t.id_list(ids.get(), n);
}

py::list tokenizer_encode_batch(const py_tokenizer &t, py::handle texts_obj, const std::vector<std::string> &allowed_special,
                                bool allow_all_special, bool special_as_text, int32_t num_threads,
                                bool add_special_tokens) {
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
        encode_options(allowed_special, allow_all_special, special_as_text, num_threads, names, add_special_tokens);
    std::vector<int32_t> ids(total + 8 * n);  // enough for tiktoken; other formats may need the retry
    std::vector<size_t> offsets(n + 1);
    {
        py::gil_scoped_release nogil;
        llmkit_status st = llmkit_tokenizer_encode_batch(t.tok.get(), ptrs.data(), lens.data(), n, ids.data(),
                                                         ids.size(), offsets.data(), &o);
        if (st == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            ids.resize(offsets[n]);
            st = llmkit_tokenizer_encode_batch(t.tok.get(), ptrs.data(), lens.data(), n, ids.data(), ids.size(),
                                               offsets.data(), &o);
        }
        llmkit::check(st);
    }
    py::list out(n);
    for (size_t i = 0; i < n; ++i) {
        py::list row = t.id_list(ids.data() + offsets[i], offsets[i + 1] - offsets[i]);
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

// ---------------------------------------------------------------------------
// Streaming decoder (toktrain). It keeps a reference to its tokenizer's Python
// object, so the tokenizer outlives it as the C API requires.

struct py_stream_decoder {
    py::object owner;  // the py_tokenizer
    llmkit::tokenizer_decoder dec;
};

py::str utf8_str(const std::string &text) {
    // The decoder's output is always valid UTF-8 (invalid bytes became U+FFFD).
    return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(text.data(), Py_ssize_t(text.size()), "strict"));
}

// ---------------------------------------------------------------------------
// Offsets and BPE training (toktrain).

// char_of[b]: the index of the character byte b of UTF-8 text s belongs to;
// char_of[size] = the number of characters.
std::vector<int64_t> char_index(std::string_view s) {
    std::vector<int64_t> char_of(s.size() + 1);
    int64_t chars = -1;
    for (size_t b = 0; b < s.size(); ++b) {
        if ((static_cast<unsigned char>(s[b]) & 0xC0) != 0x80) ++chars;
        char_of[b] = chars;
    }
    char_of[s.size()] = chars + 1;
    return char_of;
}

// One [start, end) byte span (in place) as a character span: a span cut inside
// a character widens to the whole character, an empty span stays empty.
void to_char_span(int64_t *span, const std::vector<int64_t> &char_of) {
    const int64_t start = char_of[size_t(span[0])];
    span[1] = span[1] > span[0] ? char_of[size_t(span[1] - 1)] + 1 : start;
    span[0] = start;
}

// (ids, spans) of llmkit_tokenizer_encode_with_offsets; chars: spans in characters.
py::tuple tokenizer_encode_with_offsets(const py_tokenizer &t, py::handle text,
                                        const std::vector<std::string> &allowed_special, bool allow_all_special,
                                        bool special_as_text, bool add_special_tokens, bool chars) {
    const std::string_view s = utf8_of(text, "text");
    std::vector<const char *> names;
    const llmkit_encode_options o =
        encode_options(allowed_special, allow_all_special, special_as_text, 0, names, add_special_tokens);
    // Byte-level BPE never gives more ids than bytes; SentencePiece may (BOS,
    // EOS, a normalizer that expands), and then the call says how many.
    std::vector<int32_t> ids(s.size() + 8);
    std::vector<size_t> offsets(2 * ids.size());
    size_t n = 0;
    llmkit_status status;
    {
        py::gil_scoped_release nogil;
        status = llmkit_tokenizer_encode_with_offsets(t.tok.get(), s.data(), s.size(), ids.data(), offsets.data(),
                                                      ids.size(), &n, &o);
        if (status == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            ids.resize(n);
            offsets.resize(2 * n);
            status = llmkit_tokenizer_encode_with_offsets(t.tok.get(), s.data(), s.size(), ids.data(), offsets.data(),
                                                          ids.size(), &n, &o);
        }
    }
    llmkit::check(status);
    py::array_t<int64_t> spans({py::ssize_t(n), py::ssize_t(2)});
    int64_t *out = spans.mutable_data();
    for (size_t i = 0; i < 2 * n; ++i) out[i] = int64_t(offsets[i]);
    if (chars) {
        const std::vector<int64_t> char_of = char_index(s);
        for (size_t i = 0; i < n; ++i) to_char_span(out + 2 * i, char_of);
    }
    return py::make_tuple(t.id_list(ids.data(), n), spans);
}

// (ids, type_ids, sequence_ids, spans or None) of llmkit_tokenizer_encode_pair.
py::tuple tokenizer_encode_pair(const py_tokenizer &t, py::handle text_a, py::handle text_b,
                                const std::vector<std::string> &allowed_special, bool allow_all_special,
                                bool special_as_text, bool add_special_tokens, bool with_offsets, bool chars) {
    const std::string_view a = utf8_of(text_a, "text_a"), b = utf8_of(text_b, "text_b");
    std::vector<const char *> names;
    const llmkit_encode_options o =
        encode_options(allowed_special, allow_all_special, special_as_text, 0, names, add_special_tokens);
    llmkit::tokenizer::pair_encoding e;
    {
        py::gil_scoped_release nogil;
        e = t.tok.encode_pair(std::string(a), std::string(b), with_offsets, &o);  // copies: the face takes strings
    }
    const size_t n = e.ids.size();
    py::list sequence_ids(n);
    for (size_t i = 0; i < n; ++i)
        sequence_ids[i] = e.sequence_ids[i] < 0 ? py::object(py::none()) : py::object(py::int_(e.sequence_ids[i]));
    py::object spans = py::none();
    if (with_offsets) {
        py::array_t<int64_t> arr({py::ssize_t(n), py::ssize_t(2)});
        int64_t *out = arr.mutable_data();
        for (size_t i = 0; i < 2 * n; ++i) out[i] = int64_t(e.offsets[i]);
        if (chars) {  // each span in its own text's characters
            const std::vector<int64_t> char_of[2] = {char_index(a), char_index(b)};
            for (size_t i = 0; i < n; ++i) {
                const int32_t q = e.sequence_ids[i];
                if (q >= 0) to_char_span(out + 2 * i, char_of[q]);  // added tokens: the empty span at 0 either way
            }
        }
        spans = arr;
    }
    return py::make_tuple(t.id_list(e.ids.data(), n), int_list(e.type_ids.data(), n), sequence_ids, spans);
}

// The Python progress callable, called with the GIL from the training thread.
// An exception it raises cancels the training and is re-raised afterwards.
struct train_progress {
    py::object fn;
    py::object type, value, trace;  // of an exception it raised
};

int call_progress(void *user, size_t done, size_t total) {
    auto *p = static_cast<train_progress *>(user);
    py::gil_scoped_acquire gil;
    try {
        py::object r = p->fn(done, total);
        return r.is(py::bool_(false)) ? 1 : 0;  // only an explicit False cancels
    } catch (py::error_already_set &e) {
        p->type = e.type();
        p->value = e.value();
        p->trace = e.trace();
        return 1;
    }
}

std::unique_ptr<py_tokenizer> train_bpe(py::handle texts_obj, size_t vocab_size, const std::string &pattern,
                                        const std::vector<std::string> &special_tokens, py::object progress,
                                        int32_t num_threads) {
    py::object seq = py::reinterpret_steal<py::object>(PySequence_Fast(texts_obj.ptr(), "texts must be a sequence"));
    if (!seq) throw py::error_already_set();
    const size_t n = size_t(PySequence_Fast_GET_SIZE(seq.ptr()));
    std::vector<py::object> keep(n);
    std::vector<std::string_view> views(n);
    for (size_t i = 0; i < n; ++i) {
        keep[i] = py::reinterpret_borrow<py::object>(PySequence_Fast_GET_ITEM(seq.ptr(), Py_ssize_t(i)));
        if (PyBytes_Check(keep[i].ptr())) {
            views[i] = std::string_view(PyBytes_AS_STRING(keep[i].ptr()), size_t(PyBytes_GET_SIZE(keep[i].ptr())));
        } else {
            const std::string what = "texts[" + std::to_string(i) + "]";
            views[i] = utf8_of(keep[i], what.c_str());
        }
    }
    std::vector<const char *> names;
    for (const auto &s : special_tokens) names.push_back(s.c_str());
    train_progress state{progress, py::none(), py::none(), py::none()};
    llmkit_bpe_train_options o = LLMKIT_BPE_TRAIN_OPTIONS_INIT;
    o.vocab_size = vocab_size;
    o.pattern = pattern.c_str();
    o.special_tokens = names.empty() ? nullptr : names.data();
    o.n_special_tokens = names.size();
    o.n_threads = num_threads;
    if (!progress.is_none()) {
        o.progress = call_progress;
        o.user_data = &state;
    }
    std::unique_ptr<py_tokenizer> out;
    try {
        py::gil_scoped_release nogil;
        out = std::make_unique<py_tokenizer>(py_tokenizer{llmkit::tokenizer::train_bpe(views, o)});
    } catch (...) {
        if (!state.type.is_none()) {
            PyErr_Restore(state.type.release().ptr(), state.value.release().ptr(),
                          state.trace.is_none() ? nullptr : state.trace.release().ptr());
            throw py::error_already_set();
        }
        throw;
    }
    return out;
}

}  // namespace

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
    cls.def_static(
        "from_file",
        [](const std::string &path, const std::string &encoding) {
            py::gil_scoped_release nogil;
            return std::make_unique<py_tokenizer>(py_tokenizer{llmkit::tokenizer::from_file(path, encoding)});
        },
        py::arg("path"), py::arg("encoding") = std::string());
    cls.def_static(
        "from_memory",
        [](const py::bytes &data, const std::string &encoding) {
            const std::string_view bytes = data;  // the bytes object outlives the call
            py::gil_scoped_release nogil;
            return std::make_unique<py_tokenizer>(py_tokenizer{llmkit::tokenizer::from_memory(bytes, encoding)});
        },
        py::arg("data"), py::arg("encoding") = std::string());
    cls.def("encode", &tokenizer_encode, py::arg("text"), py::arg("allowed_special") = std::vector<std::string>{},
            py::arg("allow_all_special") = false, py::arg("special_as_text") = false,
            py::arg("add_special_tokens") = false);
    cls.def("encode_batch", &tokenizer_encode_batch, py::arg("texts"),
            py::arg("allowed_special") = std::vector<std::string>{}, py::arg("allow_all_special") = false,
            py::arg("special_as_text") = false, py::arg("num_threads") = 0, py::arg("add_special_tokens") = false);
    cls.def("decode_bytes", &tokenizer_decode_bytes, py::arg("ids"));
    cls.def_property_readonly("vocab_size", [](const py_tokenizer &t) { return t.tok.vocab_size(); });
    cls.def("token_to_id", [](const py_tokenizer &t, const py::bytes &token) {
        return t.tok.token_to_id(std::string(token));
    }, py::arg("token"));
    cls.def("id_to_token", [](const py_tokenizer &t, int32_t id) { return py::bytes(t.tok.id_to_token(id)); },
            py::arg("id"));
    cls.def("special_tokens", &tokenizer_special_tokens);

    // Offsets, training and saving (toktrain).
    cls.def("encode_with_offsets", &tokenizer_encode_with_offsets, py::arg("text"),
            py::arg("allowed_special") = std::vector<std::string>{}, py::arg("allow_all_special") = false,
            py::arg("special_as_text") = false, py::arg("add_special_tokens") = false, py::arg("chars") = false);
    cls.def("encode_pair", &tokenizer_encode_pair, py::arg("text_a"), py::arg("text_b"),
            py::arg("allowed_special") = std::vector<std::string>{}, py::arg("allow_all_special") = false,
            py::arg("special_as_text") = false, py::arg("add_special_tokens") = false,
            py::arg("with_offsets") = false, py::arg("chars") = false);
    cls.def_static(
        "from_ranks",
        [](const py::bytes &ranks, const std::string &pattern,
           const std::vector<std::pair<std::string, int32_t>> &special_tokens) {
            const std::string_view bytes = ranks;  // the bytes object outlives the call
            py::gil_scoped_release nogil;
            return std::make_unique<py_tokenizer>(
                py_tokenizer{llmkit::tokenizer::from_ranks(bytes, pattern, special_tokens)});
        },
        py::arg("ranks"), py::arg("pattern"), py::arg("special_tokens"));
    cls.def("to_tiktoken", [](const py_tokenizer &t) {
        std::string text;
        {
            py::gil_scoped_release nogil;
            text = t.tok.to_tiktoken();
        }
        return py::bytes(text);
    });
    cls.def("pattern", [](const py_tokenizer &t) { return t.tok.pattern(); });
    cls.def("save_tiktoken", [](const py_tokenizer &t, const std::string &path) {
        py::gil_scoped_release nogil;
        t.tok.save_tiktoken(path);
    }, py::arg("path"));
    cls.def("save_tokenizer_json", [](const py_tokenizer &t, const std::string &path) {
        py::gil_scoped_release nogil;
        t.tok.save_tokenizer_json(path);
    }, py::arg("path"));
    m.def("train_bpe", &train_bpe, py::arg("texts"), py::arg("vocab_size"), py::arg("pattern"),
          py::arg("special_tokens"), py::arg("progress"), py::arg("num_threads"));
    // Streaming decoder (toktrain).
    py::class_<py_stream_decoder> dec(m, "TokenizerDecoder",
                                      "Native streaming decoder (private; use llmkit.Tokenizer.decoder()).");
    cls.def("decoder", [](py::object self) {
        const auto &t = self.cast<const py_tokenizer &>();
        return std::make_unique<py_stream_decoder>(py_stream_decoder{self, llmkit::tokenizer_decoder(t.tok)});
    });
    dec.def("feed", [](py_stream_decoder &d, py::handle ids_obj) {
        // The GIL stays held: it is short, and it serialises threads that share one decoder.
        return utf8_str(d.dec.feed(ids_of(ids_obj)));
    }, py::arg("ids"));
    dec.def("flush", [](py_stream_decoder &d) { return utf8_str(d.dec.flush()); });
}


}  // namespace llmkit_py
