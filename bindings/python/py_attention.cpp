// llmkit._llmkit: attention, RoPE and KV-cache sizes.
#include <mutex>
#include <shared_mutex>

#include "py_common.hpp"

namespace llmkit_py {
namespace {

// ---------------------------------------------------------------------------
// Attention, RoPE, KV-cache sizes. Outputs are allocated by the Python layer
// (llmkit/_attention.py) in the input's own array type, so a bf16 or CUDA torch
// tensor gets a torch tensor back; here every array is just a tensor.

// q's query heads: axis `rank - 2` of a q of that rank ([B, S, Hq, D] or
// packed [T, Hq, D]), else -1.
int64_t query_heads(const tensor_arg &q, int rank = 4) { return q.ndim() == rank ? q.shape[size_t(rank - 2)] : -1; }

// A per-query-head array (ALiBi slopes, sinks) as the bare pointer the C call
// reads Hq values from, so its length is checked here against q's heads.
// hq < 0: q's rank is wrong, which the C call names.
const float *per_head(const std::optional<f32_array> &a, const char *name, int64_t hq) {
    if (!a) return nullptr;
    if (a->ndim() != 1 || (hq >= 0 && a->size() != hq))
        throw py::value_error(std::string(name) + " must be 1-D with one value per query head: q has " +
                              std::to_string(hq) + " heads, got " + std::to_string(a->size()) + " values in " +
                              std::to_string(a->ndim()) + " dimensions");
    return a->data();
}

// An optional tensor (None: not given; an output not wanted) and the reference C reads it through.
struct optional_tensor {
    std::optional<tensor_arg> arg;
    std::optional<llmkit::tensor_ref> ref;
    optional_tensor(py::handle obj, const char *name, fallback how = fallback::floating) {
        if (obj.is_none()) return;
        arg.emplace(to_tensor(obj, name, how));
        ref.emplace(arg->ref());
    }
    const llmkit_tensor *get() const { return ref ? ref->get() : nullptr; }
};

// (out, lse) merged with (other_out, other_lse) in place.
void attention_merge(py::handle out_obj, py::handle lse_obj, py::handle other_out_obj, py::handle other_lse_obj) {
    const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
    const tensor_arg lse = to_tensor(lse_obj, "lse", fallback::floating);
    const tensor_arg other_out = to_tensor(other_out_obj, "other_out", fallback::floating);
    const tensor_arg other_lse = to_tensor(other_lse_obj, "other_lse", fallback::floating);
    llmkit::tensor_ref ot = out.ref(), lt = lse.ref(), oot = other_out.ref(), olt = other_lse.ref();
    py::gil_scoped_release nogil;
    llmkit::check(llmkit_attention_merge(ot.get(), lt.get(), oot.get(), olt.get()));
}

// The options llmkit_attention and llmkit_attention_varlen share; hq: q's heads (query_heads).
llmkit_attention_options attention_options(bool causal, int64_t window, float softcap, float scale,
                                           const std::optional<f32_array> &alibi_slopes,
                                           const std::optional<f32_array> &sinks, int32_t num_threads, int64_t hq) {
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.causal = causal ? 1 : 0;
    o.window = window;
    o.softcap = softcap;
    o.scale = scale;
    o.n_threads = num_threads;
    o.alibi_slopes = per_head(alibi_slopes, "alibi_slopes", hq);
    o.sinks = per_head(sinks, "sinks", hq);
    return o;
}

void attention(py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle out_obj, bool causal, int64_t window,
               float softcap, float scale, const std::optional<f32_array> &alibi_slopes, py::handle mask_obj,
               int32_t num_threads, const std::optional<f32_array> &sinks, py::handle lse_obj) {
    const tensor_arg q = to_tensor(q_obj, "q", fallback::floating);
    const tensor_arg k = to_tensor(k_obj, "k", fallback::floating);
    const tensor_arg v = to_tensor(v_obj, "v", fallback::floating);
    const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
    std::optional<tensor_arg> mask;
    if (!mask_obj.is_none()) mask.emplace(to_tensor(mask_obj, "mask", fallback::floating));
    llmkit_attention_options o =
        attention_options(causal, window, softcap, scale, alibi_slopes, sinks, num_threads, query_heads(q));
    llmkit::tensor_ref qt = q.ref(), kt = k.ref(), vt = v.ref(), ot = out.ref();
    std::optional<llmkit::tensor_ref> mt;
    if (mask) o.mask = mt.emplace(mask->ref()).get();
    const optional_tensor lse(lse_obj, "lse");
    o.lse = lse.get();
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_attention(qt.get(), kt.get(), vt.get(), ot.get(), &o));
    }
}

