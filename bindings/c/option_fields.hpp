// The fields of each option struct of the C API (llmkit.h), in order, so
// that read_options (guard.hpp) can refuse a struct_size that ends inside a
// field: a caller's struct from an older header ends between fields, and a
// size that cuts one (say half of a pointer) would leave llmkit a field that
// is part the caller's bytes and part the default's, a wild pointer among
// them. Found by fuzz_attention: options.mask cut after 4 of its 8 bytes.
//
// A new field of a struct goes at the end of its list here too; a list that
// misses a field, or is out of order, fails the static_assert in
// read_options (fields_in_order: each field starts where the one before it
// ends or at the next multiple of 8 after it, and the last one ends where
// the struct does, up to its alignment).
#pragma once

#include <cstddef>

#include "llmkit/llmkit.h"

namespace llmkit::capi {

struct field_span {
    const char *name;
    size_t begin, end;  // [begin, end) in bytes from the struct's start
};

template <typename T>
struct option_fields;  // specialised below, one per option struct

template <typename T>
constexpr bool fields_in_order() {
    size_t prev = 0;
    for (const field_span &f : option_fields<T>::list) {
        if (f.begin < prev) return false;
        if (f.begin > prev && (f.begin % 8 != 0 || f.begin - prev >= 8)) return false;  // room for a missing field
        prev = f.end;
    }
    return (prev + alignof(T) - 1) / alignof(T) * alignof(T) == sizeof(T);
}

#define LLMKIT_FIELD(f) field_span{#f, offsetof(T, f), offsetof(T, f) + sizeof(T::f)}

template <>
struct option_fields<llmkit_attention_options> {
    using T = llmkit_attention_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(causal), LLMKIT_FIELD(window), LLMKIT_FIELD(softcap),
        LLMKIT_FIELD(scale), LLMKIT_FIELD(alibi_slopes), LLMKIT_FIELD(mask), LLMKIT_FIELD(n_threads),
        LLMKIT_FIELD(stream), LLMKIT_FIELD(sinks), LLMKIT_FIELD(lse)
    };
};

template <>
struct option_fields<llmkit_rope_options> {
    using T = llmkit_rope_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(layout), LLMKIT_FIELD(theta), LLMKIT_FIELD(rotary_dims),
        LLMKIT_FIELD(scaling), LLMKIT_FIELD(factor), LLMKIT_FIELD(alpha), LLMKIT_FIELD(low_freq_factor),
        LLMKIT_FIELD(high_freq_factor), LLMKIT_FIELD(original_max_position), LLMKIT_FIELD(beta_fast),
        LLMKIT_FIELD(beta_slow), LLMKIT_FIELD(attention_factor), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(stream),
        LLMKIT_FIELD(frequency_factors), LLMKIT_FIELD(mrope_section), LLMKIT_FIELD(mrope_interleaved)
    };
};

template <>
struct option_fields<llmkit_kv_attention_options> {
    using T = llmkit_kv_attention_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(causal), LLMKIT_FIELD(window), LLMKIT_FIELD(softcap),
        LLMKIT_FIELD(scale), LLMKIT_FIELD(alibi_slopes), LLMKIT_FIELD(sinks), LLMKIT_FIELD(n_threads),
        LLMKIT_FIELD(split_keys), LLMKIT_FIELD(rope), LLMKIT_FIELD(lse), LLMKIT_FIELD(cu_seqlens_q)
    };
};

template <>
struct option_fields<llmkit_kv_cache_options> {
    using T = llmkit_kv_cache_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_layers), LLMKIT_FIELD(n_kv_heads), LLMKIT_FIELD(head_dim),
        LLMKIT_FIELD(capacity), LLMKIT_FIELD(max_sequences), LLMKIT_FIELD(dtype), LLMKIT_FIELD(v_head_dim),
        LLMKIT_FIELD(v_from_k)
    };
};

template <>
struct option_fields<llmkit_paged_kv_cache_options> {
    using T = llmkit_paged_kv_cache_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_layers), LLMKIT_FIELD(n_kv_heads), LLMKIT_FIELD(head_dim),
        LLMKIT_FIELD(block_size), LLMKIT_FIELD(n_blocks), LLMKIT_FIELD(max_sequences),
        LLMKIT_FIELD(max_blocks_per_seq), LLMKIT_FIELD(dtype), LLMKIT_FIELD(v_head_dim), LLMKIT_FIELD(v_from_k)
    };
};

