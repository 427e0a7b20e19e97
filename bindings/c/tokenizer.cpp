// C ABI: tokenizers.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/threads.hpp"
#include "guard.hpp"
#include "llmkit/llmkit.h"
#include "tokenizer/hf_json.hpp"
#include "tokenizer/stream_decoder.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/train.hpp"

using namespace llmkit;
using core::fail;

struct llmkit_tokenizer {
    std::unique_ptr<tok::tokenizer> impl;
};

namespace {

const llmkit_encode_options k_encode_defaults = LLMKIT_ENCODE_OPTIONS_INIT;

// The core's encode options from the C struct (views into the caller's strings).
tok::encode_options to_core_options(const llmkit_encode_options &o) {
    tok::encode_options eo;
    eo.allow_all_special = o.allow_all_special != 0;
    eo.special_as_text = o.special_as_text != 0;
    eo.add_special_tokens = o.add_special_tokens != 0;
    if (o.n_allowed_special) {
        capi::require_non_null(o.allowed_special, "options.allowed_special");
        for (size_t i = 0; i < o.n_allowed_special; ++i) {
            if (!o.allowed_special[i]) fail(LLMKIT_ERROR_NULL_POINTER, "options.allowed_special[", i, "] is NULL");
            eo.allowed_special.emplace_back(o.allowed_special[i]);
        }
    }
    return eo;
}

// The C load options (NULL: defaults; checked struct_size) as the core's.
tok::file_load_options load_options(const llmkit_tokenizer_load_options *options) {
    static const llmkit_tokenizer_load_options defaults = LLMKIT_TOKENIZER_LOAD_OPTIONS_INIT;
    const auto o = capi::read_options(options, defaults, "options");
    tok::file_load_options lo;
    if (o.tiktoken_encoding) lo.tiktoken_encoding = o.tiktoken_encoding;
    lo.gguf_allow_duplicate_keys = o.gguf_allow_duplicate_keys != 0;
    return lo;
}

}  // namespace

extern "C" {

llmkit_status llmkit_tokenizer_from_tiktoken(llmkit_tokenizer **out, const char *path, const char *encoding_name) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(path, "path");
        capi::require_non_null(encoding_name, "encoding_name");
        auto t = std::make_unique<llmkit_tokenizer>();
        t->impl = tok::load_tiktoken(path, encoding_name);
        *out = t.release();
    });
}

llmkit_status llmkit_tokenizer_from_file(llmkit_tokenizer **out, const char *path,
                                        const llmkit_tokenizer_load_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(path, "path");
        const tok::file_load_options lo = load_options(options);
        auto t = std::make_unique<llmkit_tokenizer>();
        t->impl = tok::load_tokenizer_file(path, lo);
        *out = t.release();
    });
}

llmkit_status llmkit_tokenizer_from_memory(llmkit_tokenizer **out, const void *data, size_t size,
                                          const llmkit_tokenizer_load_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        if (size > 0) capi::require_non_null(data, "data");
        const tok::file_load_options lo = load_options(options);
        auto t = std::make_unique<llmkit_tokenizer>();
        t->impl = tok::load_tokenizer_memory(std::string_view(static_cast<const char *>(data), size), "(memory)", lo);
        *out = t.release();
    });
}

llmkit_status llmkit_tokenizer_from_ranks(llmkit_tokenizer **out, const void *ranks, size_t size,
                                         const llmkit_tiktoken_encoding *encoding) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        if (size > 0) capi::require_non_null(ranks, "ranks");
        capi::require_non_null(encoding, "encoding");
        static const llmkit_tiktoken_encoding defaults = LLMKIT_TIKTOKEN_ENCODING_INIT;
        const auto e = capi::read_options(encoding, defaults, "encoding");
        capi::require_non_null(e.pattern, "encoding.pattern");
        std::vector<tok::special_token> specials;
        if (e.n_special_tokens) {
            capi::require_non_null(e.special_tokens, "encoding.special_tokens");
            capi::require_non_null(e.special_token_ids, "encoding.special_token_ids");
            for (size_t i = 0; i < e.n_special_tokens; ++i) {
                if (!e.special_tokens[i]) fail(LLMKIT_ERROR_NULL_POINTER, "encoding.special_tokens[", i, "] is NULL");
                specials.push_back({e.special_tokens[i], e.special_token_ids[i]});
            }
        }
        auto t = std::make_unique<llmkit_tokenizer>();
        t->impl = tok::custom_tiktoken(std::string_view(static_cast<const char *>(ranks), size), "(memory)",
                                       e.pattern, std::move(specials));
        *out = t.release();
    });
}

void llmkit_tokenizer_free(llmkit_tokenizer *tokenizer) { delete tokenizer; }

