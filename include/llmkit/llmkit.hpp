/**
 * @file llmkit.hpp
 * @brief Header-only C++17 face of llmkit: RAII handles and exceptions over llmkit.h.
 *
 * Everything here is inline and calls only the C ABI, so no C++ symbol crosses
 * the library boundary (the oneDNN `dnnl.hpp` pattern): the C++ face works
 * with any compiler and standard library the application uses.
 *
 * Errors become llmkit::error exceptions carrying the status and the message.
 */
#ifndef LLMKIT_HPP
#define LLMKIT_HPP

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmkit.h"

/** @brief The C++ face of llmkit. */
namespace llmkit {

/** @brief The exception thrown for every failed llmkit call. */
class error : public std::runtime_error {
public:
    /** @brief Wraps a status and its message. @param status The code. @param message The text. */
    error(llmkit_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    /** @brief The C status code of the failure. @return The code. */
    llmkit_status status() const noexcept { return status_; }

private:
    llmkit_status status_;
};

/** @brief Throws llmkit::error with this thread's message unless `status` is #LLMKIT_OK. @param status A C result. */
inline void check(llmkit_status status) {
    if (status != LLMKIT_OK) throw error(status, llmkit_last_error_message());
}

/** @brief The library's version string. @return "MAJOR.MINOR.PATCH". */
inline std::string version() { return llmkit_version(); }

/**
 * @brief An #llmkit_tensor together with the storage of its shape and strides.
 *
 * It does not own the data it points at. Convert to `const llmkit_tensor*` with get().
 */
class tensor_ref {
public:
    /**
     * @brief Describes caller-owned memory.
     * @param data Base pointer. @param dtype Element type. @param shape Extents.
     * @param device Where the memory lives (default: host).
     * @param strides Element strides, empty for compact row-major.
     */
    tensor_ref(void *data, llmkit_dtype dtype, std::vector<int64_t> shape,
               llmkit_device device = llmkit_device{LLMKIT_DEVICE_CPU, 0}, std::vector<int64_t> strides = {})
        : shape_(std::move(shape)), strides_(std::move(strides)) {
        t_.data = data;
        t_.device = device;
        t_.ndim = int32_t(shape_.size());
        t_.dtype = dtype;
        t_.shape = shape_.data();
        t_.strides = strides_.empty() ? nullptr : strides_.data();
        t_.byte_offset = 0;
    }
    /** @brief Copies the view: shape and strides are copied, the data is shared. @param o The view to copy. */
    tensor_ref(const tensor_ref &o) : tensor_ref(o.t_.data, o.t_.dtype, o.shape_, o.t_.device, o.strides_) {}
    tensor_ref &operator=(const tensor_ref &) = delete;

    /** @brief The C descriptor, valid while this object lives. @return A pointer to it. */
    const llmkit_tensor *get() const { return &t_; }
    /** @brief Mutable C descriptor, for option structs that take `llmkit_tensor*`. @return A pointer to it. */
    llmkit_tensor *get() { return &t_; }

private:
    std::vector<int64_t> shape_, strides_;
    llmkit_tensor t_{};
};

/** @brief A host float32 tensor view. @param data Memory. @param shape Extents. @return The view. */
inline tensor_ref f32(const float *data, std::vector<int64_t> shape) {
    return tensor_ref(const_cast<float *>(data), llmkit_dtype{LLMKIT_DTYPE_FLOAT, 32, 1}, std::move(shape));
}
/** @brief A host int32 tensor view. @param data Memory. @param shape Extents. @return The view. */
inline tensor_ref i32(const int32_t *data, std::vector<int64_t> shape) {
    return tensor_ref(const_cast<int32_t *>(data), llmkit_dtype{LLMKIT_DTYPE_INT, 32, 1}, std::move(shape));
}

/**
 * @brief RAII owner of an #llmkit_sampler_chain with a fluent builder.
 *
 * @code
 * llmkit::sampler_chain chain(42);
 * chain.penalties(64, 1.1f, 0.0f, 0.0f).top_k(40).top_p(0.95f).temperature(0.8f).dist();
 * std::vector<int32_t> ids = chain.sample(logits.data(), batch, vocab);
 * @endcode
 * Not thread-safe: use one chain per thread, or serialise calls.
 */
class sampler_chain {
public:
    /** @brief Creates an empty chain. @param seed Key of every random draw. */
    explicit sampler_chain(uint64_t seed = 0) {
        llmkit_sampler_chain_options o = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
        o.seed = seed;
        llmkit_sampler_chain *c = nullptr;
        check(llmkit_sampler_chain_create(&c, &o));
        chain_.reset(c);
    }

    /** @brief Appends greedy picking. @return *this. */
    sampler_chain &greedy() { return ok(llmkit_sampler_chain_add_greedy(get())); }
    /** @brief Appends a random draw. @return *this. */
    sampler_chain &dist() { return ok(llmkit_sampler_chain_add_dist(get())); }
    /** @brief Appends temperature. @param t >= 0. @return *this. */
    sampler_chain &temperature(float t) { return ok(llmkit_sampler_chain_add_temperature(get(), t)); }
    /** @brief Appends dynamic temperature. @param t Base. @param delta Range. @param exponent Shape. @return *this. */
    sampler_chain &dynamic_temperature(float t, float delta, float exponent = 1.0f) {
        return ok(llmkit_sampler_chain_add_dynamic_temperature(get(), t, delta, exponent));
    }
    /** @brief Appends top-k. @param k >= 1. @return *this. */
    sampler_chain &top_k(int32_t k) { return ok(llmkit_sampler_chain_add_top_k(get(), k)); }
    /** @brief Appends top-p. @param p In (0,1]. @param min_keep Minimum kept. @return *this. */
    sampler_chain &top_p(float p, size_t min_keep = 1) { return ok(llmkit_sampler_chain_add_top_p(get(), p, min_keep)); }
    /** @brief Appends min-p. @param p In [0,1]. @param min_keep Minimum kept. @return *this. */
    sampler_chain &min_p(float p, size_t min_keep = 1) { return ok(llmkit_sampler_chain_add_min_p(get(), p, min_keep)); }
    /** @brief Appends typical sampling. @param p In (0,1]. @param min_keep Minimum kept. @return *this. */
    sampler_chain &typical(float p, size_t min_keep = 1) {
        return ok(llmkit_sampler_chain_add_typical(get(), p, min_keep));
    }
    /** @brief Appends top-n-sigma. @param n >= 0. @return *this. */
    sampler_chain &top_n_sigma(float n) { return ok(llmkit_sampler_chain_add_top_n_sigma(get(), n)); }
    /** @brief Appends XTC. @param probability Chance. @param threshold Cut. @param min_keep Minimum kept. @return *this. */
    sampler_chain &xtc(float probability, float threshold, size_t min_keep = 1) {
        return ok(llmkit_sampler_chain_add_xtc(get(), probability, threshold, min_keep));
    }
    /** @brief Appends penalties. @param last_n Window. @param repeat Repetition. @param frequency Frequency.
     *  @param presence Presence. @return *this. */
    sampler_chain &penalties(int32_t last_n, float repeat, float frequency, float presence) {
        return ok(llmkit_sampler_chain_add_penalties(get(), last_n, repeat, frequency, presence));
    }
    /** @brief Appends DRY. @param multiplier Strength. @param base Growth. @param allowed_length Free repeat length.
     *  @param last_n Window. @param breakers Breaker token ids. @return *this. */
    sampler_chain &dry(float multiplier, float base, int32_t allowed_length, int32_t last_n,
                       const std::vector<int32_t> &breakers = {}) {
        return ok(llmkit_sampler_chain_add_dry(get(), multiplier, base, allowed_length, last_n, breakers.data(),
                                               breakers.size()));
    }
    /** @brief Appends a logit bias. @param ids Tokens. @param biases Values (same length). @return *this. */
    sampler_chain &logit_bias(const std::vector<int32_t> &ids, const std::vector<float> &biases) {
        if (ids.size() != biases.size())
            throw error(LLMKIT_ERROR_SHAPE, "logit_bias: ids and biases differ in length");
        return ok(llmkit_sampler_chain_add_logit_bias(get(), ids.data(), biases.data(), ids.size()));
    }
    /** @brief Appends a ban. @param ids Tokens that can never be picked. @return *this. */
    sampler_chain &banned_tokens(const std::vector<int32_t> &ids) {
        return ok(llmkit_sampler_chain_add_banned_tokens(get(), ids.data(), ids.size()));
    }
    /** @brief Appends mirostat v1. @param tau Target surprise. @param eta Rate. @param m Estimate size. @return *this. */
    sampler_chain &mirostat(float tau, float eta, int32_t m = 100) {
        return ok(llmkit_sampler_chain_add_mirostat(get(), tau, eta, m));
    }
    /** @brief Appends mirostat v2. @param tau Target surprise. @param eta Rate. @return *this. */
    sampler_chain &mirostat_v2(float tau, float eta) { return ok(llmkit_sampler_chain_add_mirostat_v2(get(), tau, eta)); }