template <>
struct option_fields<llmkit_gguf_open_options> {
    using T = llmkit_gguf_open_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(allow_duplicate_keys), LLMKIT_FIELD(no_mmap)
    };
};

template <>
struct option_fields<llmkit_quantize_options> {
    using T = llmkit_quantize_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(imatrix), LLMKIT_FIELD(zero_point)
    };
};

template <>
struct option_fields<llmkit_dequantize_options> {
    using T = llmkit_dequantize_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_threads)
    };
};

template <>
struct option_fields<llmkit_gptq_options> {
    using T = llmkit_gptq_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(damp), LLMKIT_FIELD(block_size),
        LLMKIT_FIELD(act_order), LLMKIT_FIELD(zero_point), LLMKIT_FIELD(progress), LLMKIT_FIELD(user_data)
    };
};

template <>
struct option_fields<llmkit_awq_options> {
    using T = llmkit_awq_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(n_grid), LLMKIT_FIELD(max_shrink),
        LLMKIT_FIELD(clip), LLMKIT_FIELD(zero_point), LLMKIT_FIELD(progress), LLMKIT_FIELD(user_data)
    };
};

template <>
struct option_fields<llmkit_quant_matmul_options> {
    using T = llmkit_quant_matmul_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(x_rounding)
    };
};

template <>
struct option_fields<llmkit_sampler_chain_options> {
    using T = llmkit_sampler_chain_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(seed)
    };
};

template <>
struct option_fields<llmkit_sample_options> {
    using T = llmkit_sample_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(seq_ids), LLMKIT_FIELD(n_seq_ids),
        LLMKIT_FIELD(chosen_logprobs), LLMKIT_FIELD(top_ids), LLMKIT_FIELD(top_logprobs),
        LLMKIT_FIELD(logprob_source), LLMKIT_FIELD(stream)
    };
};

template <>
struct option_fields<llmkit_sample_params> {
    using T = llmkit_sample_params;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(temperature), LLMKIT_FIELD(top_k), LLMKIT_FIELD(top_p),
        LLMKIT_FIELD(min_p), LLMKIT_FIELD(seed), LLMKIT_FIELD(n_threads)
    };
};

template <>
struct option_fields<llmkit_speculative_options> {
    using T = llmkit_speculative_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(seed), LLMKIT_FIELD(step), LLMKIT_FIELD(seq_ids),
        LLMKIT_FIELD(n_seq_ids), LLMKIT_FIELD(n_threads), LLMKIT_FIELD(stream)
    };
};

template <>
struct option_fields<llmkit_encode_options> {
    using T = llmkit_encode_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(allow_all_special), LLMKIT_FIELD(allowed_special),
        LLMKIT_FIELD(n_allowed_special), LLMKIT_FIELD(special_as_text), LLMKIT_FIELD(n_threads),
        LLMKIT_FIELD(add_special_tokens)
    };
};

template <>
struct option_fields<llmkit_tokenizer_load_options> {
    using T = llmkit_tokenizer_load_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(tiktoken_encoding), LLMKIT_FIELD(gguf_allow_duplicate_keys)
    };
};

template <>
struct option_fields<llmkit_tiktoken_encoding> {
    using T = llmkit_tiktoken_encoding;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(pattern), LLMKIT_FIELD(special_tokens),
        LLMKIT_FIELD(special_token_ids), LLMKIT_FIELD(n_special_tokens)
    };
};

template <>
struct option_fields<llmkit_bpe_train_options> {
    using T = llmkit_bpe_train_options;
    static constexpr field_span list[] = {
        LLMKIT_FIELD(struct_size), LLMKIT_FIELD(vocab_size), LLMKIT_FIELD(pattern),
        LLMKIT_FIELD(special_tokens), LLMKIT_FIELD(n_special_tokens), LLMKIT_FIELD(progress),
        LLMKIT_FIELD(n_threads), LLMKIT_FIELD(user_data)
    };
};

#undef LLMKIT_FIELD

}  // namespace llmkit::capi