// Packed sequences (llmkit_attention_varlen): q [Tq, Hq, D], k and v [Tk, Hkv, D], B + 1 offsets each.
void attention_varlen(py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle cu_q_obj, py::handle cu_k_obj,
                      py::handle out_obj, bool causal, int64_t window, float softcap, float scale,
                      const std::optional<f32_array> &alibi_slopes, int32_t num_threads,
                      const std::optional<f32_array> &sinks, py::handle lse_obj) {
    const tensor_arg q = to_tensor(q_obj, "q", fallback::floating);
    const tensor_arg k = to_tensor(k_obj, "k", fallback::floating);
    const tensor_arg v = to_tensor(v_obj, "v", fallback::floating);
    const tensor_arg cu_q = to_tensor(cu_q_obj, "cu_seqlens_q", fallback::index);
    const tensor_arg cu_k = to_tensor(cu_k_obj, "cu_seqlens_k", fallback::index);
    const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
    llmkit_attention_options o =
        attention_options(causal, window, softcap, scale, alibi_slopes, sinks, num_threads, query_heads(q, 3));
    const optional_tensor lse(lse_obj, "lse");
    o.lse = lse.get();
    llmkit::tensor_ref qt = q.ref(), kt = k.ref(), vt = v.ref(), cqt = cu_q.ref(), ckt = cu_k.ref(), ot = out.ref();
    py::gil_scoped_release nogil;
    llmkit::check(llmkit_attention_varlen(qt.get(), kt.get(), vt.get(), cqt.get(), ckt.get(), ot.get(), &o));
}

// llmkit_rope_options and the frequency factors it points to. C reads
// rotary_dims / 2 factors through a bare pointer, so their count is checked
// here against the head_dim they will rotate.
struct rope_arg {
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    std::vector<float> factors;
    bool has_factors = false;

    void set_factors(const py::handle &values) {
        const f32_array a = f32_array::ensure(values);
        if (!a || a.ndim() != 1) throw py::value_error("frequency_factors must be a 1-D sequence of numbers");
        factors.assign(a.data(), a.data() + a.size());
        has_factors = true;
    }
    // head_dim < 0: x is not 4-D, which C refuses before it reads a factor.
    const llmkit_rope_options *get(int64_t head_dim) {
        o.frequency_factors = nullptr;
        if (!has_factors) return &o;
        const int64_t n = o.rotary_dims > 0 ? o.rotary_dims : head_dim;
        if (head_dim >= 0 && int64_t(factors.size()) != n / 2)
            throw py::value_error("frequency_factors holds " + std::to_string(factors.size()) +
                                  " values; it needs one per rotated pair, " + std::to_string(n / 2) +
                                  " (rotary dims " + std::to_string(n) + ")");
        o.frequency_factors = factors.data();
        return &o;
    }
};