llmkit_status llmkit_tokenizer_vocab_size(const llmkit_tokenizer *tokenizer, int32_t *out) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(out, "out");
        *out = tokenizer->impl->vocab_size();
    });
}

llmkit_status llmkit_tokenizer_encode(const llmkit_tokenizer *tokenizer, const char *text, size_t len, int32_t *ids,
                                      size_t capacity, size_t *n_ids, const llmkit_encode_options *options) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(n_ids, "n_ids");
        if (len) capi::require_non_null(text, "text");
        const auto o = capi::read_options(options, k_encode_defaults, "options");
        const tok::encode_options eo = to_core_options(o);
        std::vector<int32_t> out;
        // Room for as many ids as the caller has (at most one per byte plus a
        // few specials, the bound for byte-level BPE): reserved, not touched,
        // so a long text encodes without the vector's regrowth copies.
        if (ids) out.reserve(std::min(capacity, len + 16));
        tokenizer->impl->encode(std::string_view(len ? text : "", len), eo, out);
        *n_ids = out.size();
        if (!ids) return;
        if (capacity < out.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "encode: buffer of ", capacity, " ids, ", out.size(), " needed");
        if (!out.empty()) std::memcpy(ids, out.data(), out.size() * sizeof(int32_t));
    });
}

llmkit_status llmkit_tokenizer_encode_batch(const llmkit_tokenizer *tokenizer, const char *const *texts,
                                            const size_t *lens, size_t n_texts, int32_t *ids, size_t capacity,
                                            size_t *offsets, const llmkit_encode_options *options) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(offsets, "offsets");
        if (n_texts) {
            capi::require_non_null(texts, "texts");
            capi::require_non_null(lens, "lens");
        }
        const auto o = capi::read_options(options, k_encode_defaults, "options");
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        const tok::encode_options eo = to_core_options(o);
        for (size_t i = 0; i < n_texts; ++i)
            if (lens[i] && !texts[i]) fail(LLMKIT_ERROR_NULL_POINTER, "texts[", i, "] is NULL");

        // Each text into its own vector; a failure is kept per text so that the
        // error reported is the first failing text's whatever the scheduling,
        // and texts after a known failure are skipped.
        std::vector<std::vector<int32_t>> out(n_texts);
        std::vector<std::exception_ptr> errors(n_texts);
        std::atomic<size_t> first_error{n_texts};
        core::parallel_for(int64_t(n_texts), o.n_threads, [&](int64_t b) {
            const auto i = size_t(b);
            if (i > first_error.load(std::memory_order_relaxed)) return;
            try {
                tokenizer->impl->encode(std::string_view(lens[i] ? texts[i] : "", lens[i]), eo, out[i]);
            } catch (...) {
                errors[i] = std::current_exception();
                size_t seen = first_error.load();
                while (i < seen && !first_error.compare_exchange_weak(seen, i)) {
                }
            }
        });
        const size_t bad = first_error.load();
        if (bad < n_texts) {
            try {
                std::rethrow_exception(errors[bad]);
            } catch (const core::error &e) {
                fail(e.status(), "texts[", bad, "]: ", e.what());
            }
        }

        size_t total = 0;
        for (size_t i = 0; i < n_texts; ++i) {
            offsets[i] = total;
            total += out[i].size();
        }
        offsets[n_texts] = total;
        if (!ids) return;
        if (capacity < total)
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "encode_batch: buffer of ", capacity, " ids, ", total, " needed");
        for (size_t i = 0; i < n_texts; ++i)
            if (!out[i].empty()) std::memcpy(ids + offsets[i], out[i].data(), out[i].size() * sizeof(int32_t));
    });
}

llmkit_status llmkit_tokenizer_decode(const llmkit_tokenizer *tokenizer, const int32_t *ids, size_t n, char *buf,
                                      size_t capacity, size_t *needed) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        if (n) capi::require_non_null(ids, "ids");
        std::string out;
        tokenizer->impl->decode(ids, n, out);
        if (needed) *needed = out.size();
        if (!buf) return;
        if (capacity < out.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "decode: buffer of ", capacity, " bytes, ", out.size(), " needed");
        if (!out.empty()) std::memcpy(buf, out.data(), out.size());
    });
}

llmkit_status llmkit_tokenizer_token_to_id(const llmkit_tokenizer *tokenizer, const char *token, size_t len,
                                           int32_t *id) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(id, "id");
        if (len) capi::require_non_null(token, "token");
        *id = tokenizer->impl->token_to_id(std::string_view(len ? token : "", len));
    });
}