    /** @brief Number of steps. @return The count. */
    size_t size() const {
        size_t n = 0;
        check(llmkit_sampler_chain_length(chain_.get(), &n));
        return n;
    }
    /** @brief The chain as text. @return e.g. "top_k(40) -> dist". */
    std::string describe() const {
        size_t needed = 0;
        check(llmkit_sampler_chain_describe(chain_.get(), nullptr, 0, &needed));
        std::string s(needed, '\0');
        check(llmkit_sampler_chain_describe(chain_.get(), &s[0], s.size(), &needed));
        s.resize(needed - 1);
        return s;
    }
    /** @brief Adds tokens to a sequence's history. @param seq_id Sequence. @param tokens Ids. */
    void accept(int64_t seq_id, const std::vector<int32_t> &tokens) {
        check(llmkit_sampler_chain_accept(get(), seq_id, tokens.data(), tokens.size()));
    }
    /** @brief Forgets a sequence's state, or every sequence's with -1. @param seq_id Sequence. */
    void reset(int64_t seq_id = -1) { check(llmkit_sampler_chain_reset(get(), seq_id)); }

    /** @brief Samples one token per row. @param logits [B,V] or [V]. @param tokens Out [B].
     *  @param options NULL for defaults. */
    void sample(const tensor_ref &logits, const tensor_ref &tokens, const llmkit_sample_options *options = nullptr) {
        check(llmkit_sampler_chain_sample(get(), logits.get(), tokens.get(), options));
    }
    /** @brief Samples from host float32 logits of shape [rows, vocab]. @param logits Data.
     *  @param rows B. @param vocab V. @return One token per row. */
    std::vector<int32_t> sample(const float *logits, int64_t rows, int64_t vocab) {
        std::vector<int32_t> out(static_cast<size_t>(rows));
        sample(f32(logits, {rows, vocab}), i32(out.data(), {rows}));
        return out;
    }
    /** @brief Writes processed logits (removed tokens = -inf). @param logits Input. @param out float32 output.
     *  @param options NULL for defaults. */
    void apply(const tensor_ref &logits, const tensor_ref &out, const llmkit_sample_options *options = nullptr) {
        check(llmkit_sampler_chain_apply(get(), logits.get(), out.get(), options));
    }

    /** @brief The C handle. @return Owned by this object. */
    llmkit_sampler_chain *get() const { return chain_.get(); }

private:
    sampler_chain &ok(llmkit_status s) {
        check(s);
        return *this;
    }
    struct deleter {
        void operator()(llmkit_sampler_chain *c) const { llmkit_sampler_chain_free(c); }
    };
    std::unique_ptr<llmkit_sampler_chain, deleter> chain_;
};

/**
 * @brief One-call sampling from host float32 logits [rows, vocab].
 * @param logits Data. @param rows B. @param vocab V. @param params Settings (temperature, top-k, top-p, min-p, seed).
 * @return One token per row.
 */
inline std::vector<int32_t> sample(const float *logits, int64_t rows, int64_t vocab,
                                   const llmkit_sample_params &params) {
    std::vector<int32_t> out(static_cast<size_t>(rows));
    check(llmkit_sample(f32(logits, {rows, vocab}).get(), i32(out.data(), {rows}).get(), &params));
    return out;
}

/** @brief The result of verify_speculative() for one row. */
struct speculative_result {
    int32_t n_accepted;          /**< Drafts accepted. */
    std::vector<int32_t> tokens; /**< The n_accepted drafts, then the corrected or bonus token. */
};

/**
 * @brief Speculative verification of one sequence on the host.
 * @param draft_tokens K draft ids. @param draft_probs [K, V] draft distributions.
 * @param target_probs [K+1, V] target distributions. @param vocab V.
 * @param seed Philox key. @param step Decoding step. @param seq_id Sequence.
 * @return The accepted drafts and the final token.
 */
inline speculative_result verify_speculative(const std::vector<int32_t> &draft_tokens,
                                             const std::vector<float> &draft_probs,
                                             const std::vector<float> &target_probs, int64_t vocab, uint64_t seed,
                                             uint64_t step = 0, int64_t seq_id = 0) {
    const int64_t k = int64_t(draft_tokens.size());
    std::vector<int32_t> out(static_cast<size_t>(k + 1));
    int32_t n_acc = 0;
    llmkit_speculative_options o = LLMKIT_SPECULATIVE_OPTIONS_INIT;
    o.seed = seed;
    o.step = step;
    o.seq_ids = &seq_id;
    o.n_seq_ids = 1;
    if (int64_t(draft_probs.size()) != k * vocab || int64_t(target_probs.size()) != (k + 1) * vocab)
        throw error(LLMKIT_ERROR_SHAPE, "verify_speculative: probability sizes do not match K and V");
    check(llmkit_verify_speculative(i32(draft_tokens.data(), {1, k}).get(), f32(draft_probs.data(), {1, k, vocab}).get(),
                                    f32(target_probs.data(), {1, k + 1, vocab}).get(), i32(out.data(), {1, k + 1}).get(),
                                    i32(&n_acc, {1}).get(), &o));
    out.resize(size_t(n_acc + 1));
    return {n_acc, out};
}

/**
 * @brief A loaded tokenizer (RAII over #llmkit_tokenizer).
 *
 * Immutable after loading: one object may be used from many threads at once.
 */
class tokenizer {
public:
    /**
     * @brief Loads a tiktoken rank file with a named encoding preset.
     * @param path The rank file. @param encoding_name r50k_base, p50k_base, cl100k_base, o200k_base, llama3 or qwen2.
     * @return The tokenizer.
     */
    static tokenizer from_tiktoken(const std::string &path, const std::string &encoding_name) {
        llmkit_tokenizer *t = nullptr;
        check(llmkit_tokenizer_from_tiktoken(&t, path.c_str(), encoding_name.c_str()));
        return tokenizer(t);
    }