// Rotates x in place, or into out (the Python layer's default: x unchanged).
void rope(py::handle x_obj, py::handle positions_obj, int32_t layout, double theta, int32_t rotary_dims,
          int32_t scaling, double factor, double alpha, double low_freq_factor, double high_freq_factor,
          double original_max_position, double beta_fast, double beta_slow, double attention_factor,
          int32_t num_threads, const py::object &frequency_factors, const py::object &out_obj,
          const std::array<int32_t, 3> &mrope_section, int32_t mrope_interleaved) {
    const tensor_arg x = to_tensor(x_obj, "x", fallback::floating);
    const tensor_arg pos = to_tensor(positions_obj, "positions", fallback::index);
    std::optional<tensor_arg> out;
    if (!out_obj.is_none()) out.emplace(to_tensor(out_obj, "out", fallback::floating));
    rope_arg r;
    llmkit_rope_options &o = r.o;
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
    for (int i = 0; i < 3; ++i) o.mrope_section[i] = mrope_section[size_t(i)];
    o.mrope_interleaved = mrope_interleaved;
    if (!frequency_factors.is_none()) r.set_factors(frequency_factors);
    // x's head_dim (a wrong rank is llmkit_rope's to name).
    const llmkit_rope_options *c = r.get(x.ndim() == 4 ? x.shape[3] : -1);
    llmkit::tensor_ref xt = x.ref(), pt = pos.ref();
    std::optional<llmkit::tensor_ref> ot;
    if (out) ot.emplace(out->ref());
    {
        py::gil_scoped_release nogil;
        llmkit::check(ot ? llmkit_rope_into(xt.get(), pt.get(), ot->get(), c) : llmkit_rope(xt.get(), pt.get(), c));
    }
}

uint64_t kv_cache_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t v_head_dim,
                        int64_t dtype_bytes, int64_t context, int64_t batch) {
    uint64_t out = 0;
    llmkit::check(llmkit_kv_cache_bytes_dv(&out, n_layers, n_kv_heads, head_dim, v_head_dim, dtype_bytes, context, batch));
    return out;
}

// ---------------------------------------------------------------------------
// KV caches. The Python classes in llmkit/_attention.py wrap these; outputs
// are allocated there in q's array type and passed in.

// The caches' fused RoPE: None, or a dict of llmkit_rope_options' fields
// (the Python layer's _rope_native_args: layout and scaling as codes).
std::optional<rope_arg> rope_options_of(const py::object &rope) {
    if (rope.is_none()) return std::nullopt;
    const py::dict d = rope.cast<py::dict>();
    rope_arg r;
    llmkit_rope_options &o = r.o;
    for (const auto &item : d) {
        const std::string key = py::str(item.first);
        const py::handle v = item.second;
        if (key == "layout") o.layout = v.cast<int32_t>();
        else if (key == "theta") o.theta = v.cast<double>();
        else if (key == "rotary_dims") o.rotary_dims = v.cast<int32_t>();
        else if (key == "scaling") o.scaling = v.cast<int32_t>();
        else if (key == "factor") o.factor = v.cast<double>();
        else if (key == "alpha") o.alpha = v.cast<double>();
        else if (key == "low_freq_factor") o.low_freq_factor = v.cast<double>();
        else if (key == "high_freq_factor") o.high_freq_factor = v.cast<double>();
        else if (key == "original_max_position") o.original_max_position = v.cast<double>();
        else if (key == "beta_fast") o.beta_fast = v.cast<double>();
        else if (key == "beta_slow") o.beta_slow = v.cast<double>();
        else if (key == "attention_factor") o.attention_factor = v.cast<double>();
        else if (key == "frequency_factors") r.set_factors(v);
        else if (key == "mrope_section") {
            const auto sec = v.cast<std::array<int32_t, 3>>();
            for (int i = 0; i < 3; ++i) o.mrope_section[i] = sec[size_t(i)];
        } else if (key == "mrope_interleaved") o.mrope_interleaved = v.cast<int32_t>();
        else throw py::value_error("rope: unknown field '" + key + "'");
    }
    return r;
}

// The keyword arguments of both caches' attention calls, in their order.
struct kv_options {
    bool causal = true;
    int64_t window = 0;
    float softcap = 0.0f, scale = 0.0f;
    std::optional<f32_array> alibi_slopes, sinks;
    int32_t num_threads = 0;
    int64_t split_keys = 0;
    std::optional<rope_arg> rope;
};

// The C options over the arrays in o (which must outlive them); checks that
// the per-head arrays hold one value per query head, since C reads bare pointers.
llmkit_kv_attention_options kv_c_options(kv_options &o, const tensor_arg &q, int64_t head_dim,
                                         const optional_tensor &cu_seqlens_q) {
    llmkit_kv_attention_options c = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    const int rank = cu_seqlens_q.get() ? 3 : 4;  // packed queries [Tq, Hq, D]
    c.causal = o.causal ? 1 : 0;
    c.window = o.window;
    c.softcap = o.softcap;
    c.scale = o.scale;
    c.n_threads = o.num_threads;
    c.split_keys = o.split_keys;
    c.alibi_slopes = per_head(o.alibi_slopes, "alibi_slopes", query_heads(q, rank));
    c.sinks = per_head(o.sinks, "sinks", query_heads(q, rank));
    c.rope = o.rope ? o.rope->get(head_dim) : nullptr;
    c.cu_seqlens_q = cu_seqlens_q.get();
    return c;
}