llmkit_status llmkit_tokenizer_id_to_token(const llmkit_tokenizer *tokenizer, int32_t id, char *buf, size_t capacity,
                                           size_t *needed, int32_t *is_special) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        std::string_view bytes;
        if (!tokenizer->impl->id_to_token(id, bytes))
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "id ", id, " is not a token id (vocabulary size ",
                 tokenizer->impl->vocab_size(), ")");
        if (needed) *needed = bytes.size();
        if (is_special) *is_special = tokenizer->impl->is_special(id) ? 1 : 0;
        if (!buf) return;
        if (capacity < bytes.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "id_to_token: buffer of ", capacity, " bytes, ", bytes.size(),
                 " needed");
        if (!bytes.empty()) std::memcpy(buf, bytes.data(), bytes.size());
    });
}

}  // extern "C"

// ---------------------------------------------------------------------------
// Streaming decode (toktrain).

struct llmkit_tokenizer_decoder {
    tok::stream_decoder impl;
};

namespace {

// Copies `text` to the caller's buffer (the (buf, capacity, &needed) convention).
void write_out(const std::string &text, char *buf, size_t capacity, size_t *needed, const char *what) {
    if (needed) *needed = text.size();
    if (!buf) return;
    if (capacity < text.size())
        fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, what, ": buffer of ", capacity, " bytes, ", text.size(), " needed");
    if (!text.empty()) std::memcpy(buf, text.data(), text.size());
}

}  // namespace

extern "C" {

llmkit_status llmkit_tokenizer_decoder_new(llmkit_tokenizer_decoder **out, const llmkit_tokenizer *tokenizer) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(tokenizer, "tokenizer");
        *out = new llmkit_tokenizer_decoder{tok::stream_decoder(*tokenizer->impl)};
    });
}

llmkit_status llmkit_tokenizer_decoder_feed(llmkit_tokenizer_decoder *decoder, const int32_t *ids, size_t n,
                                            char *buf, size_t capacity, size_t *needed) {
    return capi::guard([&] {
        capi::require_non_null(decoder, "decoder");
        if (n) capi::require_non_null(ids, "ids");
        std::string saved = decoder->impl.state();
        std::string text;
        decoder->impl.feed(ids, n, text);
        // Commit only when the caller takes the text: otherwise the same ids can be fed again.
        if (!buf || capacity < text.size()) decoder->impl.restore(std::move(saved));
        write_out(text, buf, capacity, needed, "decoder_feed");
    });
}

llmkit_status llmkit_tokenizer_decoder_flush(llmkit_tokenizer_decoder *decoder, char *buf, size_t capacity,
                                             size_t *needed) {
    return capi::guard([&] {
        capi::require_non_null(decoder, "decoder");
        std::string saved = decoder->impl.state();
        std::string text;
        decoder->impl.flush(text);
        if (!buf || capacity < text.size()) decoder->impl.restore(std::move(saved));
        write_out(text, buf, capacity, needed, "decoder_flush");
    });
}

void llmkit_tokenizer_decoder_free(llmkit_tokenizer_decoder *decoder) { delete decoder; }

}  // extern "C"

// ---------------------------------------------------------------------------
// Offsets (toktrain).

extern "C" llmkit_status llmkit_tokenizer_encode_with_offsets(const llmkit_tokenizer *tokenizer, const char *text,
                                                              size_t len, int32_t *ids, size_t *offsets,
                                                              size_t capacity, size_t *n_ids,
                                                              const llmkit_encode_options *options) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(n_ids, "n_ids");
        if (len) capi::require_non_null(text, "text");
        if (ids) capi::require_non_null(offsets, "offsets");
        const auto o = capi::read_options(options, k_encode_defaults, "options");
        const tok::encode_options eo = to_core_options(o);
        std::vector<int32_t> out;
        std::vector<std::pair<size_t, size_t>> spans;
        tokenizer->impl->encode_with_offsets(std::string_view(len ? text : "", len), eo, out, spans);
        *n_ids = out.size();
        if (!ids) return;
        if (capacity < out.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "encode_with_offsets: buffer of ", capacity, " ids, ", out.size(),
                 " needed");
        for (size_t i = 0; i < out.size(); ++i) {
            ids[i] = out[i];
            offsets[2 * i] = spans[i].first;
            offsets[2 * i + 1] = spans[i].second;
        }
    });
}