    /**
     * @brief Loads a tokenizer file of any supported format (detected from its
     *        content; see llmkit_tokenizer_from_file()).
     * @param path The file, e.g. a Hugging Face tokenizer.json.
     * @param tiktoken_encoding The preset of a tiktoken rank file; empty for other formats.
     * @return The tokenizer.
     */
    static tokenizer from_file(const std::string &path, const std::string &tiktoken_encoding = {}) {
        llmkit_tokenizer_load_options o = LLMKIT_TOKENIZER_LOAD_OPTIONS_INIT;
        o.tiktoken_encoding = tiktoken_encoding.empty() ? nullptr : tiktoken_encoding.c_str();
        llmkit_tokenizer *t = nullptr;
        check(llmkit_tokenizer_from_file(&t, path.c_str(), &o));
        return tokenizer(t);
    }

    /**
     * @brief Loads a tokenizer from a tokenizer file's bytes in memory (see
     *        llmkit_tokenizer_from_memory()); `bytes` may be freed afterwards.
     * @param bytes The file's content. @param tiktoken_encoding As for from_file().
     * @return The tokenizer.
     */
    static tokenizer from_memory(std::string_view bytes, const std::string &tiktoken_encoding = {}) {
        llmkit_tokenizer_load_options o = LLMKIT_TOKENIZER_LOAD_OPTIONS_INIT;
        o.tiktoken_encoding = tiktoken_encoding.empty() ? nullptr : tiktoken_encoding.c_str();
        llmkit_tokenizer *t = nullptr;
        check(llmkit_tokenizer_from_memory(&t, bytes.data(), bytes.size(), &o));
        return tokenizer(t);
    }

    /**
     * @brief A tiktoken encoding given in full (llmkit_tokenizer_from_ranks()):
     *        a rank file's text, a regex or preset name, special tokens and their ids.
     * @param ranks The text of a `.tiktoken` rank file. @param pattern The pre-tokenizer regex or a preset name.
     * @param special_tokens (text, id) pairs. @return The tokenizer.
     */
    static tokenizer from_ranks(std::string_view ranks, const std::string &pattern,
                                const std::vector<std::pair<std::string, int32_t>> &special_tokens = {}) {
        std::vector<const char *> texts;
        std::vector<int32_t> ids;
        for (const auto &s : special_tokens) {
            texts.push_back(s.first.c_str());
            ids.push_back(s.second);
        }
        llmkit_tiktoken_encoding e = LLMKIT_TIKTOKEN_ENCODING_INIT;
        e.pattern = pattern.c_str();
        e.special_tokens = texts.data();
        e.special_token_ids = ids.data();
        e.n_special_tokens = texts.size();
        llmkit_tokenizer *t = nullptr;
        check(llmkit_tokenizer_from_ranks(&t, ranks.data(), ranks.size(), &e));
        return tokenizer(t);
    }

    /**
     * @brief Encodes text; special tokens in it are an error unless allowed.
     * @param text UTF-8 text. @param allowed_special Special tokens encoded as their id.
     * @param allow_all_special Every special token is encoded as its id.
     * @param special_as_text Special tokens that are not allowed are encoded as text instead of failing.
     * @param add_special_tokens Add the special tokens of the tokenizer's post-processor (BOS, [CLS] ...).
     * @return The ids.
     */
    std::vector<int32_t> encode(const std::string &text, const std::vector<std::string> &allowed_special = {},
                                bool allow_all_special = false, bool special_as_text = false,
                                bool add_special_tokens = false) const {
        std::vector<const char *> names;
        for (const auto &s : allowed_special) names.push_back(s.c_str());
        llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
        o.allow_all_special = allow_all_special ? 1 : 0;
        o.allowed_special = names.data();
        o.n_allowed_special = names.size();
        o.special_as_text = special_as_text ? 1 : 0;
        o.add_special_tokens = add_special_tokens ? 1 : 0;
        // Usually enough (tiktoken never gives more ids than bytes); otherwise retry at the reported size.
        std::vector<int32_t> ids(text.size() + 8);
        size_t n = 0;
        llmkit_status st = llmkit_tokenizer_encode(get(), text.data(), text.size(), ids.data(), ids.size(), &n, &o);
        if (st == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            ids.resize(n);
            st = llmkit_tokenizer_encode(get(), text.data(), text.size(), ids.data(), ids.size(), &n, &o);
        }
        check(st);
        ids.resize(n);
        return ids;
    }

    /** @brief Decodes ids into bytes. @param ids Token ids. @return The bytes. */
    std::string decode(const std::vector<int32_t> &ids) const {
        size_t needed = 0;
        check(llmkit_tokenizer_decode(get(), ids.data(), ids.size(), nullptr, 0, &needed));
        std::string s(needed, '\0');
        check(llmkit_tokenizer_decode(get(), ids.data(), ids.size(), needed ? &s[0] : nullptr, s.size(), &needed));
        return s;
    }

    /** @brief Number of ids, special tokens included. @return Max id + 1. */
    int32_t vocab_size() const {
        int32_t n = 0;
        check(llmkit_tokenizer_vocab_size(get(), &n));
        return n;
    }

    /** @brief The id of a token's bytes. @param token The bytes. @return The id, or -1 when none. */
    int32_t token_to_id(const std::string &token) const {
        int32_t id = -1;
        check(llmkit_tokenizer_token_to_id(get(), token.data(), token.size(), &id));
        return id;
    }

    /** @brief The bytes of a token. @param id A token id. @return Its bytes. */
    std::string id_to_token(int32_t id) const {
        size_t needed = 0;
        check(llmkit_tokenizer_id_to_token(get(), id, nullptr, 0, &needed, nullptr));
        std::string s(needed, '\0');
        check(llmkit_tokenizer_id_to_token(get(), id, needed ? &s[0] : nullptr, s.size(), &needed, nullptr));
        return s;
    }

    /**
     * @brief Encodes text and gives each token its byte span (llmkit_tokenizer_encode_with_offsets()).
     * @param text UTF-8 text. @param[out] offsets Receives 2 entries per id: start and end byte.
     * @param options NULL for defaults. @return The ids.
     */
    std::vector<int32_t> encode_with_offsets(const std::string &text, std::vector<size_t> &offsets,
                                             const llmkit_encode_options *options = nullptr) const {
        // Enough unless special tokens or an expanding normalizer add ids; then the call says how many.
        std::vector<int32_t> ids(text.size() + 8);
        offsets.assign(2 * ids.size(), 0);
        size_t n = 0;
        llmkit_status status = llmkit_tokenizer_encode_with_offsets(get(), text.data(), text.size(), ids.data(),
                                                                    offsets.data(), ids.size(), &n, options);
        if (status == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            ids.resize(n);
            offsets.resize(2 * n);
            status = llmkit_tokenizer_encode_with_offsets(get(), text.data(), text.size(), ids.data(), offsets.data(),
                                                          ids.size(), &n, options);
        }
        check(status);
        ids.resize(n);
        offsets.resize(2 * n);
        return ids;
    }