// Both caches' C appends, by handle type (v may be NULL: see py_cache::append).
llmkit_status append_c(llmkit_kv_cache *c, int32_t layer, int32_t seq, const llmkit_tensor *k, const llmkit_tensor *v) {
    return llmkit_kv_cache_append(c, layer, seq, k, v);
}
llmkit_status append_c(llmkit_paged_kv_cache *c, int32_t layer, int32_t seq, const llmkit_tensor *k,
                       const llmkit_tensor *v) {
    return llmkit_paged_kv_cache_append(c, layer, seq, k, v);
}
llmkit_status append_rope_c(llmkit_kv_cache *c, int32_t layer, int32_t seq, const llmkit_tensor *k,
                            const llmkit_tensor *v, const llmkit_rope_options *rope) {
    return llmkit_kv_cache_append_rope(c, layer, seq, k, v, rope);
}
llmkit_status append_rope_c(llmkit_paged_kv_cache *c, int32_t layer, int32_t seq, const llmkit_tensor *k,
                            const llmkit_tensor *v, const llmkit_rope_options *rope) {
    return llmkit_paged_kv_cache_append_rope(c, layer, seq, k, v, rope);
}

// One class template for both caches: C is llmkit::kv_cache or llmkit::paged_kv_cache.
//
// The C caches let several attention calls run at once, but an append, new,
// fork or free must run alone (they move lengths, block tables, the free list
// and reference counts). The C API leaves that to its caller; from Python,
// where every call releases the GIL, threads get it enforced here: changes
// take `lock` exclusively, reads share it. The lock is taken without the GIL,
// and no holder needs the GIL, so a wait cannot deadlock.
template <typename C>
struct py_cache {
    py_cache(C c, int64_t dim) : cache(std::move(c)), head_dim(dim) {}

    C cache;
    int64_t head_dim;  // the count of RoPE's frequency factors depends on it
    mutable std::shared_mutex lock;

    // Runs f (a call into the C cache, no Python objects) alone.
    template <typename F>
    auto changing(F &&f) {
        py::gil_scoped_release nogil;
        std::unique_lock<std::shared_mutex> alone(lock);
        return f();
    }
    // Runs f alongside other reads, never alongside a change.
    template <typename F>
    auto reading(F &&f) const {
        py::gil_scoped_release nogil;
        std::shared_lock<std::shared_mutex> shared(lock);
        return f();
    }

    // v None: a cache made with v_from_k (the C call names the mistake otherwise).
    void append(int32_t layer, int32_t seq, py::handle k_obj, py::handle v_obj, const py::object &rope) {
        const tensor_arg k = to_tensor(k_obj, "k", fallback::floating);
        const optional_tensor v(v_obj, "v");
        std::optional<rope_arg> r = rope_options_of(rope);
        const llmkit_rope_options *ro = r ? r->get(head_dim) : nullptr;
        llmkit::tensor_ref kt = k.ref();
        changing([&] {
            if (r) llmkit::check(append_rope_c(cache.get(), layer, seq, kt.get(), v.get(), ro));
            else llmkit::check(append_c(cache.get(), layer, seq, kt.get(), v.get()));
        });
    }
    void attention(int32_t layer, py::handle q_obj, const std::vector<int32_t> &seq_ids, py::handle out_obj,
                   kv_options &o, py::handle lse_obj, py::handle cu_obj) {
        const tensor_arg q = to_tensor(q_obj, "q", fallback::floating);
        const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
        const optional_tensor lse(lse_obj, "lse");
        const optional_tensor cu(cu_obj, "cu_seqlens_q", fallback::index);
        llmkit_kv_attention_options c = kv_c_options(o, q, head_dim, cu);
        c.lse = lse.get();
        llmkit::tensor_ref qt = q.ref(), ot = out.ref();
        reading([&] { cache.attention(layer, qt, seq_ids, ot, &c); });
    }
};