extern "C" llmkit_status llmkit_tokenizer_encode_pair(const llmkit_tokenizer *tokenizer, const char *text_a,
                                                      size_t len_a, const char *text_b, size_t len_b, int32_t *ids,
                                                      int32_t *type_ids, int32_t *sequence_ids, size_t *offsets,
                                                      size_t capacity, size_t *n_ids,
                                                      const llmkit_encode_options *options) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(n_ids, "n_ids");
        if (len_a) capi::require_non_null(text_a, "text_a");
        if (len_b) capi::require_non_null(text_b, "text_b");
        const auto o = capi::read_options(options, k_encode_defaults, "options");
        const tok::encode_options eo = to_core_options(o);
        tok::encoding e;
        tokenizer->impl->encode_pair(std::string_view(len_a ? text_a : "", len_a),
                                     std::string_view(len_b ? text_b : "", len_b), eo, offsets != nullptr, e);
        *n_ids = e.ids.size();
        if (!ids) return;
        if (capacity < e.ids.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "encode_pair: buffers of ", capacity, " ids, ", e.ids.size(),
                 " needed");
        std::copy(e.ids.begin(), e.ids.end(), ids);
        if (type_ids) std::copy(e.type_ids.begin(), e.type_ids.end(), type_ids);
        if (sequence_ids) std::copy(e.sequence_ids.begin(), e.sequence_ids.end(), sequence_ids);
        for (size_t i = 0; offsets && i < e.spans.size(); ++i) {
            offsets[2 * i] = e.spans[i].first;
            offsets[2 * i + 1] = e.spans[i].second;
        }
    });
}

// ---------------------------------------------------------------------------
// BPE training and saving (toktrain).

namespace {

const llmkit_bpe_train_options k_train_defaults = LLMKIT_BPE_TRAIN_OPTIONS_INIT;

const tok::byte_level_bpe &as_byte_level(const llmkit_tokenizer *t, const char *what) {
    const auto *b = dynamic_cast<const tok::byte_level_bpe *>(t->impl.get());
    if (!b) fail(LLMKIT_ERROR_UNSUPPORTED, what, " needs a byte-level BPE tokenizer, not ", t->impl->kind());
    return *b;
}

}  // namespace

extern "C" {

llmkit_status llmkit_bpe_train(llmkit_tokenizer **out, const char *const *texts, const size_t *lens, size_t n_texts,
                               const llmkit_bpe_train_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(options, "options (vocab_size is required)");
        if (n_texts) {
            capi::require_non_null(texts, "texts");
            capi::require_non_null(lens, "lens");
        }
        const auto o = capi::read_options(options, k_train_defaults, "options");
        tok::bpe_train_options to;
        to.vocab_size = o.vocab_size;
        const std::string pattern = o.pattern ? o.pattern : "cl100k_base";
        const char *preset = tok::tiktoken_preset_pattern(pattern);
        to.pattern = preset ? preset : pattern;
        if (o.n_special_tokens) capi::require_non_null(o.special_tokens, "options.special_tokens");
        for (size_t i = 0; i < o.n_special_tokens; ++i) {
            if (!o.special_tokens[i]) fail(LLMKIT_ERROR_NULL_POINTER, "options.special_tokens[", i, "] is NULL");
            to.special_tokens.emplace_back(o.special_tokens[i]);
        }
        to.n_threads = o.n_threads;
        if (o.progress) {
            const auto fn = o.progress;
            void *user = o.user_data;
            to.progress = [fn, user](size_t done, size_t total) { return fn(user, done, total) == 0; };
        }
        std::vector<std::string_view> views;
        for (size_t i = 0; i < n_texts; ++i) {
            if (lens[i] && !texts[i]) fail(LLMKIT_ERROR_NULL_POINTER, "texts[", i, "] is NULL");
            views.emplace_back(lens[i] ? texts[i] : "", lens[i]);
        }
        auto t = std::make_unique<llmkit_tokenizer>();
        t->impl = tok::train_bpe_tokenizer(views, to);
        *out = t.release();
    });
}

llmkit_status llmkit_tokenizer_save_tiktoken(const llmkit_tokenizer *tokenizer, const char *path) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(path, "path");
        tok::save_tiktoken(as_byte_level(tokenizer, "save_tiktoken"), path);
    });
}

llmkit_status llmkit_tokenizer_save_tokenizer_json(const llmkit_tokenizer *tokenizer, const char *path) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(path, "path");
        tok::save_tokenizer_json(as_byte_level(tokenizer, "save_tokenizer_json"), path);
    });
}

llmkit_status llmkit_tokenizer_to_tiktoken(const llmkit_tokenizer *tokenizer, char *buf, size_t capacity,
                                          size_t *needed) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        const std::string text = tok::tiktoken_text(as_byte_level(tokenizer, "to_tiktoken"));
        if (needed) *needed = text.size();
        if (!buf) return;
        if (capacity < text.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "to_tiktoken: buffer of ", capacity, " bytes, ", text.size(), " needed");
        std::memcpy(buf, text.data(), text.size());
    });
}

llmkit_status llmkit_tokenizer_pattern(const llmkit_tokenizer *tokenizer, const char **pattern) {
    return capi::guard([&] {
        capi::require_non_null(tokenizer, "tokenizer");
        capi::require_non_null(pattern, "pattern");
        *pattern = as_byte_level(tokenizer, "pattern").pre_tokenizer().pattern().c_str();
    });
}

}  // extern "C"