    /** @brief A pair of texts encoded together (llmkit_tokenizer_encode_pair()). */
    struct pair_encoding {
        std::vector<int32_t> ids;           /**< The ids. */
        std::vector<int32_t> type_ids;      /**< BERT's token_type_ids, one per id. */
        std::vector<int32_t> sequence_ids;  /**< 0 / 1: the text an id came from; -1: an added special token. */
        std::vector<size_t> offsets;        /**< 2 per id (start, end byte in its own text); empty unless asked for. */
    };

    /**
     * @brief Encodes a pair of texts into one sequence (llmkit_tokenizer_encode_pair()).
     * @param a The first text. @param b The second text.
     * @param with_offsets Also give each id's byte span in its own text.
     * @param options NULL for defaults (no special tokens added).
     * @return The ids with their types, sequences and (if asked for) spans.
     */
    pair_encoding encode_pair(const std::string &a, const std::string &b, bool with_offsets = false,
                              const llmkit_encode_options *options = nullptr) const {
        pair_encoding e;
        // Usually enough (a few special tokens around byte-level ids); otherwise retry at the reported size.
        size_t n = a.size() + b.size() + 16;
        llmkit_status status = LLMKIT_ERROR_BUFFER_TOO_SMALL;
        for (int attempt = 0; attempt < 2 && status == LLMKIT_ERROR_BUFFER_TOO_SMALL; ++attempt) {
            e.ids.resize(n);
            e.type_ids.resize(n);
            e.sequence_ids.resize(n);
            e.offsets.resize(with_offsets ? 2 * n : 0);
            status = llmkit_tokenizer_encode_pair(get(), a.data(), a.size(), b.data(), b.size(), e.ids.data(),
                                                  e.type_ids.data(), e.sequence_ids.data(),
                                                  with_offsets ? e.offsets.data() : nullptr, n, &n, options);
        }
        check(status);
        e.ids.resize(n);
        e.type_ids.resize(n);
        e.sequence_ids.resize(n);
        e.offsets.resize(with_offsets ? 2 * n : 0);
        return e;
    }

    /**
     * @brief Trains byte-level BPE on texts (llmkit_bpe_train()).
     * @param texts The corpus. @param options vocab_size etc. (required). @return The tokenizer.
     */
    static tokenizer train_bpe(const std::vector<std::string_view> &texts, const llmkit_bpe_train_options &options) {
        std::vector<const char *> ptrs;
        std::vector<size_t> lens;
        for (std::string_view t : texts) {
            ptrs.push_back(t.data());
            lens.push_back(t.size());
        }
        llmkit_tokenizer *t = nullptr;
        check(llmkit_bpe_train(&t, ptrs.data(), lens.data(), texts.size(), &options));
        return tokenizer(t);
    }

    /** @brief Writes the ranks as a .tiktoken file. @param path Where. */
    void save_tiktoken(const std::string &path) const { check(llmkit_tokenizer_save_tiktoken(get(), path.c_str())); }

    /** @brief Writes an HF tokenizer.json. @param path Where. */
    void save_tokenizer_json(const std::string &path) const {
        check(llmkit_tokenizer_save_tokenizer_json(get(), path.c_str()));
    }

    /** @brief The ranks as a `.tiktoken` file's text (llmkit_tokenizer_to_tiktoken()). @return The text. */
    std::string to_tiktoken() const {
        // Each call writes the whole text, so guess a size that holds a
        // typical vocabulary (base64 token, rank, ~20 bytes a line) and call
        // again only when the guess was short.
        std::string text(size_t(vocab_size()) * 32 + 4096, '\0');
        size_t n = 0;
        const llmkit_status status = llmkit_tokenizer_to_tiktoken(get(), text.data(), text.size(), &n);
        if (status == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            text.assign(n, '\0');
            check(llmkit_tokenizer_to_tiktoken(get(), text.data(), text.size(), &n));
        } else {
            check(status);
        }
        text.resize(n);
        return text;
    }

    /** @brief The pre-tokenizer regex of a byte-level BPE tokenizer (llmkit_tokenizer_pattern()). @return The regex. */
    std::string pattern() const {
        const char *p = nullptr;
        check(llmkit_tokenizer_pattern(get(), &p));
        return p;
    }

    /** @brief The C handle, still owned by this object. @return The handle. */
    const llmkit_tokenizer *get() const noexcept { return tok_.get(); }

private:
    explicit tokenizer(llmkit_tokenizer *t) : tok_(t) {}
    struct deleter {
        void operator()(llmkit_tokenizer *t) const noexcept { llmkit_tokenizer_free(t); }
    };
    std::unique_ptr<llmkit_tokenizer, deleter> tok_;
};

/**
 * @brief Streaming decoder (RAII over #llmkit_tokenizer_decoder): ids in,
 *        complete UTF-8 characters out; see llmkit_tokenizer_decoder_feed().
 *
 * The tokenizer must outlive it. One thread at a time per decoder.
 */
class tokenizer_decoder {
public:
    /** @brief A decoder for one stream. @param tok The tokenizer (must outlive the decoder). */
    explicit tokenizer_decoder(const tokenizer &tok) {
        llmkit_tokenizer_decoder *d = nullptr;
        check(llmkit_tokenizer_decoder_new(&d, tok.get()));
        dec_.reset(d);
    }

    /** @brief Feeds ids. @param ids Token ids. @return The text they complete (valid UTF-8). */
    std::string feed(const std::vector<int32_t> &ids) {
        size_t needed = 0;
        check(llmkit_tokenizer_decoder_feed(dec_.get(), ids.data(), ids.size(), nullptr, 0, &needed));
        std::string s(needed, '\0');
        check(llmkit_tokenizer_decoder_feed(dec_.get(), ids.data(), ids.size(), &s[0], s.size(), &needed));
        return s;
    }