using py_kv_cache = py_cache<llmkit::kv_cache>;
using py_paged_kv_cache = py_cache<llmkit::paged_kv_cache>;

int32_t kv_dtype_code(const std::string &name) {
    if (name == "fp32") return LLMKIT_KV_F32;
    if (name == "bf16") return LLMKIT_KV_BF16;
    if (name == "fp16") return LLMKIT_KV_F16;
    if (name == "int8") return LLMKIT_KV_INT8;
    if (name == "fp8_e4m3") return LLMKIT_KV_FP8_E4M3;
    if (name == "fp8_e5m2") return LLMKIT_KV_FP8_E5M2;
    throw py::value_error("dtype must be 'fp32', 'bf16', 'fp16', 'int8', 'fp8_e4m3' or 'fp8_e5m2', got '" + name + "'");
}

template <typename P>
void bind_cache_methods(P &cls) {
    using T = typename P::type;
    cls.def("seq_new", [](T &self) { return self.changing([&] { return self.cache.seq_new(); }); })
        .def("fork", [](T &self, int32_t src) { return self.changing([&] { return self.cache.fork(src); }); },
             py::arg("seq"))
        .def("free", [](T &self, int32_t seq) { self.changing([&] { self.cache.free(seq); }); }, py::arg("seq"))
        .def("truncate", [](T &self, int32_t seq, int64_t n) { self.changing([&] { self.cache.truncate(seq, n); }); },
             py::arg("seq"), py::arg("n"))
        .def(
            "erase",
            [](T &self, int32_t seq, int64_t start, int64_t stop, const py::object &rope) {
                std::optional<rope_arg> r = rope_options_of(rope);
                const llmkit_rope_options *ro = r ? r->get(self.head_dim) : nullptr;
                self.changing([&] { self.cache.erase(seq, start, stop, ro); });
            },
            py::arg("seq"), py::arg("start"), py::arg("stop"), py::arg("rope") = py::none())
        .def("save",
             [](const T &self, int32_t seq) {
                 // Written straight into the bytes object (a long prompt's GBs are not copied
                 // twice), made with the GIL and no lock; saved again if another thread changed
                 // the sequence's size in between.
                 for (;;) {
                     const size_t n = self.reading([&] { return self.cache.save_size(seq); });
                     py::bytes out(nullptr, n);
                     char *buf = PyBytes_AS_STRING(out.ptr());
                     const bool saved = self.reading([&] {
                         if (self.cache.save_size(seq) != n) return false;
                         self.cache.save(seq, buf, n);
                         return true;
                     });
                     if (saved) return out;
                 }
             },
             py::arg("seq"))
        .def("load",
             [](T &self, int32_t seq, const py::buffer &data) {
                 const py::buffer_info info = data.request();
                 if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
                     throw py::type_error("data must be contiguous bytes (bytes, bytearray, memoryview or a uint8 "
                                          "array), as save() returns");
                 self.changing([&] { self.cache.load(seq, info.ptr, size_t(info.shape[0])); });
             },
             py::arg("seq"), py::arg("data"))
        .def("length",
             [](const T &self, int32_t seq, int32_t layer) {
                 return self.reading([&] { return self.cache.length(seq, layer); });
             },
             py::arg("seq"), py::arg("layer") = -1)
        .def("append", &T::append, py::arg("layer"), py::arg("seq"), py::arg("k"), py::arg("v"),
             py::arg("rope") = py::none())
        .def(
            "attention",
            [](T &self, int32_t layer, py::handle q, const std::vector<int32_t> &seq_ids, py::handle out, bool causal,
               int64_t window, float softcap, float scale, std::optional<f32_array> alibi_slopes,
               std::optional<f32_array> sinks, int32_t num_threads, int64_t split_keys, const py::object &rope,
               py::handle lse, py::handle cu_seqlens_q) {
                kv_options o{causal,      window,     softcap,   scale, std::move(alibi_slopes), std::move(sinks),
                             num_threads, split_keys, rope_options_of(rope)};
                self.attention(layer, q, seq_ids, out, o, lse, cu_seqlens_q);
            },
            py::arg("layer"), py::arg("q"), py::arg("seq_ids"), py::arg("out"), py::arg("causal") = true,
            py::arg("window") = 0, py::arg("softcap") = 0.0f, py::arg("scale") = 0.0f,
            py::arg("alibi_slopes") = py::none(), py::arg("sinks") = py::none(), py::arg("num_threads") = 0,
            py::arg("split_keys") = 0, py::arg("rope") = py::none(), py::arg("lse") = py::none(),
            py::arg("cu_seqlens_q") = py::none());
}

}  // namespace