    /** @brief Ends the stream. @return The held-back bytes (U+FFFD for an incomplete character, or nothing). */
    std::string flush() {
        char buf[16];
        size_t needed = 0;
        check(llmkit_tokenizer_decoder_flush(dec_.get(), buf, sizeof buf, &needed));
        return std::string(buf, needed);
    }

private:
    struct deleter {
        void operator()(llmkit_tokenizer_decoder *d) const noexcept { llmkit_tokenizer_decoder_free(d); }
    };
    std::unique_ptr<llmkit_tokenizer_decoder, deleter> dec_;
};

/** @name Quantization (GGUF block formats)
 *  @{ */

/** @brief The #llmkit_quant_type of ggml's type name ("q4_K"), ignoring case. @param name The name. @return The type. */
inline int32_t quant_type_from_name(const std::string &name) {
    int32_t t = 0;
    check(llmkit_quant_type_from_name(&t, name.c_str()));
    return t;
}

/**
 * @brief Quantizes a compact row-major float32 matrix [rows, n] into GGUF blocks (byte-exact with ggml).
 * @param type An #llmkit_quant_type value. @param x rows * n floats. @param rows Row count.
 * @param n Elements per row, a multiple of the block size. @param n_threads 0 = the default.
 * @param imatrix nullptr, or n importance weights (one per column; see llmkit_quantize()).
 * @return The blocks, rows back to back.
 */
inline std::vector<uint8_t> quantize(int32_t type, const float *x, int64_t rows, int64_t n, int32_t n_threads = 0,
                                     const float *imatrix = nullptr) {
    tensor_ref src(const_cast<float *>(x), llmkit_dtype LLMKIT_DTYPE_F32, {rows, n});
    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.n_threads = n_threads;
    o.imatrix = imatrix;
    // Ask for the size first: the library validates the shape (negative or
    // overflowing sizes) before anything is allocated here.
    size_t written = 0;
    const llmkit_status s = llmkit_quantize(&written, type, src.get(), nullptr, 0, &o);
    if (s != LLMKIT_ERROR_BUFFER_TOO_SMALL) check(s);
    std::vector<uint8_t> out(written);
    if (!out.empty()) check(llmkit_quantize(&written, type, src.get(), out.data(), out.size(), &o));
    return out;
}

/**
 * @brief Decodes GGUF blocks into a float32 matrix [rows, n] (bit-exact with ggml).
 * @param type An #llmkit_quant_type value. @param blocks The blocks, rows back to back.
 * @param rows Row count. @param n Elements per row. @return rows * n floats, row-major.
 */
inline std::vector<float> dequantize(int32_t type, const std::vector<uint8_t> &blocks, int64_t rows, int64_t n) {
    if (rows < 0 || n < 0 || (n != 0 && rows > INT64_MAX / n))
        throw error(LLMKIT_ERROR_SHAPE, "dequantize: [" + std::to_string(rows) + ", " + std::to_string(n) +
                                            "] is not a valid shape");
    // Refuse a mismatched byte count before allocating rows * n floats (any
    // type: GGUF blocks or the formats with side arrays).
    size_t need = 0;
    check(llmkit_quant_tensor_bytes(&need, type, rows, n));
    if (blocks.size() != need)
        throw error(LLMKIT_ERROR_SHAPE, "dequantize: " + std::to_string(blocks.size()) + " bytes are not the " +
                                            std::to_string(need) + " that [" + std::to_string(rows) + ", " +
                                            std::to_string(n) + "] takes");
    std::vector<float> y(size_t(rows * n));
    tensor_ref dst(y.data(), llmkit_dtype LLMKIT_DTYPE_F32, {rows, n});
    check(llmkit_dequantize(type, blocks.data(), blocks.size(), dst.get(), nullptr));
    return y;
}

/**
 * @brief y = x * W^T with W [n_rows, k] kept in GGUF blocks (see llmkit_quant_matmul()).
 * @param type An #llmkit_quant_type with a matmul kernel. @param blocks W's blocks, rows back to back.
 * @param n_rows Rows of W. @param k Columns of W. @param x m * k floats, row-major.
 * @param m Rows of x. @param n_threads 0 = the default; the result does not depend on it.
 * @return y, m * n_rows floats, row-major.
 */
inline std::vector<float> quant_matmul(int32_t type, const std::vector<uint8_t> &blocks, int64_t n_rows, int64_t k,
                                       const float *x, int64_t m, int32_t n_threads = 0) {
    if (n_rows < 0 || m < 0) throw error(LLMKIT_ERROR_SHAPE, "quant_matmul: negative n_rows or m");
    std::vector<float> y(size_t(m) * size_t(n_rows));
    tensor_ref xt(const_cast<float *>(x), llmkit_dtype LLMKIT_DTYPE_F32, {m, k});
    tensor_ref yt(y.data(), llmkit_dtype LLMKIT_DTYPE_F32, {m, n_rows});
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = n_threads;
    check(llmkit_quant_matmul(xt.get(), type, blocks.data(), blocks.size(), n_rows, k, yt.get(), &o));
    return y;
}

/** @} */

/** @name GGUF files
 *  @{ */

/** @brief An open GGUF file (RAII over #llmkit_gguf_file). Strings and data it hands out live as long as it. */
class gguf_file {
public:
    /** @brief Opens and validates a file. @param path File name. @param allow_duplicate_keys Keep the first of repeated keys. */
    explicit gguf_file(const std::string &path, bool allow_duplicate_keys = false) {
        llmkit_gguf_open_options o = LLMKIT_GGUF_OPEN_OPTIONS_INIT;
        o.allow_duplicate_keys = allow_duplicate_keys ? 1 : 0;
        llmkit_gguf_file *f = nullptr;
        check(llmkit_gguf_open(&f, path.c_str(), &o));
        f_.reset(f);
    }
    /** @brief Version, alignment, sizes and counts. @return The info. */
    llmkit_gguf_file_info info() const {
        llmkit_gguf_file_info i{};
        check(llmkit_gguf_file_get_info(&i, f_.get()));
        return i;
    }
    /** @brief The key of entry i. @param i Index. @return The key. */
    std::string key(int64_t i) const {
        const char *k = nullptr;
        size_t n = 0;
        check(llmkit_gguf_metadata_key(&k, &n, f_.get(), i));
        return std::string(k, n);
    }
    /** @brief The value of entry i. @param i Index. @return A handle owned by the file. */
    const llmkit_gguf_value *value(int64_t i) const {
        const llmkit_gguf_value *v = nullptr;
        check(llmkit_gguf_metadata_value(&v, f_.get(), i));
        return v;
    }
    /** @brief The value of a key, or NULL when absent. @param key The key. @return A handle owned by the file. */
    const llmkit_gguf_value *find(const std::string &key) const {
        int64_t i = -1;
        check(llmkit_gguf_find_key(&i, f_.get(), key.c_str()));
        return i < 0 ? nullptr : value(i);
    }
    /** @brief Describes tensor i. @param i Index. @return The description (data points into the file). */
    llmkit_gguf_tensor_info tensor(int64_t i) const {
        llmkit_gguf_tensor_info t{};
        check(llmkit_gguf_tensor(&t, f_.get(), i));
        return t;
    }
    /** @brief The C handle. @return It (owned by this object). */
    const llmkit_gguf_file *get() const { return f_.get(); }

private:
    struct deleter {
        void operator()(llmkit_gguf_file *f) const noexcept { llmkit_gguf_close(f); }
    };
    std::unique_ptr<llmkit_gguf_file, deleter> f_;
};

/** @brief A string value. @param v A value handle. @return Its bytes. */
inline std::string gguf_string(const llmkit_gguf_value *v) {
    const char *s = nullptr;
    size_t n = 0;
    check(llmkit_gguf_value_string(&s, &n, v));
    return std::string(s, n);
}

/** @brief An integer or bool value. @param v A value handle. @return It as int64. */
inline int64_t gguf_int(const llmkit_gguf_value *v) {
    int64_t x = 0;
    check(llmkit_gguf_value_int(&x, v));
    return x;
}

/** @brief A numeric value. @param v A value handle. @return It as double. */
inline double gguf_float(const llmkit_gguf_value *v) {
    double x = 0;
    check(llmkit_gguf_value_float(&x, v));
    return x;
}

/** @brief Builds a GGUF v3 file (RAII over #llmkit_gguf_writer). */
class gguf_writer {
public:
    /** @brief An empty file. */
    gguf_writer() {
        llmkit_gguf_writer *w = nullptr;
        check(llmkit_gguf_writer_new(&w));
        w_.reset(w);
    }
    /** @brief Sets a string key. @param key The key. @param s The string. @return *this. */
    gguf_writer &set_string(const std::string &key, const std::string &s) {
        check(llmkit_gguf_writer_set_kv(w_.get(), key.c_str(), LLMKIT_GGUF_STRING, s.data(), s.size()));
        return *this;
    }
    /** @brief Sets a uint32 key. @param key The key. @param x The value. @return *this. */
    gguf_writer &set_u32(const std::string &key, uint32_t x) {
        check(llmkit_gguf_writer_set_kv(w_.get(), key.c_str(), LLMKIT_GGUF_UINT32, &x, sizeof x));
        return *this;
    }
    /** @brief Sets a float32 key. @param key The key. @param x The value. @return *this. */
    gguf_writer &set_f32(const std::string &key, float x) {
        check(llmkit_gguf_writer_set_kv(w_.get(), key.c_str(), LLMKIT_GGUF_FLOAT32, &x, sizeof x));
        return *this;
    }
    /** @brief Sets a key to a numeric array. @param key The key. @param elem_type An #llmkit_gguf_type.
     *  @param data The elements. @param count Element count. @return *this. */
    gguf_writer &set_array(const std::string &key, int32_t elem_type, const void *data, uint64_t count) {
        check(llmkit_gguf_writer_set_array(w_.get(), key.c_str(), elem_type, data, count));
        return *this;
    }
    /** @brief Copies a value read from a file. @param key The key. @param v The value. @return *this. */
    gguf_writer &set_value(const std::string &key, const llmkit_gguf_value *v) {
        check(llmkit_gguf_writer_set_value(w_.get(), key.c_str(), v));
        return *this;
    }
    /** @brief Adds a tensor (copied). @param name Its name. @param type A ggml type. @param dims ggml's ne order.
     *  @param data The bytes. @param nbytes Their count. @return *this. */
    gguf_writer &add_tensor(const std::string &name, int32_t type, const std::vector<int64_t> &dims, const void *data,
                            size_t nbytes) {
        check(llmkit_gguf_writer_add_tensor(w_.get(), name.c_str(), type, dims.data(), int32_t(dims.size()), data,
                                            nbytes));
        return *this;
    }
    /** @brief Writes the file atomically. @param path File name. */
    void write(const std::string &path) const { check(llmkit_gguf_writer_write(w_.get(), path.c_str())); }

private:
    struct deleter {
        void operator()(llmkit_gguf_writer *w) const noexcept { llmkit_gguf_writer_free(w); }
    };
    std::unique_ptr<llmkit_gguf_writer, deleter> w_;
};

/** @} */

/** @name Attention
 *  @{ */

/**
 * @brief Scaled-dot-product attention (see llmkit_attention()); throws llmkit::error on failure.
 *
 * Named as torch's function, not `attention`, which is the library's internal namespace.
 * @code
 * llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
 * o.causal = 1;
 * o.sinks = sinks.data();                         // Hq sink logits (gpt-oss), or leave NULL
 * llmkit::scaled_dot_product_attention(q, k, v, out, &o);  // q [B, Sq, Hq, D], k [B, Skv, Hkv, D], v [B, Skv, Hkv, Dv],
 *                                                         // out [B, Sq, Hq, Dv]; Dv is usually D
 * @endcode
 * @param q Queries. @param k Keys. @param v Values.
 * @param out Output, q's dtype, q's shape with v's head_dim. @param options NULL for defaults.
 */
inline void scaled_dot_product_attention(const tensor_ref &q, const tensor_ref &k, const tensor_ref &v,
                                         const tensor_ref &out, const llmkit_attention_options *options = nullptr) {
    check(llmkit_attention(q.get(), k.get(), v.get(), out.get(), options));
}

/**
 * @brief Attention over packed sequences of different lengths (see llmkit_attention_varlen()); throws llmkit::error.
 * @param q Queries [Tq, Hq, D]. @param k Keys [Tk, Hkv, D]. @param v Values [Tk, Hkv, D].
 * @param cu_seqlens_q B + 1 row offsets into q. @param cu_seqlens_k B + 1 row offsets into k and v.
 * @param out Output, q's dtype, q's shape with v's head_dim. @param options NULL for defaults (no mask).
 */
inline void attention_varlen(const tensor_ref &q, const tensor_ref &k, const tensor_ref &v, const tensor_ref &cu_seqlens_q,
                             const tensor_ref &cu_seqlens_k, const tensor_ref &out,
                             const llmkit_attention_options *options = nullptr) {
    check(llmkit_attention_varlen(q.get(), k.get(), v.get(), cu_seqlens_q.get(), cu_seqlens_k.get(), out.get(),
                                  options));
}

/**
 * @brief Merges attention over other keys into (out, lse), in place (see llmkit_attention_merge()); throws llmkit::error.
 * @code
 * llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
 * o.lse = lse_prefix.get();                        // float32 [B, Sq, Hq]
 * llmkit::scaled_dot_product_attention(q, k_prefix, v_prefix, out, &o);
 * o.lse = lse_rest.get();
 * llmkit::scaled_dot_product_attention(q, k_rest, v_rest, out_rest, &o);
 * llmkit::attention_merge(out, lse_prefix, out_rest, lse_rest);  // out: attention over both
 * @endcode
 * @param out Attention over some keys, overwritten. @param lse Its log-sum-exps, overwritten.
 * @param other_out Attention over other keys. @param other_lse Its log-sum-exps.
 */
inline void attention_merge(const tensor_ref &out, const tensor_ref &lse, const tensor_ref &other_out,
                            const tensor_ref &other_lse) {
    check(llmkit_attention_merge(out.get(), lse.get(), other_out.get(), other_lse.get()));
}

/**
 * @brief Rotary position embeddings on x [B, S, H, D], in place (see llmkit_rope()); throws llmkit::error.
 * @code
 * llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
 * o.theta = 500000.0;
 * llmkit::rope(q, llmkit::i32(positions.data(), {S}), &o);
 * @endcode
 * @param x Rotated in place. @param positions [B, S] or [S] (M-RoPE: [3, B, S] or [3, S]).
 * @param options NULL for defaults.
 */
inline void rope(const tensor_ref &x, const tensor_ref &positions, const llmkit_rope_options *options = nullptr) {
    check(llmkit_rope(x.get(), positions.get(), options));
}

/**
 * @brief x rotated into out, x unchanged (see llmkit_rope_into()); throws llmkit::error.
 * @param x Read. @param positions As llmkit::rope()'s. @param out x's shape, any float dtype.
 * @param options NULL for defaults.
 */
inline void rope_into(const tensor_ref &x, const tensor_ref &positions, const tensor_ref &out,
                      const llmkit_rope_options *options = nullptr) {
    check(llmkit_rope_into(x.get(), positions.get(), out.get(), options));
}

/** @} */

/** @name KV caches
 *  @{ */

/**
 * @brief A contiguous KV cache (RAII over #llmkit_kv_cache).
 *
 * @code
 * llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
 * o.n_layers = 32; o.n_kv_heads = 8; o.head_dim = 128; o.capacity = 8192; o.max_sequences = 4;
 * llmkit::kv_cache cache(o);
 * int32_t s = cache.seq_new();
 * cache.append(layer, s, k, v);                 // k, v: [S, Hkv, D] tensor_refs
 * cache.attention(layer, q, {s}, out);          // q, out: [1, S, Hq, D]
 * @endcode
 * Appends, forks and frees must not run concurrently with anything else on the
 * same cache; attention calls may run concurrently with each other.
 */
class kv_cache {
public:
    /** @brief Creates the cache. @param options Its shape and dtype. */
    explicit kv_cache(const llmkit_kv_cache_options &options) {
        llmkit_kv_cache *c = nullptr;
        check(llmkit_kv_cache_create(&c, &options));
        c_.reset(c);
    }
    /** @brief Starts an empty sequence. @return Its id. */
    int32_t seq_new() {
        int32_t s = -1;
        check(llmkit_kv_cache_seq_new(get(), &s));
        return s;
    }
    /** @brief Starts a copy of a sequence. @param src A live sequence. @return The new id. */
    int32_t fork(int32_t src) {
        int32_t s = -1;
        check(llmkit_kv_cache_seq_fork(get(), src, &s));
        return s;
    }
    /** @brief Ends a sequence. @param seq A live sequence. */
    void free(int32_t seq) { check(llmkit_kv_cache_seq_free(get(), seq)); }
    /** @brief Keeps seq's first n tokens (see llmkit_kv_cache_seq_truncate()). @param seq A live sequence. @param n Tokens kept. */
    void truncate(int32_t seq, int64_t n) { check(llmkit_kv_cache_seq_truncate(get(), seq, n)); }
    /**
     * @brief Erases seq's tokens [from, to), the later ones moving down, their K turned back by
     * to - from positions with `rope` (see llmkit_kv_cache_seq_erase()): context shift.
     * @param seq A live sequence. @param from First token erased. @param to One past the last.
     * @param rope The rotation the appends used, or nullptr (K rows move as they are).
     */
    void erase(int32_t seq, int64_t from, int64_t to, const llmkit_rope_options *rope = nullptr) {
        check(llmkit_kv_cache_seq_erase(get(), seq, from, to, rope));
    }
    /**
     * @brief seq's cached K and V as bytes (see llmkit_kv_cache_seq_save()): the same
     * format from both kinds of cache, loadable by either with load().
     * @param seq A live sequence. @return The bytes.
     */
    std::vector<uint8_t> save(int32_t seq) const {
        std::vector<uint8_t> bytes(save_size(seq));
        save(seq, bytes.data(), bytes.size());
        return bytes;
    }
    /** @brief The bytes save() gives for seq. @param seq A live sequence. @return The count. */
    size_t save_size(int32_t seq) const {
        size_t n = 0;
        const llmkit_status st = llmkit_kv_cache_seq_save(get(), seq, nullptr, 0, &n);
        if (st != LLMKIT_ERROR_BUFFER_TOO_SMALL) check(st);
        return n;
    }
    /** @brief save() into caller memory. @param seq A live sequence. @param buf At least save_size(seq) bytes. @param capacity Bytes at buf. */
    void save(int32_t seq, void *buf, size_t capacity) const {
        check(llmkit_kv_cache_seq_save(get(), seq, buf, capacity, nullptr));
    }
    /** @brief Replaces seq's tokens with saved ones (see llmkit_kv_cache_seq_load()). @param seq A live sequence. @param bytes What save() gave. */
    void load(int32_t seq, const std::vector<uint8_t> &bytes) {
        check(llmkit_kv_cache_seq_load(get(), seq, bytes.data(), bytes.size()));
    }
    /** @brief Replaces seq's tokens with saved ones. @param seq A live sequence. @param data Saved bytes. @param size Their count. */
    void load(int32_t seq, const void *data, size_t size) { check(llmkit_kv_cache_seq_load(get(), seq, data, size)); }
    /** @brief Tokens held. @param seq A live sequence. @param layer A layer, or -1 for the largest. @return The count. */
    int64_t length(int32_t seq, int32_t layer = -1) const {
        int64_t n = 0;
        check(llmkit_kv_cache_seq_length(get(), seq, layer, &n));
        return n;
    }
    /** @brief Appends K and V rows. @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. @param v Values [S, Hkv, Dv]. */
    void append(int32_t layer, int32_t seq, const tensor_ref &k, const tensor_ref &v) {
        check(llmkit_kv_cache_append(get(), layer, seq, k.get(), v.get()));
    }
    /** @brief Appends K rows to a cache made with v_from_k (its V lies in K). @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. */
    void append(int32_t layer, int32_t seq, const tensor_ref &k) {
        check(llmkit_kv_cache_append(get(), layer, seq, k.get(), nullptr));
    }
    /**
     * @brief Appends K and V rows, K rotated on its way in (see llmkit_kv_cache_append_rope()).
     * @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. @param v Values.
     * @param rope The rotation; NULL for the defaults.
     */
    void append_rope(int32_t layer, int32_t seq, const tensor_ref &k, const tensor_ref &v,
                     const llmkit_rope_options *rope) {
        check(llmkit_kv_cache_append_rope(get(), layer, seq, k.get(), v.get(), rope));
    }
    /**
     * @brief Appends K rows to a cache made with v_from_k, their rotary part (the last rope->rotary_dims of
     *        each row, past V: MLA's k_pe) rotated on its way in (see llmkit_kv_cache_append_rope()).
     * @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. @param rope The rotation.
     */
    void append_rope(int32_t layer, int32_t seq, const tensor_ref &k, const llmkit_rope_options *rope) {
        check(llmkit_kv_cache_append_rope(get(), layer, seq, k.get(), nullptr, rope));
    }
    /**
     * @brief Attention of the last Sq tokens of each sequence (see llmkit_kv_cache_attention()).
     * @param layer A layer. @param q Queries [B, Sq, Hq, D], or packed [Tq, Hq, D] with options->cu_seqlens_q.
     * @param seq_ids B sequence ids.
     * @param out Output, q's shape. @param options NULL for defaults.
     */
    void attention(int32_t layer, const tensor_ref &q, const std::vector<int32_t> &seq_ids, const tensor_ref &out,
                   const llmkit_kv_attention_options *options = nullptr) const {
        check(llmkit_kv_cache_attention(get(), layer, q.get(), seq_ids.data(), int64_t(seq_ids.size()), out.get(),
                                        options));
    }
    /** @brief Bytes allocated. @return The count. */
    uint64_t memory_bytes() const {
        uint64_t n = 0;
        check(llmkit_kv_cache_memory_bytes(get(), &n));
        return n;
    }
    /** @brief The C handle. @return It. */
    llmkit_kv_cache *get() const { return c_.get(); }

private:
    struct deleter {
        void operator()(llmkit_kv_cache *c) const noexcept { llmkit_kv_cache_free(c); }
    };
    std::unique_ptr<llmkit_kv_cache, deleter> c_;
};

/**
 * @brief A paged KV cache (RAII over #llmkit_paged_kv_cache): blocks, block tables, fork with copy-on-write.
 *
 * Same threading rules as llmkit::kv_cache.
 */
class paged_kv_cache {
public:
    /** @brief Creates the cache. @param options Its shape, pool size and dtype. */
    explicit paged_kv_cache(const llmkit_paged_kv_cache_options &options) {
        llmkit_paged_kv_cache *c = nullptr;
        check(llmkit_paged_kv_cache_create(&c, &options));
        c_.reset(c);
    }
    /** @brief Starts an empty sequence. @return Its id. */
    int32_t seq_new() {
        int32_t s = -1;
        check(llmkit_paged_kv_cache_seq_new(get(), &s));
        return s;
    }
    /** @brief Starts a sequence sharing every block of src. @param src A live sequence. @return The new id. */
    int32_t fork(int32_t src) {
        int32_t s = -1;
        check(llmkit_paged_kv_cache_seq_fork(get(), src, &s));
        return s;
    }
    /** @brief Ends a sequence, releasing its blocks. @param seq A live sequence. */
    void free(int32_t seq) { check(llmkit_paged_kv_cache_seq_free(get(), seq)); }
    /** @brief Keeps seq's first n tokens (see llmkit_paged_kv_cache_seq_truncate()). @param seq A live sequence. @param n Tokens kept. */
    void truncate(int32_t seq, int64_t n) { check(llmkit_paged_kv_cache_seq_truncate(get(), seq, n)); }
    /**
     * @brief Erases seq's tokens [from, to), the later ones moving down, their K turned back by
     * to - from positions with `rope` (see llmkit_paged_kv_cache_seq_erase()): context shift.
     * @param seq A live sequence. @param from First token erased. @param to One past the last.
     * @param rope The rotation the appends used, or nullptr (K rows move as they are).
     */
    void erase(int32_t seq, int64_t from, int64_t to, const llmkit_rope_options *rope = nullptr) {
        check(llmkit_paged_kv_cache_seq_erase(get(), seq, from, to, rope));
    }
    /**
     * @brief Releases the blocks of seq's first n tokens (see llmkit_paged_kv_cache_seq_release_before()).
     * @param seq A live sequence. @param n Tokens no longer needed (0 just asks).
     * @return The first token seq still holds.
     */
    int64_t release_before(int32_t seq, int64_t n) {
        int64_t first = 0;
        check(llmkit_paged_kv_cache_seq_release_before(get(), seq, n, &first));
        return first;
    }
    /**
     * @brief seq's cached K and V as bytes (see llmkit_paged_kv_cache_seq_save()): the same
     * format from both kinds of cache, loadable by either with load().
     * @param seq A live sequence. @return The bytes.
     */
    std::vector<uint8_t> save(int32_t seq) const {
        std::vector<uint8_t> bytes(save_size(seq));
        save(seq, bytes.data(), bytes.size());
        return bytes;
    }
    /** @brief The bytes save() gives for seq. @param seq A live sequence. @return The count. */
    size_t save_size(int32_t seq) const {
        size_t n = 0;
        const llmkit_status st = llmkit_paged_kv_cache_seq_save(get(), seq, nullptr, 0, &n);
        if (st != LLMKIT_ERROR_BUFFER_TOO_SMALL) check(st);
        return n;
    }
    /** @brief save() into caller memory. @param seq A live sequence. @param buf At least save_size(seq) bytes. @param capacity Bytes at buf. */
    void save(int32_t seq, void *buf, size_t capacity) const {
        check(llmkit_paged_kv_cache_seq_save(get(), seq, buf, capacity, nullptr));
    }
    /** @brief Replaces seq's tokens with saved ones (see llmkit_paged_kv_cache_seq_load()). @param seq A live sequence. @param bytes What save() gave. */
    void load(int32_t seq, const std::vector<uint8_t> &bytes) {
        check(llmkit_paged_kv_cache_seq_load(get(), seq, bytes.data(), bytes.size()));
    }
    /** @brief Replaces seq's tokens with saved ones. @param seq A live sequence. @param data Saved bytes. @param size Their count. */
    void load(int32_t seq, const void *data, size_t size) { check(llmkit_paged_kv_cache_seq_load(get(), seq, data, size)); }
    /** @brief Tokens held. @param seq A live sequence. @param layer A layer, or -1 for the largest. @return The count. */
    int64_t length(int32_t seq, int32_t layer = -1) const {
        int64_t n = 0;
        check(llmkit_paged_kv_cache_seq_length(get(), seq, layer, &n));
        return n;
    }
    /** @brief A sequence's block ids. @param seq A live sequence. @return The table. */
    std::vector<int32_t> block_table(int32_t seq) const {
        int64_t n = 0;
        check(llmkit_paged_kv_cache_seq_block_table(get(), seq, nullptr, 0, &n));
        std::vector<int32_t> t(static_cast<size_t>(n));
        check(llmkit_paged_kv_cache_seq_block_table(get(), seq, t.data(), n, &n));
        return t;
    }
    /** @brief Appends K and V rows. @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. @param v Values. */
    void append(int32_t layer, int32_t seq, const tensor_ref &k, const tensor_ref &v) {
        check(llmkit_paged_kv_cache_append(get(), layer, seq, k.get(), v.get()));
    }
    /** @brief Appends K rows to a cache made with v_from_k (its V lies in K). @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. */
    void append(int32_t layer, int32_t seq, const tensor_ref &k) {
        check(llmkit_paged_kv_cache_append(get(), layer, seq, k.get(), nullptr));
    }
    /**
     * @brief Appends K and V rows, K rotated on its way in (see llmkit_paged_kv_cache_append_rope()).
     * @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. @param v Values.
     * @param rope The rotation; NULL for the defaults.
     */
    void append_rope(int32_t layer, int32_t seq, const tensor_ref &k, const tensor_ref &v,
                     const llmkit_rope_options *rope) {
        check(llmkit_paged_kv_cache_append_rope(get(), layer, seq, k.get(), v.get(), rope));
    }
    /**
     * @brief Appends K rows to a cache made with v_from_k, their rotary part (the last rope->rotary_dims of
     *        each row, past V: MLA's k_pe) rotated on its way in (see llmkit_paged_kv_cache_append_rope()).
     * @param layer A layer. @param seq A live sequence. @param k Keys [S, Hkv, D]. @param rope The rotation.
     */
    void append_rope(int32_t layer, int32_t seq, const tensor_ref &k, const llmkit_rope_options *rope) {
        check(llmkit_paged_kv_cache_append_rope(get(), layer, seq, k.get(), nullptr, rope));
    }
    /**
     * @brief Attention of the last Sq tokens of each sequence (see llmkit_paged_kv_cache_attention()).
     * @param layer A layer. @param q Queries [B, Sq, Hq, D], or packed [Tq, Hq, D] with options->cu_seqlens_q.
     * @param seq_ids B sequence ids.
     * @param out Output, q's shape. @param options NULL for defaults.
     */
    void attention(int32_t layer, const tensor_ref &q, const std::vector<int32_t> &seq_ids, const tensor_ref &out,
                   const llmkit_kv_attention_options *options = nullptr) const {
        check(llmkit_paged_kv_cache_attention(get(), layer, q.get(), seq_ids.data(), int64_t(seq_ids.size()),
                                              out.get(), options));
    }
    /** @brief Bytes of the blocks in use. @return The count. */
    uint64_t memory_bytes() const {
        uint64_t n = 0;
        check(llmkit_paged_kv_cache_memory_bytes(get(), &n, nullptr));
        return n;
    }
    /** @brief Blocks on the free list. @return The count. */
    int64_t free_blocks() const {
        int64_t n = 0;
        check(llmkit_paged_kv_cache_free_blocks(get(), &n));
        return n;
    }
    /** @brief The C handle. @return It. */
    llmkit_paged_kv_cache *get() const { return c_.get(); }

private:
    struct deleter {
        void operator()(llmkit_paged_kv_cache *c) const noexcept { llmkit_paged_kv_cache_free(c); }
    };
    std::unique_ptr<llmkit_paged_kv_cache, deleter> c_;
};

/** @} */

}  // namespace llmkit

#endif /* LLMKIT_HPP */