void bind_attention(py::module_ &m) {
    auto kv = py::class_<py_kv_cache>(m, "KVCache");
    kv.def(py::init([](int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, int64_t capacity, int32_t max_sequences,
                       const std::string &dtype, int32_t v_head_dim, bool v_from_k) {
               llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
               o.n_layers = n_layers;
               o.n_kv_heads = n_kv_heads;
               o.head_dim = head_dim;
               o.capacity = capacity;
               o.max_sequences = max_sequences;
               o.dtype = kv_dtype_code(dtype);
               o.v_head_dim = v_head_dim;
               o.v_from_k = v_from_k ? 1 : 0;
               return new py_kv_cache(llmkit::kv_cache(o), head_dim);
           }),
           py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"), py::arg("capacity"),
           py::arg("max_sequences"), py::arg("dtype"), py::arg("v_head_dim") = 0, py::arg("v_from_k") = false)
        .def_property_readonly("memory_bytes", [](const py_kv_cache &self) {
            return self.reading([&] { return self.cache.memory_bytes(); });
        });
    bind_cache_methods(kv);

    auto paged = py::class_<py_paged_kv_cache>(m, "PagedKVCache");
    paged
        .def(py::init([](int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, int32_t block_size, int64_t n_blocks,
                         int32_t max_sequences, int64_t max_blocks_per_seq, const std::string &dtype,
                         int32_t v_head_dim, bool v_from_k) {
                 llmkit_paged_kv_cache_options o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
                 o.n_layers = n_layers;
                 o.n_kv_heads = n_kv_heads;
                 o.head_dim = head_dim;
                 o.block_size = block_size;
                 o.n_blocks = n_blocks;
                 o.max_sequences = max_sequences;
                 o.max_blocks_per_seq = max_blocks_per_seq;
                 o.dtype = kv_dtype_code(dtype);
                 o.v_head_dim = v_head_dim;
                 o.v_from_k = v_from_k ? 1 : 0;
                 return new py_paged_kv_cache(llmkit::paged_kv_cache(o), head_dim);
             }),
             py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"), py::arg("block_size"),
             py::arg("n_blocks"), py::arg("max_sequences"), py::arg("max_blocks_per_seq"), py::arg("dtype"),
             py::arg("v_head_dim") = 0, py::arg("v_from_k") = false)
        .def_property_readonly("memory_bytes",
                               [](const py_paged_kv_cache &self) {
                                   return self.reading([&] { return self.cache.memory_bytes(); });
                               })
        .def_property_readonly("pool_bytes",
                               [](const py_paged_kv_cache &self) {
                                   uint64_t pool = 0;
                                   llmkit::check(llmkit_paged_kv_cache_memory_bytes(self.cache.get(), nullptr, &pool));
                                   return pool;
                               })
        .def_property_readonly("free_blocks",
                               [](const py_paged_kv_cache &self) {
                                   return self.reading([&] { return self.cache.free_blocks(); });
                               })
        .def("release_before",
             [](py_paged_kv_cache &self, int32_t seq, int64_t n) {
                 return self.changing([&] { return self.cache.release_before(seq, n); });
             },
             py::arg("seq"), py::arg("n"))
        .def("block_table",
             [](const py_paged_kv_cache &self, int32_t seq) {
                 return self.reading([&] { return self.cache.block_table(seq); });
             },
             py::arg("seq"))
        .def(
            "attention_tables",
            [](py_paged_kv_cache &self, int32_t layer, py::handle q_obj, py::handle tables_obj, py::handle lens_obj,
               py::handle out_obj, bool causal, int64_t window, float softcap, float scale,
               std::optional<f32_array> alibi_slopes, std::optional<f32_array> sinks, int32_t num_threads,
               int64_t split_keys, const py::object &rope, py::handle lse_obj, py::handle cu_obj) {
                kv_options o{causal,      window,     softcap,   scale, std::move(alibi_slopes), std::move(sinks),
                             num_threads, split_keys, rope_options_of(rope)};
                const tensor_arg q = to_tensor(q_obj, "q", fallback::floating);
                const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
                const tensor_arg tables = to_tensor(tables_obj, "block_tables", fallback::index);
                const tensor_arg lens = to_tensor(lens_obj, "seq_lens", fallback::index);
                const optional_tensor lse(lse_obj, "lse");
                const optional_tensor cu(cu_obj, "cu_seqlens_q", fallback::index);
                llmkit_kv_attention_options c = kv_c_options(o, q, self.head_dim, cu);
                c.lse = lse.get();
                llmkit::tensor_ref qt = q.ref(), ot = out.ref(), tt = tables.ref(), lt = lens.ref();
                self.reading([&] {
                    llmkit::check(llmkit_paged_kv_cache_attention_tables(self.cache.get(), layer, qt.get(), tt.get(),
                                                                         lt.get(), ot.get(), &c));
                });
            },
            py::arg("layer"), py::arg("q"), py::arg("block_tables"), py::arg("seq_lens"), py::arg("out"),
            py::arg("causal") = true, py::arg("window") = 0, py::arg("softcap") = 0.0f, py::arg("scale") = 0.0f,
            py::arg("alibi_slopes") = py::none(), py::arg("sinks") = py::none(), py::arg("num_threads") = 0,
            py::arg("split_keys") = 0, py::arg("rope") = py::none(), py::arg("lse") = py::none(),
            py::arg("cu_seqlens_q") = py::none());
    bind_cache_methods(paged);

    m.def("attention", &attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("causal") = false,
          py::arg("window") = 0, py::arg("softcap") = 0.0f, py::arg("scale") = 0.0f,
          py::arg("alibi_slopes") = py::none(), py::arg("mask") = py::none(), py::arg("num_threads") = 0,
          py::arg("sinks") = py::none(), py::arg("lse") = py::none());
    m.def("attention_varlen", &attention_varlen, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("cu_seqlens_q"),
          py::arg("cu_seqlens_k"), py::arg("out"), py::arg("causal") = false, py::arg("window") = 0,
          py::arg("softcap") = 0.0f, py::arg("scale") = 0.0f, py::arg("alibi_slopes") = py::none(),
          py::arg("num_threads") = 0, py::arg("sinks") = py::none(), py::arg("lse") = py::none());
    m.def("attention_merge", &attention_merge, py::arg("out"), py::arg("lse"), py::arg("other_out"),
          py::arg("other_lse"));
    m.def("rope", &rope, py::arg("x"), py::arg("positions"), py::arg("layout") = 0, py::arg("theta") = 10000.0,
          py::arg("rotary_dims") = 0, py::arg("scaling") = 0, py::arg("factor") = 1.0, py::arg("alpha") = 1.0,
          py::arg("low_freq_factor") = 1.0, py::arg("high_freq_factor") = 4.0,
          py::arg("original_max_position") = 8192.0, py::arg("beta_fast") = 32.0, py::arg("beta_slow") = 1.0,
          py::arg("attention_factor") = 0.0, py::arg("num_threads") = 0, py::arg("frequency_factors") = py::none(),
          py::arg("out") = py::none(), py::arg("mrope_section") = std::array<int32_t, 3>{0, 0, 0},
          py::arg("mrope_interleaved") = 0);
    m.def("attention_isa", [] { return std::string(llmkit_attention_isa()); });
    m.def("kv_cache_bytes", &kv_cache_bytes, py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"),
          py::arg("v_head_dim"), py::arg("dtype_bytes"), py::arg("context"), py::arg("batch") = 1);
}

}  // namespace llmkit_py
