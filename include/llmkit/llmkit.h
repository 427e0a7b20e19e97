/**
 * @file llmkit.h
 * @brief The stable C ABI of llmkit (C99).
 *
 * Everything llmkit can do is reachable through this header. The C++ header
 * `llmkit.hpp` and the Python package are thin faces over these functions.
 *
 * Conventions (the same for every block):
 * - Every fallible function returns an #llmkit_status: #LLMKIT_OK (0) on
 *   success, a negative code on failure. On failure, llmkit_last_error_message()
 *   returns a message for the calling thread that names the problem.
 * - Nothing ever throws or aborts across this boundary.
 * - Objects are opaque handles made by `llmkit_<object>_create` and released by
 *   `llmkit_<object>_free`; freeing NULL does nothing.
 * - Option structs begin with `uint32_t struct_size`, are initialised with their
 *   `LLMKIT_*_INIT` macro, only ever grow at the end, and are passed by pointer;
 *   a NULL options pointer means "all defaults". A smaller struct_size (a
 *   caller built with an older header) keeps the defaults of the fields past
 *   it; a larger one, or one that ends inside a field, is refused with
 *   #LLMKIT_ERROR_INVALID_ARGUMENT.
 * - Tensors cross the boundary as #llmkit_tensor, which has the memory layout of
 *   DLPack's `DLTensor`: a `DLTensor*` can be passed where an
 *   `const llmkit_tensor*` is expected.
 * - Memory passed in stays the caller's; llmkit keeps no pointer to it after the
 *   call returns unless the function says otherwise.
 */
#ifndef LLMKIT_H
#define LLMKIT_H

#include <stddef.h>
#include <stdint.h>

#include "llmkit_export.h"
#include "llmkit/llmkit_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @def LLMKIT_ENUM_BASE
 * @brief The underlying type of llmkit's enums: `: int` in C++, nothing in C.
 *
 * The enums are int-sized in C. In C++ they get int as their fixed underlying
 * type, so that every int a caller passes is a value of the type (without it,
 * C++ makes a value outside the enumerators' range undefined behaviour) and
 * the library can refuse it with an error.
 */
#ifdef __cplusplus
#define LLMKIT_ENUM_BASE : int
#else
#define LLMKIT_ENUM_BASE
#endif

/* ------------------------------------------------------------------------- */
/** @defgroup core Core: versions, status codes, errors
 *  @{ */

/**
 * @brief Status code returned by every fallible llmkit function.
 *
 * Zero is success; errors are negative. Values are never renumbered: a code
 * that exists in one release has the same value in every later one.
 */
typedef enum llmkit_status LLMKIT_ENUM_BASE {
    LLMKIT_OK = 0,                        /**< Success. */
    LLMKIT_ERROR_INVALID_ARGUMENT = -1,   /**< An argument has a value outside its domain (e.g. top_p = 1.5). */
    LLMKIT_ERROR_NULL_POINTER = -2,       /**< A required pointer or handle was NULL. */
    LLMKIT_ERROR_SHAPE = -3,              /**< A tensor has the wrong rank or mismatched dimensions. */
    LLMKIT_ERROR_DTYPE = -4,              /**< A tensor has a data type the function does not accept. */
    LLMKIT_ERROR_OUT_OF_RANGE = -5,       /**< An index or token id lies outside its valid range. */
    LLMKIT_ERROR_NON_FINITE = -6,         /**< An input holds NaN or an infinity where a finite value is required. */
    LLMKIT_ERROR_BUFFER_TOO_SMALL = -7,   /**< A caller-owned buffer is too small; the needed size was reported. */
    LLMKIT_ERROR_OUT_OF_MEMORY = -8,      /**< An allocation failed. */
    LLMKIT_ERROR_UNSUPPORTED = -9,        /**< The combination of arguments is valid but not implemented. */
    LLMKIT_ERROR_NO_DEVICE = -10,         /**< The tensor's device is not available (no GPU, or built without CUDA). */
    LLMKIT_ERROR_DEVICE = -11,            /**< The device runtime reported a failure. */
    LLMKIT_ERROR_IO = -12,                /**< A file could not be opened, read or written. */
    LLMKIT_ERROR_FORMAT = -13,            /**< A file or buffer is malformed, truncated or hostile. */
    LLMKIT_ERROR_INTERNAL = -14,          /**< A bug in llmkit: please report it with the message. */
    LLMKIT_ERROR_CANCELLED = -15          /**< The caller's progress callback asked to stop (e.g. llmkit_bpe_train()). */
} llmkit_status;

/**
 * @brief The library's version as "MAJOR.MINOR.PATCH".
 *
 * Compare with #LLMKIT_VERSION_STRING to detect a header/library mismatch.
 * @return A static string; never NULL. Thread-safe.
 */
LLMKIT_API const char *llmkit_version(void);

/**
 * @brief The library's version as one integer, MAJOR*10000 + MINOR*100 + PATCH.
 * @return The same encoding as #LLMKIT_VERSION_NUMBER. Thread-safe.
 */
LLMKIT_API uint32_t llmkit_version_number(void);

/**
 * @brief How this library was built: "cuda=on|off onednn=on|off sanitizers=on|off".
 * @return A static string; never NULL. Thread-safe.
 */
LLMKIT_API const char *llmkit_build_info(void);

/**
 * @brief A static, human-readable name for a status code ("LLMKIT_ERROR_SHAPE").
 * @param status Any value; unknown values give "LLMKIT_ERROR_UNKNOWN".
 * @return A static string; never NULL. Thread-safe.
 */
LLMKIT_API const char *llmkit_status_string(llmkit_status status);

/**
 * @brief The message of the last failed llmkit call on the calling thread.
 *
 * Each thread has its own message, so concurrent calls never overwrite each
 * other's. A successful call does not clear it.
 * @return A pointer owned by llmkit, valid until the next llmkit call on this
 *         thread; "" if no call has failed on this thread. Never NULL.
 */
LLMKIT_API const char *llmkit_last_error_message(void);

/** @brief Clears the calling thread's last error message. Thread-safe. */
LLMKIT_API void llmkit_clear_error(void);

/** @} */

/* ------------------------------------------------------------------------- */
/** @defgroup tensor Tensors and devices (DLPack-compatible)
 *  @{ */

/** @brief Device types, numbered as DLPack's `DLDeviceType`. */
typedef enum llmkit_device_type LLMKIT_ENUM_BASE {
    LLMKIT_DEVICE_CPU = 1,          /**< Host memory. */
    LLMKIT_DEVICE_CUDA = 2,         /**< CUDA device memory. */
    LLMKIT_DEVICE_CUDA_HOST = 3,    /**< CUDA pinned host memory (treated as host memory). */
    LLMKIT_DEVICE_CUDA_MANAGED = 13 /**< CUDA managed memory (treated as device memory). */
} llmkit_device_type;

/** @brief A device: type and ordinal; the layout of DLPack's `DLDevice`. */
typedef struct llmkit_device {
    int32_t device_type; /**< An #llmkit_device_type value. */
    int32_t device_id;   /**< Device ordinal; 0 for the CPU. */
} llmkit_device;

/** @brief Type codes, numbered as DLPack's `DLDataTypeCode`. */
typedef enum llmkit_dtype_code LLMKIT_ENUM_BASE {
    LLMKIT_DTYPE_INT = 0,    /**< Signed integer. */
    LLMKIT_DTYPE_UINT = 1,   /**< Unsigned integer. */
    LLMKIT_DTYPE_FLOAT = 2,  /**< IEEE floating point (16, 32, 64 bits). */
    LLMKIT_DTYPE_BFLOAT = 4, /**< bfloat16. */
    LLMKIT_DTYPE_BOOL = 6    /**< Boolean (8 bits). */
} llmkit_dtype_code;

/** @brief An element type; the layout of DLPack's `DLDataType`. */
typedef struct llmkit_dtype {
    uint8_t code;   /**< An #llmkit_dtype_code value. */
    uint8_t bits;   /**< Bits per lane: 8, 16, 32 or 64. */
    uint16_t lanes; /**< Vector lanes; llmkit accepts only 1. */
} llmkit_dtype;

/**
 * @brief A view of an n-dimensional array; the memory layout of DLPack's `DLTensor`.
 *
 * llmkit never owns the memory a tensor points at. `strides` counts elements,
 * not bytes; NULL means compact row-major. Strides whose byte offsets would
 * pass 2^63 are refused (#LLMKIT_ERROR_SHAPE) before any element is read.
 * The address of element
 * (i0, i1, ...) is `(char*)data + byte_offset + (i0*strides[0] + i1*strides[1] + ...) * bits/8`.
 */
typedef struct llmkit_tensor {
    void *data;             /**< Base pointer (host or device memory per `device`). */
    llmkit_device device;   /**< Where `data` lives. */
    int32_t ndim;           /**< Number of dimensions, 0..8. */
    llmkit_dtype dtype;     /**< Element type. */
    const int64_t *shape;   /**< `ndim` extents. */
    const int64_t *strides; /**< `ndim` strides in elements, or NULL for compact row-major. */
    uint64_t byte_offset;   /**< Bytes from `data` to the first element. */
} llmkit_tensor;

/** @brief The dtype of 32-bit floats, for filling an #llmkit_tensor. */
#define LLMKIT_DTYPE_F32 {LLMKIT_DTYPE_FLOAT, 32, 1}
/** @brief The dtype of 16-bit IEEE floats. */
#define LLMKIT_DTYPE_F16 {LLMKIT_DTYPE_FLOAT, 16, 1}
/** @brief The dtype of bfloat16. */
#define LLMKIT_DTYPE_BF16 {LLMKIT_DTYPE_BFLOAT, 16, 1}
/** @brief The dtype of 32-bit signed integers. */
#define LLMKIT_DTYPE_I32 {LLMKIT_DTYPE_INT, 32, 1}
/** @brief The dtype of 64-bit signed integers. */
#define LLMKIT_DTYPE_I64 {LLMKIT_DTYPE_INT, 64, 1}
/** @brief The CPU device. */
#define LLMKIT_DEVICE_HOST {LLMKIT_DEVICE_CPU, 0}

/**
 * @brief Whether llmkit was built with a backend for `device_type`.
 * @param device_type An #llmkit_device_type value.
 * @return 1 if compiled in, 0 if not. Thread-safe.
 */
LLMKIT_API int llmkit_backend_compiled(int32_t device_type);

/**
 * @brief Counts the usable devices of a type on this machine.
 * @param[out] count Number of devices (1 for the CPU; 0 CUDA devices when no
 *             GPU or driver is present).
 * @param device_type An #llmkit_device_type value.
 * @return #LLMKIT_OK, or #LLMKIT_ERROR_NO_DEVICE when that backend was not
 *         compiled in (count is then 0). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_device_count(int32_t *count, int32_t device_type);

/**
 * @brief Sets the default number of worker threads for CPU kernels.
 * @param n_threads 1 or more; 0 restores the default (all hardware threads).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT for a negative value.
 *         Thread-safe; affects calls that start afterwards.
 */
LLMKIT_API llmkit_status llmkit_set_num_threads(int32_t n_threads);

/**
 * @brief The current default number of CPU worker threads. Thread-safe.
 * @return The count, always >= 1.
 */
LLMKIT_API int32_t llmkit_get_num_threads(void);

/** @} */

/* ------------------------------------------------------------------------- */
/** @defgroup sampling Sampling: sampler chains, one-call sampling, speculative verification
 *
 * A sampler chain turns a batch of logits, shape [B, V] (fp32, fp16 or bf16),
 * into one token id per row. Its steps run in the order they were added, like
 * llama.cpp's `llama_sampler_chain`; the last step picks the token (greedy,
 * a random draw, or mirostat). A chain that does not end in a picking step
 * picks with a random draw from the distribution its steps leave.
 *
 * Random draws are reproducible: each comes from Philox-4x32-10 with key = the
 * chain's seed and counter = (draw index, the sequence's step number, sequence id
 * low word, sequence id high word), so the same seed gives the same tokens
 * whatever the thread count and whatever other sequences share the batch. The
 * step number has 32 bits of counter and wraps after 2^32 steps of one sequence.
 *
 * Logits may contain -inf (a token that can never be picked); NaN and +inf are
 * errors (#LLMKIT_ERROR_NON_FINITE), as is a row with no finite logit.
 *
 * Thread safety: a chain carries per-sequence state (token history, mirostat's
 * mu, the step counter), so calls on one chain must not overlap; distinct
 * chains may be used from different threads at once. Each call may itself use
 * several worker threads.
 *  @{ */

/** @brief Opaque handle to a sampler chain. */
typedef struct llmkit_sampler_chain llmkit_sampler_chain;

/** @brief Options for llmkit_sampler_chain_create(). */
typedef struct llmkit_sampler_chain_options {
    uint32_t struct_size; /**< sizeof(llmkit_sampler_chain_options). */
    uint64_t seed;        /**< Key of every random draw the chain makes. Default 0. */
} llmkit_sampler_chain_options;

/** @brief Default #llmkit_sampler_chain_options. */
#define LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT {sizeof(llmkit_sampler_chain_options), 0}

/**
 * @brief Creates an empty sampler chain.
 * @param[out] out Receives the new chain; the caller frees it with llmkit_sampler_chain_free().
 * @param options NULL for defaults.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER, #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (bad struct_size) or #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_create(llmkit_sampler_chain **out,
                                                     const llmkit_sampler_chain_options *options);

/**
 * @brief Frees a chain and all its state. Not concurrently with other calls on it.
 * @param chain The chain; NULL is ignored.
 */
LLMKIT_API void llmkit_sampler_chain_free(llmkit_sampler_chain *chain);

/**
 * @brief Appends the greedy picker: the token with the largest logit (lowest id on ties).
 * @param chain The chain. @return #LLMKIT_OK or an error.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_greedy(llmkit_sampler_chain *chain);

/**
 * @brief Appends the random picker: one Philox draw from softmax of the remaining logits.
 * @param chain The chain. @return #LLMKIT_OK or an error.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_dist(llmkit_sampler_chain *chain);

/**
 * @brief Appends temperature scaling: logit / t.
 * @param chain The chain.
 * @param t Temperature, >= 0 and finite; 0 keeps only the most likely token (the
 *          lowest id among ties), i.e. greedy.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_temperature(llmkit_sampler_chain *chain, float t);

/**
 * @brief Appends dynamic (entropy-based) temperature, as llama.cpp's `temp_ext`.
 *
 * With H the entropy of the current distribution over n candidates,
 * T_min = max(0, t - delta) and T_max = t + delta, the temperature is
 * `T_min + (T_max - T_min) * (H / log n)^exponent`. delta <= 0 makes it plain
 * temperature t; a resulting temperature of 0 keeps only the most likely token.
 * @param chain The chain. @param t Base temperature, >= 0.
 * @param delta Half-width of the temperature range. @param exponent > 0.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_dynamic_temperature(llmkit_sampler_chain *chain, float t,
                                                                      float delta, float exponent);

/**
 * @brief Appends top-k: keeps the k largest logits (lower ids win ties).
 * @param chain The chain. @param k >= 1; larger than the vocabulary keeps everything.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT for k <= 0.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_top_k(llmkit_sampler_chain *chain, int32_t k);

/**
 * @brief Appends top-p (nucleus): keeps the smallest most-likely set whose probability is >= p.
 * @param chain The chain. @param p In (0, 1]. @param min_keep Keep at least this many tokens (0 means 1).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_top_p(llmkit_sampler_chain *chain, float p, size_t min_keep);

/**
 * @brief Appends min-p: keeps tokens whose probability is >= p times the largest probability.
 * @param chain The chain. @param p In [0, 1]. @param min_keep Keep at least this many tokens (0 means 1).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_min_p(llmkit_sampler_chain *chain, float p, size_t min_keep);

/**
 * @brief Appends locally typical sampling (Meister et al. 2022).
 *
 * Orders tokens by |-log p - H| (H the entropy) and keeps the smallest prefix
 * of that order whose probability is >= p.
 * @param chain The chain. @param p In (0, 1]. @param min_keep Keep at least this many (0 means 1).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_typical(llmkit_sampler_chain *chain, float p, size_t min_keep);

/**
 * @brief Appends top-n-sigma (Tang et al. 2024): keeps logits >= max - n * stddev(logits).
 * @param chain The chain. @param n >= 0 and finite.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_top_n_sigma(llmkit_sampler_chain *chain, float n);

/**
 * @brief Appends XTC, "exclude top choices", as llama.cpp defines it.
 *
 * With chance `probability` (one Philox draw), when at least two tokens have
 * probability >= `threshold`, removes all of them except the least likely one,
 * unless fewer than `min_keep` tokens would remain.
 * @param chain The chain. @param probability In [0, 1]. @param threshold In [0, 1];
 * above 0.5 the step never fires. @param min_keep Minimum tokens left (0 means 1).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_xtc(llmkit_sampler_chain *chain, float probability,
                                                      float threshold, size_t min_keep);

/**
 * @brief Appends repetition, frequency and presence penalties over the sequence's history.
 *
 * For each token t seen c > 0 times in the last `last_n` tokens: the repetition
 * penalty divides a positive logit by `repeat` and multiplies a negative one by
 * it (CTRL / llama.cpp); then `logit -= c * frequency + presence` (OpenAI).
 * @param chain The chain. @param last_n Window; -1 means the whole history, 0 disables.
 * @param repeat > 0; 1 disables. @param frequency Any finite value. @param presence Any finite value.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_penalties(llmkit_sampler_chain *chain, int32_t last_n,
                                                            float repeat, float frequency, float presence);

/**
 * @brief Appends DRY ("don't repeat yourself"), as llama.cpp defines it.
 *
 * Let L be the length of the longest suffix of the history that also occurred
 * earlier followed by token t (L counts history tokens, not t itself). If
 * L >= allowed_length, t's logit is lowered by `multiplier * base^(L - allowed_length)`
 * (the exponent is capped so that the penalty stays finite). A repeat never extends across a
 * sequence-breaker token. Breakers are token ids here (llama.cpp takes strings
 * and tokenizes them; pass the ids of single-token breakers such as "\n").
 * @param chain The chain. @param multiplier >= 0; 0 disables. @param base >= 1.
 * @param allowed_length >= 1. @param last_n Window; -1 whole history, 0 disables.
 * @param breakers Token ids that end a repeat (may be NULL when n_breakers is 0); copied.
 * @param n_breakers Number of breakers.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_dry(llmkit_sampler_chain *chain, float multiplier, float base,
                                                      int32_t allowed_length, int32_t last_n,
                                                      const int32_t *breakers, size_t n_breakers);

/**
 * @brief Appends a logit bias: logit[ids[i]] += biases[i]. A bias of -INFINITY bans the token.
 *
 * Ids are checked against the vocabulary when sampling (#LLMKIT_ERROR_OUT_OF_RANGE).
 * @param chain The chain. @param ids Token ids (copied). @param biases Finite values or -INFINITY (copied).
 * @param n Number of entries.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_INVALID_ARGUMENT (negative id, NaN, +inf).
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_logit_bias(llmkit_sampler_chain *chain, const int32_t *ids,
                                                             const float *biases, size_t n);

/**
 * @brief Appends a ban: the listed tokens can never be picked.
 * @param chain The chain. @param ids Token ids (copied). @param n Number of ids.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_banned_tokens(llmkit_sampler_chain *chain, const int32_t *ids,
                                                                size_t n);

/**
 * @brief Appends the mirostat v1 picker (Basu et al. 2021), as llama.cpp implements it.
 *
 * Estimates the Zipf exponent from the m most likely tokens, chooses k to hit
 * the target surprise `tau`, samples from the top k and updates the
 * sequence's mu (initially 2*tau) by `eta * (surprise - tau)`.
 * @param chain The chain. @param tau Target surprise in bits, > 0. @param eta Learning rate, > 0.
 * @param m Tokens used for the estimate, >= 2 (100 in the paper).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_mirostat(llmkit_sampler_chain *chain, float tau, float eta,
                                                           int32_t m);

/**
 * @brief Appends the mirostat v2 picker: drops tokens with surprise -log2 p > mu, samples, updates mu.
 * @param chain The chain. @param tau Target surprise in bits, > 0. @param eta Learning rate, > 0.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_add_mirostat_v2(llmkit_sampler_chain *chain, float tau, float eta);

/**
 * @brief Number of steps in the chain.
 * @param chain The chain. @param[out] out Receives the count.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_length(const llmkit_sampler_chain *chain, size_t *out);

/**
 * @brief Writes a one-line description of the chain ("penalties(...) -> top_k(40) -> dist").
 * @param chain The chain.
 * @param buf Caller's buffer, or NULL to ask for the size.
 * @param capacity Bytes available in buf.
 * @param[out] needed Bytes needed including the terminating NUL (may be NULL).
 * @return #LLMKIT_OK, or #LLMKIT_ERROR_BUFFER_TOO_SMALL with `needed` set.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_describe(const llmkit_sampler_chain *chain, char *buf,
                                                       size_t capacity, size_t *needed);

/**
 * @brief Appends tokens to a sequence's history (e.g. the prompt) for the penalty and DRY steps.
 * @param chain The chain. @param seq_id The sequence (any value >= 0).
 * @param tokens Token ids (>= 0; copied). @param n Number of tokens.
 * @return #LLMKIT_OK or an error.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_accept(llmkit_sampler_chain *chain, int64_t seq_id,
                                                     const int32_t *tokens, size_t n);

/**
 * @brief Forgets one sequence's state (history, mu, step counter), or all with seq_id = -1.
 * @param chain The chain. @param seq_id The sequence, or -1 for all.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_reset(llmkit_sampler_chain *chain, int64_t seq_id);

/** @brief Which distribution the reported log-probabilities come from. */
typedef enum llmkit_logprob_source LLMKIT_ENUM_BASE {
    LLMKIT_LOGPROBS_RAW = 0,      /**< log_softmax of the logits as given (OpenAI's `logprobs`). */
    LLMKIT_LOGPROBS_PROCESSED = 1 /**< softmax of the logits every filtering step left (for mirostat, after its truncation). */
} llmkit_logprob_source;

/**
 * @brief Per-call options of llmkit_sampler_chain_sample() and llmkit_sampler_chain_apply().
 *
 * The optional output tensors are written only when non-NULL; they must be on
 * the host or on the logits' device.
 */
typedef struct llmkit_sample_options {
    uint32_t struct_size;             /**< sizeof(llmkit_sample_options). */
    int32_t n_threads;                /**< Worker threads; 0 = llmkit_get_num_threads(). */
    const int64_t *seq_ids;           /**< Sequence id of each row (B values >= 0, distinct); NULL means row i is sequence i. */
    size_t n_seq_ids;                 /**< Number of entries in seq_ids (must equal B when seq_ids is set). */
    llmkit_tensor *chosen_logprobs;   /**< Optional out: float32 [B], log-probability of the chosen token. */
    llmkit_tensor *top_ids;           /**< Optional out: int32 or int64 [B, n], the n most likely token ids, descending (-1 past the last candidate). */
    llmkit_tensor *top_logprobs;      /**< Optional out: float32 [B, n], their log-probabilities. */
    int32_t logprob_source;           /**< An #llmkit_logprob_source value. */
    void *stream;                     /**< cudaStream_t for device tensors; NULL = the default stream. */
} llmkit_sample_options;

/** @brief Default #llmkit_sample_options. */
#define LLMKIT_SAMPLE_OPTIONS_INIT {sizeof(llmkit_sample_options), 0, NULL, 0, NULL, NULL, NULL, 0, NULL}

/**
 * @brief Samples one token per row and appends it to that sequence's history.
 *
 * @param chain The chain (its per-sequence state advances by one step).
 * @param logits [B, V] or [V] in fp32, fp16 or bf16, any strides, on the CPU or a CUDA device.
 * @param tokens Out: int32 or int64, shape [B] (or [] / [1] for 1-D logits).
 * @param options NULL for defaults.
 * @return #LLMKIT_OK or an error naming the problem; on error no state advances.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_sample(llmkit_sampler_chain *chain, const llmkit_tensor *logits,
                                                     const llmkit_tensor *tokens,
                                                     const llmkit_sample_options *options);

/**
 * @brief Runs every step except the picker and writes the processed logits.
 *
 * Removed tokens get -inf. This is what the picker would draw from, as
 * logits: softmax of the output is the processed distribution. State does not
 * advance (an XTC draw uses the sequence's current step number).
 * @param chain The chain. @param logits [B, V] or [V] input.
 * @param out_logits float32 output with the shape of `logits` (may alias it when it is float32 and compact).
 * @param options NULL for defaults (the logprob outputs are ignored).
 * @return #LLMKIT_OK or an error.
 */
LLMKIT_API llmkit_status llmkit_sampler_chain_apply(llmkit_sampler_chain *chain, const llmkit_tensor *logits,
                                                    const llmkit_tensor *out_logits,
                                                    const llmkit_sample_options *options);

/**
 * @brief Parameters of the one-call sampler llmkit_sample().
 *
 * The steps run as Hugging Face transformers and vLLM order them:
 * temperature, top-k, top-p, min-p, then a random draw.
 */
typedef struct llmkit_sample_params {
    uint32_t struct_size; /**< sizeof(llmkit_sample_params). */
    float temperature;    /**< >= 0; 0 means greedy. Default 1. */
    int32_t top_k;        /**< 0 disables; otherwise >= 1. Default 0. */
    float top_p;          /**< In (0, 1]; 1 disables. Default 1. */
    float min_p;          /**< In [0, 1]; 0 disables. Default 0. */
    uint64_t seed;        /**< Philox key. Default 0. */
    int32_t n_threads;    /**< 0 = llmkit_get_num_threads(). */
} llmkit_sample_params;

/** @brief Default #llmkit_sample_params. */
#define LLMKIT_SAMPLE_PARAMS_INIT {sizeof(llmkit_sample_params), 1.0f, 0, 1.0f, 0.0f, 0, 0}

/**
 * @brief Samples one token per row with the common settings, without a chain object.
 *
 * Equivalent to a fresh chain of the enabled steps; row i is sequence i at step 0.
 * Because every call is step 0, calling it in a decoding loop with a fixed seed
 * reuses the same uniform draw each step: use a chain (or vary the seed) there.
 * @param logits [B, V] or [V]. @param tokens Out: int32 or int64 [B].
 * @param params NULL for defaults. @return #LLMKIT_OK or an error.
 */
LLMKIT_API llmkit_status llmkit_sample(const llmkit_tensor *logits, const llmkit_tensor *tokens,
                                       const llmkit_sample_params *params);

/** @brief Options of llmkit_verify_speculative(). */
typedef struct llmkit_speculative_options {
    uint32_t struct_size;   /**< sizeof(llmkit_speculative_options). */
    uint64_t seed;          /**< Philox key. */
    uint64_t step;          /**< Decoding step, part of the Philox counter. */
    const int64_t *seq_ids; /**< Sequence id per row, or NULL for 0..B-1. */
    size_t n_seq_ids;       /**< Entries in seq_ids. */
    int32_t n_threads;      /**< 0 = llmkit_get_num_threads(). */
    void *stream;           /**< cudaStream_t for device tensors. */
} llmkit_speculative_options;

/** @brief Default #llmkit_speculative_options. */
#define LLMKIT_SPECULATIVE_OPTIONS_INIT {sizeof(llmkit_speculative_options), 0, 0, NULL, 0, 0, NULL}

/**
 * @brief Verifies draft tokens by speculative rejection sampling (Leviathan et al. 2023; Chen et al. 2023).
 *
 * For i = 0..K-1, draft token x_i is accepted with probability
 * min(1, q_i(x_i) / p_i(x_i)) where q is the target and p the draft
 * distribution. At the first rejection a token is drawn from
 * normalize(max(0, q_i - p_i)) and verification stops; if all K are accepted a
 * bonus token is drawn from q_K. The emitted tokens are then distributed
 * exactly as sampling from the target model would be.
 *
 * Rows of the probability tensors need not be normalised (each row is divided
 * by its sum) but must be finite and >= 0 with a positive sum. A row is read,
 * and checked, only when the walk reaches it: a row's positions after its first
 * rejected draft are never read, so a bad entry there is not reported.
 * @param draft_tokens int32 or int64 [B, K], ids in [0, V).
 * @param draft_probs [B, K, V] in float32, float16, bfloat16 or float64: the draft model's distributions.
 * @param target_probs [B, K+1, V], same dtypes: the target model's distributions.
 * @param out_tokens int32 or int64 [B, K+1]: the accepted drafts, then the corrected or bonus token, then -1 padding.
 * @param out_n_accepted int32 or int64 [B]: accepted drafts per row (0..K); the row emits n_accepted + 1 tokens.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK or an error.
 */
LLMKIT_API llmkit_status llmkit_verify_speculative(const llmkit_tensor *draft_tokens,
                                                   const llmkit_tensor *draft_probs,
                                                   const llmkit_tensor *target_probs,
                                                   const llmkit_tensor *out_tokens,
                                                   const llmkit_tensor *out_n_accepted,
                                                   const llmkit_speculative_options *options);

/**
 * @brief One block of Philox-4x32-10 output, the generator behind every random draw.
 *
 * Exposed so that other implementations (and the GPU path) can be checked
 * against llmkit's stream. A uniform draw in [0, 1) uses the first two words as
 * `((out[0] >> 5) * 2^26 + (out[1] >> 6)) * 2^-53` (53 bits, as a double).
 * @param[out] out Four 32-bit words. @param counter Four 32-bit counter words.
 * @param key Two 32-bit key words.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_philox4x32_10(uint32_t out[4], const uint32_t counter[4], const uint32_t key[2]);

/** @} */

/* ------------------------------------------------------------------------- */
/* BEGIN QUANTIZATION SECTION (issue 5) */
/** @defgroup quant Quantization: GGUF block formats
 *
 * Quantizes float32 rows into the block formats of GGUF files (llama.cpp's
 * ggml) and decodes them back. The quantizers reproduce ggml's reference
 * quantizers byte for byte (what `ggml_quantize_chunk` writes, with no
 * importance matrix or with one) and the decoders reproduce ggml's `to_float`
 * bit for bit, so llmkit's output can be written into a GGUF file and read by
 * llama.cpp, and vice versa.
 *
 * A row of n elements is stored as n / block_elements blocks back to back;
 * rows follow each other with no padding, as GGUF lays out tensor data.
 *
 * Non-finite input: ggml's behaviour on NaN or infinity is undefined; llmkit
 * refuses such input with #LLMKIT_ERROR_NON_FINITE and writes nothing.
 * Finite input of any magnitude is accepted and gives the bytes ggml writes on
 * x86-64: where a block's range overflows float (|x| near FLT_MAX) or a
 * format's f16 scale (above about 65504 times the largest level), the stored
 * scale is infinite and the block decodes to infinities or NaN, as in ggml.
 *
 * Importance matrices (imatrix): one non-negative weight per column, as
 * llama.cpp's `llama-imatrix` computes them (sums of squared activations over
 * calibration text). Given one, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K, IQ4_NL and IQ4_XS fit every scale, min and level to minimise the
 * importance-weighted error, writing the bytes ggml writes with the same
 * weights; Q8_0, F16, BF16, F32, Q8_1, Q8_K, TQ1_0, TQ2_0 and MXFP4 ignore it,
 * as ggml does (their levels follow from the block's maximum alone).
 *
 * Thread safety: every function here is thread-safe; each call may use
 * several worker threads.
 *  @{ */

/** @brief Quantization types, numbered exactly as ggml's `ggml_type` (and GGUF's tensor types). */
typedef enum llmkit_quant_type LLMKIT_ENUM_BASE {
    LLMKIT_QUANT_F32 = 0,     /**< 32-bit float, 1 element per 4 bytes. */
    LLMKIT_QUANT_F16 = 1,     /**< IEEE half, round to nearest even. */
    LLMKIT_QUANT_Q4_0 = 2,    /**< 32 elements in 18 bytes: f16 scale, 4-bit levels (q - 8) * d. */
    LLMKIT_QUANT_Q4_1 = 3,    /**< 32 elements in 20 bytes: f16 scale and min, 4-bit levels q * d + m. */
    LLMKIT_QUANT_Q5_0 = 6,    /**< 32 elements in 22 bytes: f16 scale, 5-bit levels (q - 16) * d. */
    LLMKIT_QUANT_Q5_1 = 7,    /**< 32 elements in 24 bytes: f16 scale and min, 5-bit levels q * d + m. */
    LLMKIT_QUANT_Q8_0 = 8,    /**< 32 elements in 34 bytes: f16 scale, 8-bit levels q * d. */
    LLMKIT_QUANT_Q8_1 = 9,    /**< 32 elements in 36 bytes: as Q8_0 plus f16 d * sum(q) (an intermediate format). */
    LLMKIT_QUANT_Q2_K = 10,   /**< 256 elements in 84 bytes: 16 groups with 4-bit scales and mins, 2-bit levels. */
    LLMKIT_QUANT_Q3_K = 11,   /**< 256 elements in 110 bytes: 16 groups with 6-bit scales, 3-bit levels. */
    LLMKIT_QUANT_Q4_K = 12,   /**< 256 elements in 144 bytes: 8 groups with 6-bit scales and mins, 4-bit levels. */
    LLMKIT_QUANT_Q5_K = 13,   /**< 256 elements in 176 bytes: 8 groups with 6-bit scales and mins, 5-bit levels. */
    LLMKIT_QUANT_Q6_K = 14,   /**< 256 elements in 210 bytes: 16 groups with 8-bit scales, 6-bit levels. */
    LLMKIT_QUANT_Q8_K = 15,   /**< 256 elements in 292 bytes: f32 scale, 8-bit levels, group sums (an intermediate format). */
    LLMKIT_QUANT_IQ4_NL = 20, /**< 32 elements in 18 bytes: f16 scale, 4-bit indices into a fixed non-linear codebook. */
    LLMKIT_QUANT_IQ4_XS = 23, /**< 256 elements in 136 bytes: 8 groups with 6-bit scales, IQ4_NL's codebook. */
    LLMKIT_QUANT_BF16 = 30,   /**< bfloat16, round to nearest even. */
    LLMKIT_QUANT_TQ1_0 = 34,  /**< 256 elements in 54 bytes: ternary d * {-1, 0, 1} (BitNet b1.58), 5 digits per byte, f16 d = absmax. */
    LLMKIT_QUANT_TQ2_0 = 35,  /**< 256 elements in 66 bytes: ternary d * {-1, 0, 1}, 2 bits each, f16 d = absmax. */
    LLMKIT_QUANT_MXFP4 = 39   /**< 32 elements in 17 bytes: OCP MXFP4, an E8M0 power-of-two scale and 4-bit E2M1 values. */
} llmkit_quant_type;

/**
 * @brief Looks a type up by ggml's name ("q4_K", "bf16", "iq4_nl"), ignoring case.
 * @param[out] out Receives the #llmkit_quant_type value.
 * @param name NUL-terminated name.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER, or #LLMKIT_ERROR_INVALID_ARGUMENT
 *         for a name llmkit does not implement (the message names it). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_type_from_name(int32_t *out, const char *name);

/**
 * @brief ggml's name of a type ("q4_K").
 * @param type An #llmkit_quant_type value.
 * @return A static string, or NULL when llmkit does not implement the type. Thread-safe.
 */
LLMKIT_API const char *llmkit_quant_type_name(int32_t type);

/**
 * @brief The block of a type: how many elements it holds and how many bytes it takes.
 * @param[out] elements Elements per block (1 for F32, F16, BF16); may be NULL.
 * @param[out] bytes Bytes per block; may be NULL.
 * @param type An #llmkit_quant_type value.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT for an unknown type. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_block_size(int64_t *elements, int64_t *bytes, int32_t type);

/**
 * @brief Bytes of one quantized row of n elements.
 * @param[out] out Receives n / block elements * block bytes.
 * @param type An #llmkit_quant_type value.
 * @param n Elements in the row; a multiple of the block size.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER, #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (unknown type) or #LLMKIT_ERROR_SHAPE (n negative, not a multiple
 *         of the block size, or a byte count that overflows size_t). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_row_bytes(size_t *out, int32_t type, int64_t n);

/** @brief Options of llmkit_quantize(). */
typedef struct llmkit_quantize_options {
    uint32_t struct_size;  /**< sizeof(llmkit_quantize_options). */
    int32_t n_threads;     /**< Worker threads; 0 = llmkit_get_num_threads(). */
    const float *imatrix;  /**< NULL, or one importance weight per column (n floats, finite, >= 0); GGUF types only. */
    int32_t zero_point;    /**< Int4 packings (gptq_int4*, awq_int4*) only: an #llmkit_quant_zero_point value; 0 = the format's default. Non-zero for any other type is #LLMKIT_ERROR_UNSUPPORTED. */
} llmkit_quantize_options;

/** @brief Default #llmkit_quantize_options. */
#define LLMKIT_QUANTIZE_OPTIONS_INIT {sizeof(llmkit_quantize_options), 0, NULL, 0}

/**
 * @brief Quantizes float32 rows into GGUF blocks, byte-exact with ggml's reference quantizer.
 *
 * @param[out] written Receives the bytes needed (rows * llmkit_quant_row_bytes()),
 *             also when dst is NULL or too small; may be NULL.
 * @param type An #llmkit_quant_type value.
 * @param src float32 host tensor [rows, n] or [n], any strides; n must be a
 *            multiple of the type's block size. Read only during the call.
 * @param dst Caller-owned output, rows back to back; NULL asks for the size.
 * @param dst_capacity Bytes available at dst.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_INVALID_ARGUMENT (unknown type, bad options);
 *         #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_DTYPE (src not float32);
 *         #LLMKIT_ERROR_SHAPE (rank, or n not a multiple of the block size);
 *         #LLMKIT_ERROR_NO_DEVICE (src not in host memory);
 *         #LLMKIT_ERROR_BUFFER_TOO_SMALL (written set; also for a NULL dst);
 *         #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in src or options->imatrix;
 *         the message names the first. Each part of src is checked just before
 *         it is quantized, so after a bad src value dst may hold other parts:
 *         its contents are unspecified); #LLMKIT_ERROR_INVALID_ARGUMENT also for a negative
 *         importance weight; #LLMKIT_ERROR_UNSUPPORTED (options->imatrix with a
 *         format that is not a GGUF type, or options->zero_point with a type
 *         that is not an int4 packing). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quantize(size_t *written, int32_t type, const llmkit_tensor *src, void *dst,
                                         size_t dst_capacity, const llmkit_quantize_options *options);

/** @brief Options of llmkit_dequantize(). */
typedef struct llmkit_dequantize_options {
    uint32_t struct_size; /**< sizeof(llmkit_dequantize_options). */
    int32_t n_threads;    /**< Worker threads; 0 = llmkit_get_num_threads(). */
} llmkit_dequantize_options;

/** @brief Default #llmkit_dequantize_options. */
#define LLMKIT_DEQUANTIZE_OPTIONS_INIT {sizeof(llmkit_dequantize_options), 0}

/**
 * @brief Decodes GGUF blocks into float32 rows, bit-exact with ggml's `to_float`.
 *
 * @param type An #llmkit_quant_type value.
 * @param src The blocks, rows back to back (caller-owned, read only during the call).
 * @param src_bytes Bytes at src; must equal rows * llmkit_quant_row_bytes(type, n).
 * @param dst float32 host tensor [rows, n] or [n], any strides; its shape says
 *            how many rows and elements to decode.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_INVALID_ARGUMENT (unknown type, bad options);
 *         #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_DTYPE; #LLMKIT_ERROR_SHAPE
 *         (rank, n not a multiple of the block size, or src_bytes not matching
 *         the shape); #LLMKIT_ERROR_NO_DEVICE (dst not in host memory). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_dequantize(int32_t type, const void *src, size_t src_bytes, const llmkit_tensor *dst,
                                           const llmkit_dequantize_options *options);

/** @} */

/* BEGIN QFORMATS SUBSECTION (issue 5: int8, NF4/FP4, FP8, GPTQ/AWQ int4) */
/** @defgroup quant_formats Quantization: int8, NF4/FP4, FP8, GPTQ/AWQ int4
 *
 * Formats outside GGUF, through the same llmkit_quantize() and
 * llmkit_dequantize() as the GGUF blocks. Their type ids start at 1000
 * (ggml's stay below 64) and their names (any case) are listed in
 * #llmkit_quant_format. Input is a float32 weight [rows, n] = [output
 * channels, input channels], as for GGUF.
 *
 * These formats keep their scales in side arrays, as the checkpoints that use
 * them do, so a quantized tensor is a list of *planes* stored one after the
 * other, each starting at a multiple of 16 bytes (padding is zero). The size
 * depends on the whole shape: ask llmkit_quant_tensor_bytes() (or call
 * llmkit_quantize() with dst NULL), and llmkit_quant_planes() for each
 * plane's name, offset, dtype and shape. Multi-byte values are little-endian.
 *
 * @verbatim
 int8, int8_gG (G = 32, 64, 128)      x ~ scale * q,           q in [-127, 127],
                                      scale = absmax / 127 of the row or group
   weight  int8    [rows, n]
   scales  float32 [rows, n / G]      (n / G = 1 for the per-row "int8")
 int8_asym, int8_asym_gG              x ~ scale * (q - zero),  q, zero in [-128, 127]
   weight  int8    [rows, n]          scale = (max(hi, 0) - min(lo, 0)) / 255
   scales  float32 [rows, n / G]      zero  = round(-128 - min(lo, 0) / scale)
   zeros   int8    [rows, n / G]
 nf4, fp4 (bitsandbytes, blocksize 64; the tensor is flattened row-major)
   weight  uint8   [ceil(rows*n/2)]   byte k = (index[2k] << 4) | index[2k+1]
   absmax  float32 [ceil(rows*n/64)]  x ~ code[index] * absmax[block]
 fp8_e4m3, fp8_e5m2 (one scale)       x ~ fp8(q) * scale, scale = absmax / 448 (E4M3)
 fp8_e4m3_channel, fp8_e5m2_channel   or / 57344 (E5M2), per tensor or per row
   weight  uint8   [rows, n]          (the FP8 bit patterns)
   scales  float32 [1] or [rows]
 gptq_int4 (one group per row), gptq_int4_gG  (AutoGPTQ checkpoint tensors)
   qweight int32   [n / 8, rows]      nibble j (bits 4j..4j+3) of qweight[i, r] = q[r, 8i + j]
   qzeros  int32   [n / G, rows / 8]  nibble j of qzeros[g, c] = zero[8c + j, g] - 1
   scales  float16 [n / G, rows]
   g_idx   int32   [n]                group of each input column (i / G unless act-order)
                                      x[r, i] ~ scales[g, r] * (q[r, i] - zero[r, g]), g = g_idx[i]
 awq_int4_gG (AutoAWQ GEMM checkpoint tensors)
   qweight int32   [n, rows / 8]      nibble k of qweight[i, c] = q[8c + order[k], i],
   qzeros  int32   [n / G, rows / 8]  order = {0, 2, 4, 6, 1, 3, 5, 7}; qzeros alike (zero itself)
   scales  float16 [n / G, rows]      x[r, i] ~ scales[g, r] * (q[r, i] - zero[r, g]), g = i / G
 @endverbatim
 *
 * Rounding is half to even everywhere. Details per family:
 * - **int8**: an all-zero group stores scale 0 and q 0.
 * - **nf4 / fp4**: the index of the level nearest to x * (1 / absmax) (ties
 *   to the lower level), as bitsandbytes' quantize_4bit; an all-zero block
 *   stores absmax 0 and the index of 0 (7 for NF4, 0 for FP4). An odd element
 *   count leaves the last low nibble 0. NF4 levels are QLoRA's; FP4's are
 *   bitsandbytes' e2m1 values / 12.
 * - **fp8**: q = fp8(x / scale) with torch's float32 -> float8_e4m3fn /
 *   float8_e5m2 rounding, bit for bit (round to nearest even; out of range
 *   E4M3 saturates to +-448 and E5M2 gives infinity, but the scale keeps every
 *   value in range, so neither happens). An all-zero tensor or row gets scale 1.
 * - **gptq_int4***: GPTQ's quantizer: symmetric by default (zero 8, scale =
 *   2 max|x| / 15 over the group); asymmetric (#LLMKIT_QUANT_ZERO_POINT_ASYMMETRIC)
 *   fits [min(lo, 0), max(hi, 0)] with zero in 1..15 (AutoGPTQ stores
 *   zero - 1, so 0 is not writable; a group that would need it gets zero 1
 *   and scale max / 14). Scales are rounded to f16 before q is computed.
 * - **awq_int4***: AWQ's quantizer: asymmetric by default (scale =
 *   max(hi - lo, 1e-5) / 15, zero = -round(lo / scale) clamped to 0..15);
 *   symmetric gives scale = max|x| / 7, zero 8.
 * - A group scale that overflows f16 (weights above about 4.9e5) is
 *   #LLMKIT_ERROR_OUT_OF_RANGE; NaN or infinity in the input is
 *   #LLMKIT_ERROR_NON_FINITE, as for GGUF.
 *
 * Thread safety: every function here is thread-safe.
 *  @{ */

/** @brief Type ids of the non-GGUF formats (pass them wherever an #llmkit_quant_type is taken). */
typedef enum llmkit_quant_format LLMKIT_ENUM_BASE {
    LLMKIT_QUANT_INT8 = 1000,           /**< "int8": int8, symmetric, one float32 scale per row. */
    LLMKIT_QUANT_INT8_G32 = 1001,       /**< "int8_g32": int8, symmetric, a scale per 32 elements of a row. */
    LLMKIT_QUANT_INT8_G64 = 1002,       /**< "int8_g64". */
    LLMKIT_QUANT_INT8_G128 = 1003,      /**< "int8_g128". */
    LLMKIT_QUANT_INT8_ASYM = 1004,      /**< "int8_asym": int8 with an int8 zero point, one per row. */
    LLMKIT_QUANT_INT8_ASYM_G32 = 1005,  /**< "int8_asym_g32". */
    LLMKIT_QUANT_INT8_ASYM_G64 = 1006,  /**< "int8_asym_g64". */
    LLMKIT_QUANT_INT8_ASYM_G128 = 1007, /**< "int8_asym_g128". */
    LLMKIT_QUANT_NF4 = 1010,            /**< "nf4": bitsandbytes NormalFloat4, absmax per 64 elements. */
    LLMKIT_QUANT_FP4 = 1011,            /**< "fp4": bitsandbytes FP4, absmax per 64 elements. */
    LLMKIT_QUANT_FP8_E4M3 = 1020,       /**< "fp8_e4m3": OCP E4M3 ("fn"), one scale for the tensor. */
    LLMKIT_QUANT_FP8_E5M2 = 1021,       /**< "fp8_e5m2": E5M2, one scale for the tensor. */
    LLMKIT_QUANT_FP8_E4M3_CHANNEL = 1022, /**< "fp8_e4m3_channel": E4M3, one scale per row. */
    LLMKIT_QUANT_FP8_E5M2_CHANNEL = 1023, /**< "fp8_e5m2_channel": E5M2, one scale per row. */
    LLMKIT_QUANT_GPTQ_INT4 = 1030,      /**< "gptq_int4": GPTQ packing, one group per row (group_size -1). */
    LLMKIT_QUANT_GPTQ_INT4_G32 = 1031,  /**< "gptq_int4_g32": GPTQ packing, groups of 32. */
    LLMKIT_QUANT_GPTQ_INT4_G64 = 1032,  /**< "gptq_int4_g64". */
    LLMKIT_QUANT_GPTQ_INT4_G128 = 1033, /**< "gptq_int4_g128". */
    LLMKIT_QUANT_AWQ_INT4_G32 = 1041,   /**< "awq_int4_g32": AWQ (GEMM) packing, groups of 32. */
    LLMKIT_QUANT_AWQ_INT4_G64 = 1042,   /**< "awq_int4_g64". */
    LLMKIT_QUANT_AWQ_INT4_G128 = 1043   /**< "awq_int4_g128". */
} llmkit_quant_format;

/** @brief How the int4 packings choose zero points (llmkit_quantize_options::zero_point). */
typedef enum llmkit_quant_zero_point LLMKIT_ENUM_BASE {
    LLMKIT_QUANT_ZERO_POINT_DEFAULT = 0,    /**< The format's own default: symmetric for GPTQ, asymmetric for AWQ. */
    LLMKIT_QUANT_ZERO_POINT_SYMMETRIC = 1,  /**< Zero point 8, scale from max |x|. */
    LLMKIT_QUANT_ZERO_POINT_ASYMMETRIC = 2  /**< A zero point fitted per group from its min and max. */
} llmkit_quant_zero_point;

/**
 * @brief Bytes a [rows, n] tensor takes in a type (GGUF or not).
 * @param[out] out Receives the size.
 * @param type An #llmkit_quant_type or #llmkit_quant_format value.
 * @param rows Rows (1 for a 1-D tensor). @param n Elements per row.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER, #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (unknown type) or #LLMKIT_ERROR_SHAPE (a shape the type cannot hold,
 *         or a size that overflows size_t). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_tensor_bytes(size_t *out, int32_t type, int64_t rows, int64_t n);

/** @brief Where one plane of a quantized tensor lies (see llmkit_quant_planes()). */
typedef struct llmkit_quant_plane {
    const char *name;   /**< Static name: "weight", "scales", "zeros", "absmax", "qweight", "qzeros", "g_idx" or "blocks". */
    size_t offset;      /**< Bytes from the start of the quantized tensor. */
    size_t bytes;       /**< Bytes of the plane. */
    llmkit_dtype dtype; /**< Element type (int8, uint8, int32, float16 or float32). */
    int32_t ndim;       /**< 1 or 2. */
    int64_t shape[2];   /**< Extents (shape[1] is 0 when ndim is 1). */
} llmkit_quant_plane;

/**
 * @brief The planes of a [rows, n] tensor in a type: names, offsets, dtypes, shapes.
 *
 * GGUF types have one plane, "blocks" (uint8, the rows back to back).
 * @param[out] planes Caller-owned array, or NULL to ask for the count.
 * @param capacity Entries available at planes.
 * @param[out] count Receives the number of planes (at most 4); may be NULL.
 * @param type An #llmkit_quant_type or #llmkit_quant_format value.
 * @param rows Rows. @param n Elements per row.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL (count set) when
 *         capacity is short and planes is not NULL; otherwise as
 *         llmkit_quant_tensor_bytes(). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_planes(llmkit_quant_plane *planes, size_t capacity, size_t *count, int32_t type,
                                             int64_t rows, int64_t n);

/** @brief What a conversion lost (llmkit_quant_convert()). Errors compare dequantize(dst) with dequantize(src). */
typedef struct llmkit_quant_convert_stats {
    uint32_t struct_size;   /**< sizeof(llmkit_quant_convert_stats); llmkit fills only this many bytes. */
    int32_t lossless;       /**< 1 when every decoded value is bit-identical, else 0. */
    double max_abs_error;   /**< Largest |dequantize(dst) - dequantize(src)|. */
    double rms_error;       /**< Root mean square of the differences. */
    double max_abs_value;   /**< Largest |dequantize(src)|, to put the errors in scale. */
} llmkit_quant_convert_stats;

/** @brief Default #llmkit_quant_convert_stats. */
#define LLMKIT_QUANT_CONVERT_STATS_INIT {sizeof(llmkit_quant_convert_stats), 0, 0.0, 0.0, 0.0}

/**
 * @brief Converts a quantized [rows, n] tensor from one type to another and reports the error.
 *
 * Exact repacking where the two types hold the same numbers:
 * gptq_int4_g32 -> q4_0 when every zero point is 8 (symmetric GPTQ) and
 * g_idx[i] = i / 32 (no act-order), and q4_0 -> gptq_int4_g32 when rows is a
 * multiple of 8: both store x = d * (q - 8) with an f16 d per 32 consecutive
 * elements, so no value changes (lossless = 1). Any other pair goes through
 * float32 (dequantize, then quantize as llmkit_quantize() does), which is lossy
 * in general; stats says by how much.
 *
 * @param[out] written Bytes of the result (also when dst is NULL or short); may be NULL.
 * @param dst_type Target type. @param dst Caller-owned output; NULL asks for the size.
 * @param dst_capacity Bytes at dst.
 * @param src_type Source type. @param src The source tensor's bytes. @param src_bytes Bytes at src;
 *        must equal llmkit_quant_tensor_bytes(src_type, rows, n).
 * @param rows Rows. @param n Elements per row.
 * @param options Quantization options for the float path; NULL for defaults.
 * @param[out] stats Receives the error statistics; may be NULL.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL; #LLMKIT_ERROR_SHAPE (size
 *         mismatch or a shape a type cannot hold); #LLMKIT_ERROR_INVALID_ARGUMENT;
 *         #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_NON_FINITE (src decodes to
 *         NaN or infinity); #LLMKIT_ERROR_FORMAT (a g_idx out of range);
 *         #LLMKIT_ERROR_UNSUPPORTED (options->imatrix, or options->zero_point
 *         with a dst_type that is not an int4 packing). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_convert(size_t *written, int32_t dst_type, void *dst, size_t dst_capacity,
                                              int32_t src_type, const void *src, size_t src_bytes, int64_t rows,
                                              int64_t n, const llmkit_quantize_options *options,
                                              llmkit_quant_convert_stats *stats);

/** @} */
/* END QFORMATS SUBSECTION */
/* BEGIN QCALIB SUBSECTION (issue 5: GPTQ, AWQ) */
/** @defgroup quant_calib Quantization: GPTQ and AWQ (calibrated int4)
 *
 * Layer-wise post-training quantization that looks at what the layer is fed:
 * the weight W [rows = outputs, n = inputs] of a linear layer y = W x and
 * calibration inputs X (activations reaching that layer, [tokens, n], in any
 * number of batches). Both minimise the change of the layer's output on X,
 * ||W X^T - W^ X^T||^2, instead of the weight error ||W - W^||^2 that
 * round-to-nearest (llmkit_quantize()) minimises, and both report that output
 * error next to round-to-nearest's, relative to ||W X^T||^2.
 *
 * Thread safety: thread-safe; the progress callback runs on the calling thread.
 *  @{ */

/** @brief Progress of a long call: `done` of `total` units (columns for GPTQ). */
typedef void (*llmkit_progress_fn)(int64_t done, int64_t total, void *user_data);

/** @brief What a calibrated quantization did to its layer. */
typedef struct llmkit_quant_layer_report {
    uint32_t struct_size;    /**< sizeof(llmkit_quant_layer_report); llmkit fills only this many bytes. */
    double output_error;     /**< ||(W - W^) X^T||^2 / ||W X^T||^2 on the calibration inputs. */
    double rtn_output_error; /**< The same for round-to-nearest with the same format and grid. */
    int64_t dead_columns;    /**< Inputs that were 0 in every calibration token (their weights are set to 0). */
} llmkit_quant_layer_report;

/** @brief Default #llmkit_quant_layer_report. */
#define LLMKIT_QUANT_LAYER_REPORT_INIT {sizeof(llmkit_quant_layer_report), 0.0, 0.0, 0}

/** @brief Options of llmkit_gptq_quantize(). */
typedef struct llmkit_gptq_options {
    uint32_t struct_size;        /**< sizeof(llmkit_gptq_options). */
    int32_t n_threads;           /**< Worker threads; 0 = llmkit_get_num_threads(). */
    double damp;                 /**< Added to H's diagonal, as a fraction of its mean (GPTQ's percdamp); default 0.01. */
    int32_t block_size;          /**< Columns per lazy update (default 128; rounded down to a multiple of the group). */
    int32_t act_order;           /**< 1: quantize columns by decreasing H_jj (g_idx then records each column's group). */
    int32_t zero_point;          /**< An #llmkit_quant_zero_point; 0 = symmetric (GPTQ's default). */
    llmkit_progress_fn progress; /**< Called after each block of columns; may be NULL. */
    void *user_data;             /**< Passed to progress. */
} llmkit_gptq_options;

/** @brief Default #llmkit_gptq_options. */
#define LLMKIT_GPTQ_OPTIONS_INIT {sizeof(llmkit_gptq_options), 0, 0.01, 128, 0, 0, NULL, NULL}

/**
 * @brief Quantizes a linear layer's weight with GPTQ (Frantar et al. 2022).
 *
 * Builds H = 2/N sum_t x_t x_t^T from the calibration batches (float64),
 * zeroes dead inputs (H_jj = 0), optionally reorders the columns by
 * decreasing H_jj (act-order), adds damp * mean(diag H) to the diagonal, and
 * quantizes column by column, spreading each column's rounding error over the
 * columns not yet quantized through the upper Cholesky factor of H^-1, with
 * lazy batched updates of block_size columns. Each group's scale and zero are
 * fitted (GPTQ's quantizer, f16 scales) on its weights as updated so far.
 *
 * @param[out] written Bytes of the result (also when dst is NULL or short); may be NULL.
 * @param type #LLMKIT_QUANT_GPTQ_INT4, #LLMKIT_QUANT_GPTQ_INT4_G32 / _G64 / _G128
 *        (the GPTQ packing, g_idx included), or #LLMKIT_QUANT_Q4_0 (GPTQ's
 *        symmetric grid on groups of 32, written as GGUF Q4_0 blocks; not with
 *        act_order or an asymmetric zero point), or #LLMKIT_QUANT_Q4_K (GGUF
 *        Q4_K blocks: when GPTQ reaches a super-block of 256 columns, its
 *        scales and mins are fitted on the updated weights by the
 *        importance-weighted Q4_K fit with diag(H) as the importance, then GPTQ
 *        picks each level; n a multiple of 256; not with act_order or
 *        zero_point #LLMKIT_QUANT_ZERO_POINT_SYMMETRIC; the report's
 *        rtn_output_error is that of the plain Q4_K quantizer).
 * @param weight float32 host tensor [rows, n]; rows and n multiples of 8 for the GPTQ packing.
 * @param calib Array of n_calib float32 host tensors [tokens, n] (or [n]).
 * @param n_calib Number of calibration batches, >= 1.
 * @param dst Caller-owned output; NULL asks for the size.
 * @param dst_capacity Bytes at dst.
 * @param options NULL for defaults.
 * @param[out] report Output errors; may be NULL.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL; #LLMKIT_ERROR_NULL_POINTER;
 *         #LLMKIT_ERROR_INVALID_ARGUMENT (type, options, no calibration tokens,
 *         a Hessian that damping does not make positive definite);
 *         #LLMKIT_ERROR_SHAPE; #LLMKIT_ERROR_DTYPE; #LLMKIT_ERROR_NON_FINITE;
 *         #LLMKIT_ERROR_OUT_OF_RANGE (a scale overflowing f16);
 *         #LLMKIT_ERROR_UNSUPPORTED (Q4_0 with act_order or a zero point, Q4_K
 *         with act_order or a symmetric grid). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gptq_quantize(size_t *written, int32_t type, const llmkit_tensor *weight,
                                              const llmkit_tensor *calib, size_t n_calib, void *dst,
                                              size_t dst_capacity, const llmkit_gptq_options *options,
                                              llmkit_quant_layer_report *report);

/** @brief Options of llmkit_awq_quantize(). */
typedef struct llmkit_awq_options {
    uint32_t struct_size;        /**< sizeof(llmkit_awq_options). */
    int32_t n_threads;           /**< Worker threads; 0 = llmkit_get_num_threads(). */
    int32_t n_grid;              /**< Points of the scale-exponent grid alpha = 0, 1/n_grid, ...; default 20. */
    double max_shrink;           /**< Clipping search: ratios 1, 1 - 1/n_grid, ... down to above 1 - max_shrink; default 0.5. */
    int32_t clip;                /**< 1 (default): run the clipping search; 0: skip it. */
    int32_t zero_point;          /**< An #llmkit_quant_zero_point; 0 = asymmetric (AWQ's default). */
    llmkit_progress_fn progress; /**< Called after each grid point; may be NULL. */
    void *user_data;             /**< Passed to progress. */
} llmkit_awq_options;

/** @brief Default #llmkit_awq_options. */
#define LLMKIT_AWQ_OPTIONS_INIT {sizeof(llmkit_awq_options), 0, 20, 0.5, 1, 0, NULL, NULL}

/**
 * @brief Quantizes a linear layer's weight with AWQ (Lin et al. 2023).
 *
 * From the calibration batches: the mean magnitude of each input channel,
 * mean|x_j|, and H = 2/N X^T X. For alpha on a grid of n_grid points in
 * [0, 1): s_j = max(mean|x_j|^alpha, 1e-4), normalised so that
 * max(s) min(s) = 1; the weight W diag(s) is rounded to nearest (AWQ's grid)
 * and the alpha whose effective weight Q(W diag(s)) diag(s)^-1 has the lowest
 * output error on the calibration inputs wins (alpha 0 is plain
 * round-to-nearest, so AWQ never does worse). Then, per group, the clipping
 * range [-r max|w|, r max|w|] is searched over r = 1, 1 - 1/n_grid, ... for the
 * lowest output error of that group.
 *
 * The result is the int4 of the *scaled* weight W diag(s), in the AWQ packing;
 * `scales` receives s, which the caller folds into the operation before the
 * layer (divide its output, e.g. a norm's weight, by s). The layer then
 * computes Q(W diag(s)) (x / s) ~ W x.
 *
 * @param[out] written Bytes of the result (also when dst is NULL or short); may be NULL.
 * @param type #LLMKIT_QUANT_AWQ_INT4_G32, _G64 or _G128, or #LLMKIT_QUANT_Q4_K
 *        (GGUF Q4_K blocks of the scaled weight; each candidate scaling is
 *        rounded with the importance-weighted Q4_K fit, diag(H) / s^2 as the
 *        importance, which replaces the clipping search; n a multiple of 256;
 *        not with zero_point #LLMKIT_QUANT_ZERO_POINT_SYMMETRIC).
 * @param weight float32 host tensor [rows, n]; rows and n multiples of 8.
 * @param calib Array of n_calib float32 host tensors [tokens, n] (or [n]).
 * @param n_calib Number of calibration batches, >= 1.
 * @param dst Caller-owned output; NULL asks for the size.
 * @param dst_capacity Bytes at dst.
 * @param[out] scales n floats receiving s; may be NULL.
 * @param options NULL for defaults.
 * @param[out] report Output errors (rtn_output_error: alpha 0, no clipping; for Q4_K,
 *        ggml's plain Q4_K quantizer); may be NULL.
 * @return As llmkit_gptq_quantize(). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_awq_quantize(size_t *written, int32_t type, const llmkit_tensor *weight,
                                             const llmkit_tensor *calib, size_t n_calib, void *dst,
                                             size_t dst_capacity, float *scales, const llmkit_awq_options *options,
                                             llmkit_quant_layer_report *report);

/** @} */
/* END QCALIB SUBSECTION */

/* BEGIN QUANT MATMUL */
/** @defgroup quant_matmul Quantization: matmul with quantized weights (CPU)
 *
 * y = x * W^T with the weights W [n_rows, k] kept quantized: GGUF blocks
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * IQ4_XS, stored as ggml stores a tensor:
 * each row is k / block_elements blocks, rows back to back) or int8 with one
 * float32 scale per row. x is float32 [m, k] (m = 1: a decode step's GEMV;
 * m > 1: a prefill's GEMM), y is float32 [m, n_rows].
 *
 * How: as llama.cpp does, each x row is quantized on the fly to int8 blocks
 * with a float32 scale (blocks of 32 for the 32-element formats and int8,
 * blocks of 256 for the K-quants and IQ4_XS), so the inner loops are integer dot
 * products (AVX2 where the CPU has it); block results are summed in float32.
 *
 * Accuracy: the only error besides float32 rounding comes from rounding x to
 * int8: each element of x moves by at most half a step, d / 2 with
 * d = max |x| over its block / 127, so |y - x W^T| <= sum over j of
 * |W[r, j]| * d(j) / 2 plus float32 rounding (relative 2^-24 per block sum).
 * For x whose blocks are not dominated by one outlier that is about
 * 2^-8 * sum |W||x|.
 *
 * Determinism: each output element is computed by one fixed sequence of
 * operations whatever the number of threads, m, or the CPU's instruction set:
 * the result is bit-identical across them.
 *
 * Non-finite values: x must be finite (#LLMKIT_ERROR_NON_FINITE naming the
 * element otherwise; nothing is written). Weights are not checked: an
 * infinite or NaN scale in a block (or in the int8 scales) propagates to the
 * rows it belongs to, as in a float matmul.
 *
 * Thread safety: every function here is thread-safe; each call may use
 * several worker threads.
 *  @{ */

/** @brief How x is rounded to int8 (#llmkit_quant_matmul_options.x_rounding). */
typedef enum llmkit_quant_x_rounding LLMKIT_ENUM_BASE {
    /** One scale per block of x (32, or 256 for the K-quants and IQ4_XS), as
     *  llama.cpp does: the error bound above. The default, and the only way
     *  for GGUF weights. */
    LLMKIT_QUANT_X_BLOCKS = 0,
    /** llmkit_quant_matmul_int8() only: x rounded to 7-bit integers with one
     *  scale per row (as PyTorch's dynamic int8 linear does on x86, there per
     *  tensor): d = max |x row| / 63 in float, q = x * (63 / max |x row|) in
     *  double, rounded half to even. Each output is then one exact int32 sum,
     *  y[i, r] = (d[i] * scales[r]) * sum_j q[i, j] w[r, j], so the product is
     *  an integer matmul: oneDNN's, when llmkit is built with oneDNN and x has
     *  24 rows or more (1.5-1.9x the block rounding's speed at 128 rows of 4096
     *  on AVX2; slower below about 32 rows), with the same bits as without it.
     *  Why 7 bits: without VNNI, int8 matmuls (oneDNN's, fbgemm's) saturate
     *  pairs of 8-bit products. The bound becomes sum_j |W[r, j]| d[i] / 2 with
     *  the row's d: about twice the block rounding's, more where one element
     *  dominates a row. k <= 133144. */
    LLMKIT_QUANT_X_ROWS = 1
} llmkit_quant_x_rounding;

/** @brief Options of llmkit_quant_matmul() and llmkit_quant_matmul_int8(). */
typedef struct llmkit_quant_matmul_options {
    uint32_t struct_size; /**< sizeof(llmkit_quant_matmul_options). */
    int32_t n_threads;    /**< Worker threads; 0 = llmkit_get_num_threads(). The result does not depend on it. */
    int32_t x_rounding;   /**< An #llmkit_quant_x_rounding value; #LLMKIT_QUANT_X_BLOCKS by default. */
} llmkit_quant_matmul_options;

/** @brief Default #llmkit_quant_matmul_options. */
#define LLMKIT_QUANT_MATMUL_OPTIONS_INIT {sizeof(llmkit_quant_matmul_options), 0, LLMKIT_QUANT_X_BLOCKS}

/**
 * @brief Whether llmkit_quant_matmul() has a kernel for a type.
 * @param type An #llmkit_quant_type value.
 * @return 1 for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4, Q2_K, Q3_K, Q4_K,
 *         Q5_K, Q6_K and IQ4_XS, else 0. Thread-safe.
 */
LLMKIT_API int llmkit_quant_matmul_supported(int32_t type);

/**
 * @brief The instruction set the quantized matmul kernels use on this CPU.
 * @return "avx512vnni" (the AVX2 kernels with 256-bit VNNI dot products,
 *         and GFNI's bit moves where the CPU has it),
 *         "avx2" or "scalar" (a static string, never NULL); every one gives
 *         the same bits. The environment variable LLMKIT_MAX_CPU_ISA
 *         ("generic", "avx2", "avx512"), read once, caps the choice. Thread-safe.
 */
LLMKIT_API const char *llmkit_quant_matmul_isa(void);

/**
 * @brief y = x * W^T with W [n_rows, k] in a GGUF block format.
 *
 * @param x float32 host tensor [m, k], or [k] for one row; any strides.
 *          Read completely before y is written, so y may overlap x.
 * @param type The #llmkit_quant_type of W: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 *             IQ4_NL, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K or IQ4_XS (see
 *             llmkit_quant_matmul_supported()).
 * @param w The blocks of W, rows back to back as llmkit_quantize() writes them
 *          (caller-owned, read only during the call).
 * @param w_bytes Bytes at w; must equal n_rows * llmkit_quant_row_bytes(type, k).
 * @param n_rows Rows of W (outputs per x row), >= 0.
 * @param k Columns of W; a multiple of the type's block size, equal to x's last extent.
 * @param y float32 host tensor [m, n_rows] (or [n_rows] when x is [k]); any
 *          strides that do not make two elements share memory; must not
 *          overlap w. Overwritten.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (unknown type, bad options, y overlapping w or itself);
 *         #LLMKIT_ERROR_UNSUPPORTED (a known type without a matmul kernel, or
 *         options.x_rounding = #LLMKIT_QUANT_X_ROWS, which only int8 weights take);
 *         #LLMKIT_ERROR_DTYPE (x or y not float32); #LLMKIT_ERROR_SHAPE
 *         (ranks, k not matching x or not a multiple of the block size,
 *         y's shape, w_bytes not matching); #LLMKIT_ERROR_NO_DEVICE (a tensor
 *         not in host memory); #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in
 *         x; y untouched). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_matmul(const llmkit_tensor *x, int32_t type, const void *w, size_t w_bytes,
                                             int64_t n_rows, int64_t k, const llmkit_tensor *y,
                                             const llmkit_quant_matmul_options *options);

/**
 * @brief y = x * (diag(scales) W)^T with int8 weights and one float32 scale per row.
 *
 * W[r, j] stands for scales[r] * w[r, j] (symmetric per-channel int8, the
 * layout of the "int8" format and of PyTorch's per-channel quantized weights).
 *
 * @param x float32 host tensor [m, k], or [k]; any strides; may overlap y.
 * @param w int8 host tensor [n_rows, k] with unit column stride (any row
 *          stride); k a multiple of 32. Read only during the call.
 * @param scales float32 host tensor [n_rows], any stride.
 * @param y float32 host tensor [m, n_rows] (or [n_rows] when x is [k]); must
 *          not overlap w or scales, nor itself. Overwritten.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (bad options, overlapping y); #LLMKIT_ERROR_DTYPE; #LLMKIT_ERROR_SHAPE
 *         (ranks, extents that do not match, k not a multiple of 32, a column
 *         stride of w other than 1); #LLMKIT_ERROR_NO_DEVICE;
 *         #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in x). With options.x_rounding
 *         = #LLMKIT_QUANT_X_ROWS also #LLMKIT_ERROR_SHAPE for k > 133144 (its
 *         int32 sums could overflow). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_quant_matmul_int8(const llmkit_tensor *x, const llmkit_tensor *w,
                                                  const llmkit_tensor *scales, const llmkit_tensor *y,
                                                  const llmkit_quant_matmul_options *options);

/** @} */
/* END QUANT MATMUL */
/* END QUANTIZATION SECTION */

/* ------------------------------------------------------------------------- */
/* BEGIN GGUF SECTION (issue 5) */
/** @defgroup gguf GGUF files: read and write llama.cpp's model format
 *
 * A GGUF file holds typed metadata (key/value pairs, arrays included) and
 * tensors in ggml types (#llmkit_quant_type numbers them). llmkit reads
 * versions 2 and 3 (little-endian) by mapping the file read-only, and writes
 * version 3.
 *
 * The reader validates everything before it hands anything out: truncation,
 * counts and lengths that overflow or exceed the file, unknown value or tensor
 * types, duplicate keys or tensor names, more than 4 dimensions, rows that are
 * not whole blocks, tensor data that is misaligned, overlaps another tensor or
 * runs past the end. A malformed file gives #LLMKIT_ERROR_FORMAT with a message
 * naming the file, the byte offset and the problem; an unreadable one
 * #LLMKIT_ERROR_IO.
 *
 * Strings and tensor data handed out point into the mapping: they stay valid
 * until llmkit_gguf_close(). Strings are not NUL-terminated except keys and
 * tensor names (which llmkit copies); every string comes with its length.
 *
 * Thread safety: an open file is immutable, so any number of threads may read
 * it at once; close it once, after them. A writer must not be used by two
 * threads at once.
 *  @{ */

/** @brief An open GGUF file (opaque). */
typedef struct llmkit_gguf_file llmkit_gguf_file;
/** @brief One metadata value inside an open file (opaque; owned by the file). */
typedef struct llmkit_gguf_value llmkit_gguf_value;
/** @brief A GGUF file being built (opaque). */
typedef struct llmkit_gguf_writer llmkit_gguf_writer;

/** @brief Metadata value types, numbered as in GGUF files. */
typedef enum llmkit_gguf_type LLMKIT_ENUM_BASE {
    LLMKIT_GGUF_UINT8 = 0,   /**< uint8_t */
    LLMKIT_GGUF_INT8 = 1,    /**< int8_t */
    LLMKIT_GGUF_UINT16 = 2,  /**< uint16_t */
    LLMKIT_GGUF_INT16 = 3,   /**< int16_t */
    LLMKIT_GGUF_UINT32 = 4,  /**< uint32_t */
    LLMKIT_GGUF_INT32 = 5,   /**< int32_t */
    LLMKIT_GGUF_FLOAT32 = 6, /**< float */
    LLMKIT_GGUF_BOOL = 7,    /**< one byte, 0 or 1 */
    LLMKIT_GGUF_STRING = 8,  /**< length-prefixed UTF-8, no NUL */
    LLMKIT_GGUF_ARRAY = 9,   /**< element type, count, elements (arrays may nest) */
    LLMKIT_GGUF_UINT64 = 10, /**< uint64_t */
    LLMKIT_GGUF_INT64 = 11,  /**< int64_t */
    LLMKIT_GGUF_FLOAT64 = 12 /**< double */
} llmkit_gguf_type;

/** @brief Options of llmkit_gguf_open(). */
typedef struct llmkit_gguf_open_options {
    uint32_t struct_size;         /**< sizeof(llmkit_gguf_open_options). */
    int32_t allow_duplicate_keys; /**< Nonzero: keep the first of repeated keys instead of refusing the file. Default 0. */
    int32_t no_mmap;              /**< Nonzero: read the file into memory instead of mapping it. Default 0. */
} llmkit_gguf_open_options;

/** @brief Default #llmkit_gguf_open_options: strict, memory-mapped. */
#define LLMKIT_GGUF_OPEN_OPTIONS_INIT {sizeof(llmkit_gguf_open_options), 0, 0}

/**
 * @brief Opens and validates a GGUF file (memory-mapped, read-only).
 * @param[out] out Receives the handle; free it with llmkit_gguf_close().
 * @param path NUL-terminated file name. Non-regular files (pipes) are read into memory.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (bad options); #LLMKIT_ERROR_IO (cannot open, map or read);
 *         #LLMKIT_ERROR_FORMAT (malformed: the message names the file, the
 *         offset and the problem). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_open(llmkit_gguf_file **out, const char *path,
                                          const llmkit_gguf_open_options *options);

/**
 * @brief Parses a GGUF file held in memory (the bytes are copied).
 * @param[out] out Receives the handle; free it with llmkit_gguf_close().
 * @param data The file's bytes (read during the call only). @param size Bytes at data.
 * @param options NULL for defaults (no_mmap is ignored).
 * @return As llmkit_gguf_open(); messages call the buffer "<memory>". Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_open_memory(llmkit_gguf_file **out, const void *data, size_t size,
                                                 const llmkit_gguf_open_options *options);

/** @brief Closes a file; every pointer obtained from it becomes invalid. @param file The file; NULL is ignored. */
LLMKIT_API void llmkit_gguf_close(llmkit_gguf_file *file);

/** @brief Layout facts of an open file. */
typedef struct llmkit_gguf_file_info {
    uint32_t version;      /**< 2 or 3. */
    uint32_t alignment;    /**< general.alignment, or 32. */
    uint64_t data_offset;  /**< Where the tensor data section starts. */
    uint64_t file_size;    /**< Bytes in the file. */
    int64_t n_metadata;    /**< Metadata entries (after dropping allowed duplicates). */
    int64_t n_tensors;     /**< Tensors. */
} llmkit_gguf_file_info;

/**
 * @brief Version, alignment, sizes and counts of an open file.
 * @param[out] out Receives them. @param file The file.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_file_get_info(llmkit_gguf_file_info *out, const llmkit_gguf_file *file);

/**
 * @brief The key of metadata entry i (file order).
 * @param[out] key Receives a NUL-terminated copy owned by the file; may be NULL.
 * @param[out] key_len Receives its length in bytes; may be NULL.
 * @param file The file. @param index 0 <= index < n_metadata.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_metadata_key(const char **key, size_t *key_len, const llmkit_gguf_file *file,
                                                  int64_t index);

/**
 * @brief The value of metadata entry i.
 * @param[out] out Receives the value (owned by the file). @param file The file.
 * @param index 0 <= index < n_metadata.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_metadata_value(const llmkit_gguf_value **out, const llmkit_gguf_file *file,
                                                    int64_t index);

/**
 * @brief Finds a metadata entry by key.
 * @param[out] index Receives its index, or -1 when the key is absent (still #LLMKIT_OK).
 * @param file The file. @param key NUL-terminated key.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_find_key(int64_t *index, const llmkit_gguf_file *file, const char *key);

/**
 * @brief The type of a value; for an array also its element type and length.
 * @param[out] type Receives an #llmkit_gguf_type; may be NULL.
 * @param[out] elem_type Receives the array's element type (#LLMKIT_GGUF_ARRAY for
 *             nested arrays), or -1 for a scalar; may be NULL.
 * @param[out] count Receives the array length, or 1 for a scalar; may be NULL.
 * @param value The value.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_type(int32_t *type, int32_t *elem_type, uint64_t *count,
                                                const llmkit_gguf_value *value);

/**
 * @brief An integer or bool value as int64.
 * @param[out] out Receives it. @param value The value.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_DTYPE (not an
 *         integer or bool); #LLMKIT_ERROR_OUT_OF_RANGE (a uint64 above INT64_MAX:
 *         use llmkit_gguf_value_uint()). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_int(int64_t *out, const llmkit_gguf_value *value);

/**
 * @brief A non-negative integer or bool value as uint64.
 * @param[out] out Receives it. @param value The value.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_DTYPE (not an
 *         integer or bool); #LLMKIT_ERROR_OUT_OF_RANGE (negative). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_uint(uint64_t *out, const llmkit_gguf_value *value);

/**
 * @brief A float32, float64 or integer value as double.
 * @param[out] out Receives it. @param value The value.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_DTYPE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_float(double *out, const llmkit_gguf_value *value);

/**
 * @brief A string value (not NUL-terminated).
 * @param[out] str Receives a pointer into the file. @param[out] len Receives its length.
 * @param value The value.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_DTYPE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_string(const char **str, size_t *len, const llmkit_gguf_value *value);

/**
 * @brief The elements of a numeric or bool array, as stored (little-endian, possibly unaligned).
 * @param[out] data Receives a pointer into the file to count * element-size bytes
 *             (NULL for an empty array); copy with memcpy before reading unaligned elements.
 * @param[out] count Receives the element count; may be NULL.
 * @param value The value.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_DTYPE (not an
 *         array, or an array of strings or arrays). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_array_data(const void **data, uint64_t *count,
                                                      const llmkit_gguf_value *value);

/**
 * @brief Element i of an array of strings (not NUL-terminated).
 * @param[out] str Receives a pointer into the file. @param[out] len Receives its length.
 * @param value The array. @param index 0 <= index < count.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER, #LLMKIT_ERROR_DTYPE or #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_array_string(const char **str, size_t *len, const llmkit_gguf_value *value,
                                                        uint64_t index);

/**
 * @brief Element i of an array of arrays.
 * @param[out] out Receives the nested array (owned by the file).
 * @param value The array. @param index 0 <= index < count.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER, #LLMKIT_ERROR_DTYPE or #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_value_array_item(const llmkit_gguf_value **out, const llmkit_gguf_value *value,
                                                      uint64_t index);

/** @brief One tensor of an open file. */
typedef struct llmkit_gguf_tensor_info {
    const char *name;   /**< NUL-terminated copy owned by the file. */
    size_t name_len;    /**< Length of name in bytes. */
    int32_t type;       /**< ggml type (#llmkit_quant_type numbering; any type GGUF defines). */
    int32_t n_dims;     /**< 0 to 4. */
    int64_t dims[4];    /**< ggml's ne: dims[0] is the row length (contiguous); unused ones are 1. */
    int64_t n_elements; /**< Product of the dims. */
    uint64_t offset;    /**< From the start of the data section. */
    uint64_t nbytes;    /**< Bytes of data (from the type's block size and the dims). */
    const void *data;   /**< The bytes, inside the file's mapping. */
} llmkit_gguf_tensor_info;

/**
 * @brief Describes tensor i (file order).
 * @param[out] out Receives the description. @param file The file.
 * @param index 0 <= index < n_tensors.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_tensor(llmkit_gguf_tensor_info *out, const llmkit_gguf_file *file, int64_t index);

/**
 * @brief Finds a tensor by name.
 * @param[out] index Receives its index, or -1 when absent (still #LLMKIT_OK).
 * @param file The file. @param name NUL-terminated name.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_find_tensor(int64_t *index, const llmkit_gguf_file *file, const char *name);

/**
 * @brief Block geometry of any ggml type GGUF defines (also those llmkit cannot quantize).
 * @param[out] name Receives ggml's name ("iq2_xxs"), static; may be NULL.
 * @param[out] block_elements Elements per block; may be NULL. @param[out] block_bytes Bytes per block; may be NULL.
 * @param type A ggml type id.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_INVALID_ARGUMENT for an id GGUF does not define. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_type_info(const char **name, int64_t *block_elements, int64_t *block_bytes,
                                               int32_t type);

/**
 * @brief Starts an empty GGUF v3 file.
 * @param[out] out Receives the writer; free it with llmkit_gguf_writer_free().
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_new(llmkit_gguf_writer **out);

/** @brief Frees a writer. @param writer The writer; NULL is ignored. */
LLMKIT_API void llmkit_gguf_writer_free(llmkit_gguf_writer *writer);

/**
 * @brief Sets a scalar or string key (replacing an earlier value, keeping its place).
 * @param writer The writer. @param key NUL-terminated, non-empty key.
 * @param type An #llmkit_gguf_type other than #LLMKIT_GGUF_ARRAY.
 * @param value For a string: its bytes; otherwise one element of the type
 *              (bool: a uint8_t 0 or 1). Copied.
 * @param size For a string its length; otherwise the size of the type.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (unknown type, size mismatch, bool not 0/1, empty key,
 *         general.alignment not a uint32 power of two).
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_set_kv(llmkit_gguf_writer *writer, const char *key, int32_t type,
                                                   const void *value, size_t size);

/**
 * @brief Sets a key to a numeric or bool array.
 * @param writer The writer. @param key NUL-terminated key.
 * @param elem_type A fixed-size #llmkit_gguf_type. @param data count elements (copied).
 * @param count Element count.
 * @return As llmkit_gguf_writer_set_kv().
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_set_array(llmkit_gguf_writer *writer, const char *key, int32_t elem_type,
                                                      const void *data, uint64_t count);

/**
 * @brief Sets a key to an array of strings.
 * @param writer The writer. @param key NUL-terminated key.
 * @param strings count pointers to the strings' bytes (copied).
 * @param lengths count lengths, or NULL when every string is NUL-terminated.
 * @param count Element count.
 * @return As llmkit_gguf_writer_set_kv().
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_set_string_array(llmkit_gguf_writer *writer, const char *key,
                                                             const char *const *strings, const size_t *lengths,
                                                             uint64_t count);

/**
 * @brief Sets a key to a copy of a value read from a file (any type, nested arrays included).
 * @param writer The writer. @param key NUL-terminated key. @param value The value.
 * @return As llmkit_gguf_writer_set_kv().
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_set_value(llmkit_gguf_writer *writer, const char *key,
                                                      const llmkit_gguf_value *value);

/**
 * @brief Removes a key if present.
 * @param writer The writer. @param key NUL-terminated key.
 * @return #LLMKIT_OK (also when absent) or #LLMKIT_ERROR_NULL_POINTER.
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_remove_kv(llmkit_gguf_writer *writer, const char *key);

/**
 * @brief Adds a tensor (its bytes are copied; tensors are written in the order added).
 * @param writer The writer. @param name NUL-terminated, unique, non-empty name.
 * @param type A ggml type id (see llmkit_gguf_type_info()).
 * @param dims n_dims extents, ggml's order (dims[0] is the row length, a multiple of the block).
 * @param n_dims 0 to 4. @param data nbytes bytes. @param nbytes Must equal what type and dims give.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (unknown type, empty or repeated name); #LLMKIT_ERROR_SHAPE (dims, or
 *         nbytes not matching them).
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_add_tensor(llmkit_gguf_writer *writer, const char *name, int32_t type,
                                                       const int64_t *dims, int32_t n_dims, const void *data,
                                                       size_t nbytes);

/**
 * @brief Writes the file atomically: into a temporary file beside path, renamed over path when complete.
 * @param writer The writer (unchanged; may be written again). @param path NUL-terminated file name.
 * @return #LLMKIT_OK, #LLMKIT_ERROR_NULL_POINTER or #LLMKIT_ERROR_IO (path left untouched).
 */
LLMKIT_API llmkit_status llmkit_gguf_writer_write(const llmkit_gguf_writer *writer, const char *path);

/** @} */
/* END GGUF SECTION */

/* ------------------------------------------------------------------------- */
/* BEGIN ATTENTION SECTION (issue 4) */
/** @defgroup attention Attention: scaled-dot-product attention, RoPE, KV-cache sizes
 *
 * Tensors use the (batch, sequence, heads, head_dim) layout of FlashAttention
 * and llama.cpp: q is [B, Sq, Hq, D], k and v are [B, Skv, Hkv, D] (v's head_dim
 * may differ in llmkit_attention(): DeepSeek's attention and MLA). Any strides
 * are accepted along B, S and H; the D axis must have unit stride. Hq must be a
 * multiple of Hkv: Hq == Hkv is multi-head attention (MHA), 1 < Hkv < Hq is
 * grouped-query attention (GQA), Hkv == 1 is multi-query attention (MQA);
 * query head h reads key/value head h / (Hq / Hkv), without copying K or V.
 *
 * When Skv > Sq the queries are the last Sq positions of the Skv keys (chunked
 * prefill, decoding with a KV cache): query i sits at position
 * i' = i + Skv - Sq, and "causal" means it sees the keys j <= i'.
 *
 * The CPU kernel is a tiled online softmax (FlashAttention-style): it never
 * materialises the Sq x Skv score matrix, needs O((Sq + Skv) * D) memory, and
 * accumulates in float32 whatever the input type. It uses AVX-512 where the
 * CPU has it and portable code elsewhere.
 *
 * KV caches (host memory): #llmkit_kv_cache (contiguous, one slot of
 * `capacity` tokens per sequence) and #llmkit_paged_kv_cache (a pool of
 * fixed-size blocks addressed through per-sequence block tables, with fork
 * and copy-on-write), in float32, bfloat16, float16 or int8 with a scale per
 * token and head. Attention reads them in place (no gather) for prefill,
 * chunked prefill and batched decode over sequences of different lengths.
 *
 * Not in this release: device kernels (CUDA tensors are staged through host
 * memory for llmkit_attention(); the caches take host tensors only).
 *  @{ */

/** @brief Options of llmkit_attention(). */
typedef struct llmkit_attention_options {
    uint32_t struct_size;        /**< sizeof(llmkit_attention_options). */
    int32_t causal;              /**< Nonzero: query i' sees only keys j <= i' (bottom-right aligned). Default 0. */
    int64_t window;              /**< Sliding window (Mistral): key j is visible iff i' - window < j <= i'; implies causal. 0 = no window. */
    float softcap;               /**< Logit soft-capping (Gemma 2): s = softcap * tanh(s / softcap), applied to the scaled scores. 0 = none. */
    float scale;                 /**< Score scale; 0 = 1 / sqrt(D). Must be finite. */
    const float *alibi_slopes;   /**< ALiBi: Hq slopes, one per query head; adds -slope * (i' - j) to the scores. NULL = none. Read during the call only. */
    const llmkit_tensor *mask;   /**< Mask (any strides, host memory): float32, added to the scores (-inf hides a key), or bool (LLMKIT_DTYPE_BOOL, 8 bits: 0 hides a key, as torch's boolean attn_mask), broadcast as torch's attn_mask: [Sq, Skv] shared by batch and heads, or 3 or 4 axes aligned from the right with [B, Hq, Sq, Skv] (torch's axis order), each that size or 1 ([B, 1, 1, Skv]: a padding mask per batch row). A tile of keys it hides from every query row of a task is skipped (the same bits). NULL = none. */
    int32_t n_threads;           /**< Worker threads; 0 = llmkit_get_num_threads(). The result does not depend on it. */
    void *stream;                /**< CUDA stream for device tensors (a `cudaStream_t`); NULL = the default stream. Ignored for host tensors. */
    const float *sinks;          /**< Attention sinks (gpt-oss): Hq finite logits, one per query head; sink h joins head h's softmax denominator as exp(sinks[h]) without a value, so the weights of the keys sum to less than 1. NULL = none. Read during the call only. Added after 0.1.0: a caller built with the older struct, whose struct_size ends before this field, gets NULL. */
    const llmkit_tensor *lse;    /**< Output, or NULL = not wanted: float32 [B, Sq, Hq] (any strides, q's device) receiving each query row's log-sum-exp, ln(sum_j exp(s_j)) over the scores of its visible keys (plus exp(sink) with sinks), -inf for a row that sees no key; what llmkit_attention_merge() combines. Must not overlap the other tensors. Added after 0.1.0 (an older struct gets NULL). */
} llmkit_attention_options;

/** @brief Default #llmkit_attention_options: bidirectional, no window, no softcap, no sinks, scale 1/sqrt(D), no lse. */
#define LLMKIT_ATTENTION_OPTIONS_INIT {sizeof(llmkit_attention_options), 0, 0, 0.0f, 0.0f, NULL, NULL, 0, NULL, NULL, NULL}

/**
 * @brief Scaled-dot-product attention: out = softmax(scale * q k^T + bias) v.
 *
 * For each batch b, query head h and query row i, with g = h / (Hq / Hkv) and
 * i' = i + Skv - Sq, the score of key j is s = scale * q[b,i,h,:] . k[b,j,g,:],
 * then s = softcap * tanh(s / softcap) (if softcap), then
 * s -= alibi_slopes[h] * (i' - j) (if ALiBi), then s += mask[b, h, i, j] (if a float mask, broadcast;
 * a bool mask adds 0 where true and -inf where false);
 * keys hidden by causality or the window get -inf. The output row is the
 * softmax-weighted sum of the visible v rows; a row that sees no key at all
 * (every score -inf) is written as zeros. With sinks, the weights are
 * exp(s_j) / (sum_j' exp(s_j') + exp(sinks[h])).
 *
 * Softmax and accumulation are float32; bf16 and fp16 inputs are converted
 * exactly, and the result is rounded to out's type once at the end. Where
 * few (batch, kv head, query tile) tasks share the threads (a decode of few
 * sequences), their keys are split into parts (flash-decoding) and the
 * parts merged; the parts depend on the shapes alone, so the result is the
 * same bits for any n_threads, as the KV caches' attention.
 * v's head_dim Dv is usually D but may differ: DeepSeek's attention has
 * D = 192 (128 plus 64 rotary dimensions) and Dv = 128, and its multi-head
 * latent attention (MLA) in the absorbed form D = 576 (the latent of 512
 * plus 64 rotary dimensions) and Dv = 512 on one kv head, v being a view of
 * the latent's first 512 columns in k.
 * @param q Queries [B, Sq, Hq, D]: float32, bfloat16 or float16; D <= 576.
 * @param k Keys [B, Skv, Hkv, D], the same dtype as q.
 * @param v Values [B, Skv, Hkv, Dv], the same dtype as q; Dv <= 576, 0 only when D is.
 * @param out Output [B, Sq, Hq, Dv], the same dtype as q; must not overlap the inputs.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_SHAPE (ranks,
 *         mismatched B, S, D, Dv or head counts, Hq not a multiple of Hkv, D or Dv > 576,
 *         a mask that does not broadcast to [B, Hq, Sq, Skv]); #LLMKIT_ERROR_DTYPE (mixed dtypes, an
 *         unsupported dtype, a mask that is not float32 or bool);
 *         #LLMKIT_ERROR_UNSUPPORTED (a D stride other than 1, an out stride
 *         of 0 over more than one element);
 *         #LLMKIT_ERROR_INVALID_ARGUMENT (bad struct_size, negative window or
 *         n_threads, non-finite or negative scale or softcap, non-finite slope
 *         or sink); #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in q, k or v,
 *         or a NaN or +inf in the mask, whose -inf hides a key: the message
 *         gives the first such element's index; nothing is written to out);
 *         #LLMKIT_ERROR_NO_DEVICE (CUDA tensors without a usable GPU). Every
 *         message names the argument. Thread-safe for distinct outputs.
 */
LLMKIT_API llmkit_status llmkit_attention(const llmkit_tensor *q, const llmkit_tensor *k, const llmkit_tensor *v,
                                          const llmkit_tensor *out, const llmkit_attention_options *options);

/**
 * @brief Attention over packed sequences of different lengths (flash-attn's varlen form), without padding.
 *
 * Sequence b's queries are rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1 of
 * q and out, its keys and values rows cu_seqlens_k[b] .. cu_seqlens_k[b + 1] - 1
 * of k and v; each sequence attends only to its own keys, with
 * llmkit_attention()'s semantics (causality and windows bottom-right aligned
 * within the sequence, so a sequence with more keys than queries is a chunk
 * after a prefix). Prefill of a batch of prompts of different lengths, packed
 * end to end, costs the work of their rows only. The result is the bits of
 * llmkit_attention() on each sequence's rows viewed as a [1, S, H, D] tensor
 * (the same strides, as which rows lie where picks the kernels).
 * Empty sequences are allowed; a query row with no key gets zeros.
 * @param q Queries [Tq, Hq, D]: float32, bfloat16 or float16; D <= 576.
 * @param k Keys [Tk, Hkv, D], q's dtype. @param v Values [Tk, Hkv, Dv], q's dtype (Dv as in llmkit_attention()).
 * @param cu_seqlens_q int32 or int64 [B + 1]: 0, then each sequence's end row in q, never decreasing, Tq last.
 * @param cu_seqlens_k int32 or int64 [B + 1]: the same for k and v, Tk last.
 * @param out Output [Tq, Hq, Dv], q's dtype; must not overlap the inputs.
 * @param options NULL for defaults; its mask must be NULL; its lse, if given, is float32 [Tq, Hq].
 * @return As llmkit_attention(), and #LLMKIT_ERROR_INVALID_ARGUMENT (offsets
 *         that do not start at 0 or decrease), #LLMKIT_ERROR_SHAPE (offsets not
 *         ending at Tq or Tk, offset arrays of different lengths),
 *         #LLMKIT_ERROR_UNSUPPORTED (a mask). Errors about one sequence's rows
 *         name it ("q of sequence 2"). Thread-safe for distinct outputs.
 */
LLMKIT_API llmkit_status llmkit_attention_varlen(const llmkit_tensor *q, const llmkit_tensor *k, const llmkit_tensor *v,
                                                 const llmkit_tensor *cu_seqlens_q, const llmkit_tensor *cu_seqlens_k,
                                                 const llmkit_tensor *out, const llmkit_attention_options *options);

/**
 * @brief Merges attention over two disjoint sets of keys into attention over both, in place.
 *
 * With (out, lse) the result and log-sum-exp of attention over keys J1 and
 * (other_out, other_lse) over keys J2 (llmkit_attention_options.lse or
 * llmkit_kv_attention_options.lse, the same queries and scores), row by row:
 * lse' = ln(exp(lse) + exp(other_lse)) and
 * out' = exp(lse - lse') out + exp(other_lse - lse') other_out: the result of
 * one call over J1 and J2 together, up to float32 rounding. This is how
 * split-KV decode combines its parts, and what cascade attention (a prompt
 * prefix shared by a batch, attended once for every sequence), keys held in
 * two caches, or context split across devices need. A row whose two lse are
 * -inf (no key on either side) becomes zeros with lse -inf. Attention sinks
 * must be counted on one side only. Merging more parts: call again with the
 * merged result; keep out in float32 then, since a 16-bit out is rounded at
 * every merge.
 * @param out Attention over J1 [B, S, H, D], float32, bfloat16 or float16; overwritten with the merge.
 * @param lse float32 [B, S, H], out's log-sum-exps; overwritten with the merged ones.
 * @param other_out Attention over J2, out's shape, any of the three float types.
 * @param other_lse float32 [B, S, H], other_out's log-sum-exps.
 * Any strides (unit stride on D); other_out may be out itself, other partial
 * overlaps give unspecified results. Device tensors are staged through host memory.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_SHAPE (ranks,
 *         mismatched shapes); #LLMKIT_ERROR_DTYPE; #LLMKIT_ERROR_UNSUPPORTED
 *         (a D stride other than 1, a stride of 0 in out or lse over more than
 *         one element); #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in out
 *         or other_out, a NaN or +inf in an lse; nothing is written). Thread-safe
 *         for distinct outputs.
 */
LLMKIT_API llmkit_status llmkit_attention_merge(const llmkit_tensor *out, const llmkit_tensor *lse,
                                                const llmkit_tensor *other_out, const llmkit_tensor *other_lse);

/** @brief Which dimensions RoPE rotates together. */
typedef enum llmkit_rope_layout LLMKIT_ENUM_BASE {
    LLMKIT_ROPE_NEOX = 0,       /**< Half-split (GPT-NeoX, Hugging Face Llama): pairs (x[k], x[k + n/2]). */
    LLMKIT_ROPE_INTERLEAVED = 1 /**< Adjacent pairs (GPT-J, Meta's original Llama, llama2.c): (x[2k], x[2k + 1]). */
} llmkit_rope_layout;

/** @brief How RoPE's frequencies are stretched for contexts longer than the training one. */
typedef enum llmkit_rope_scaling LLMKIT_ENUM_BASE {
    LLMKIT_ROPE_SCALING_NONE = 0,   /**< Plain RoPE: inv_freq[k] = theta^(-2k/n). */
    LLMKIT_ROPE_SCALING_LINEAR = 1, /**< Position interpolation: every frequency divided by `factor`. */
    LLMKIT_ROPE_SCALING_NTK = 2,    /**< NTK-aware: theta replaced by theta * alpha^(n / (n - 2)). */
    LLMKIT_ROPE_SCALING_LLAMA3 = 3, /**< Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between. */
    LLMKIT_ROPE_SCALING_YARN = 4,   /**< YaRN, as Hugging Face transformers computes it (ramp between beta_fast and beta_slow, cos/sin times the attention factor). */
    LLMKIT_ROPE_SCALING_LONGROPE = 5 /**< LongRoPE (Phi-3, Phi-3.5, Phi-4-mini): frequency k divided by `frequency_factors[k]` (the model's short_factor or long_factor), cos/sin times the attention factor. */
} llmkit_rope_scaling;

/** @brief Options of llmkit_rope(). */
typedef struct llmkit_rope_options {
    uint32_t struct_size;           /**< sizeof(llmkit_rope_options). */
    int32_t layout;                 /**< An #llmkit_rope_layout value. Default #LLMKIT_ROPE_NEOX. */
    double theta;                   /**< Frequency base. Default 10000. */
    int32_t rotary_dims;            /**< Dimensions rotated (partial rotary: the first n of D, even); 0 = all of D. */
    int32_t scaling;                /**< An #llmkit_rope_scaling value. Default #LLMKIT_ROPE_SCALING_NONE. */
    double factor;                  /**< Scaling factor (linear, Llama 3.1, YaRN), >= 1. Default 1. */
    double alpha;                   /**< NTK-aware alpha, > 0. Default 1. */
    double low_freq_factor;         /**< Llama 3.1 low_freq_factor. Default 1. */
    double high_freq_factor;        /**< Llama 3.1 high_freq_factor, > low_freq_factor. Default 4. */
    double original_max_position;   /**< Training context (Llama 3.1, YaRN): original_max_position_embeddings. Default 8192. */
    double beta_fast;               /**< YaRN beta_fast. Default 32. */
    double beta_slow;               /**< YaRN beta_slow. Default 1. */
    double attention_factor;        /**< Factor multiplying cos and sin (YaRN's mscale, LongRoPE's); 0 = the scaling's own: YaRN 0.1 * ln(factor) + 1, LongRoPE sqrt(1 + ln(factor) / ln(original_max_position)) (1 when factor <= 1). */
    int32_t n_threads;              /**< Worker threads; 0 = llmkit_get_num_threads(). */
    void *stream;                   /**< CUDA stream for device tensors; NULL = the default stream. */
    /** Per-pair divisors of the frequencies, rotary_dims / 2 of them (head_dim / 2
     *  when rotary_dims is 0), each > 0; +infinity stops its pair (frequency 0:
     *  the pair is kept, times any attention factor), as Gemma 4's proportional
     *  RoPE leaves the pairs past its partial_rotary_factor; NULL = none. LongRoPE's
     *  short_factor or long_factor (required by #LLMKIT_ROPE_SCALING_LONGROPE),
     *  or the `rope_freqs` tensor of a GGUF model (llama.cpp's freq_factors).
     *  With any scaling, inv_freq[k] of the scaling is divided by
     *  frequency_factors[k]. Read during the call only: a cache keeps its own copy
     *  of what it needs. */
    const float *frequency_factors;
    /** Multimodal RoPE (M-RoPE: Qwen2-VL, Qwen2.5-VL, Qwen3-VL): how many rotated
     *  pairs take each of the three position components (temporal, height,
     *  width), summing to rotary_dims / 2 (head_dim / 2 when rotary_dims is 0);
     *  positions are then [3, B, S] or [3, S]. All 0 (the default): plain RoPE,
     *  one position per token. Not for the caches' fused RoPE, whose positions
     *  are token indices. */
    int32_t mrope_section[3];
    /** M-RoPE's layout. 0: contiguous sections, pairs [0, s0) temporal, the next
     *  s1 height, the last s2 width (Qwen2-VL, Qwen2.5-VL). 1: interleaved, pair k
     *  height when k % 3 == 1 and k < 3 * s1, width when k % 3 == 2 and
     *  k < 3 * s2, else temporal (Qwen3-VL). */
    int32_t mrope_interleaved;
} llmkit_rope_options;

/** @brief Default #llmkit_rope_options: NeoX layout, theta 10000, all dims, no scaling. */
#define LLMKIT_ROPE_OPTIONS_INIT \
    {sizeof(llmkit_rope_options), LLMKIT_ROPE_NEOX, 10000.0, 0, LLMKIT_ROPE_SCALING_NONE, 1.0, 1.0, 1.0, 4.0, 8192.0, \
     32.0, 1.0, 0.0, 0, NULL, NULL, {0, 0, 0}, 0}

/**
 * @brief Applies rotary position embeddings to q or k, in place.
 *
 * For pair k of the rotated dimensions (see #llmkit_rope_layout) at position p,
 * with angle a = p * inv_freq[k] (inv_freq from `theta` and the scaling, then
 * divided by `frequency_factors[k]` when given), the pair (x, y) becomes
 * (x cos a - y sin a, x sin a + y cos a) (times the attention factor of YaRN or
 * LongRoPE). Angles, cos and sin are computed in double precision.
 * @param x Tensor [B, S, H, D], float32, bfloat16 or float16, unit stride on D;
 *          rotated in place.
 * @param positions int32 or int64 positions, [B, S] or [S] (shared by the
 *          batch); with M-RoPE (`mrope_section`), [3, B, S] or [3, S]: the
 *          temporal, height and width components. Any strides.
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_SHAPE (ranks,
 *         positions not matching x, odd or too large rotary_dims);
 *         #LLMKIT_ERROR_DTYPE; #LLMKIT_ERROR_UNSUPPORTED (a D stride other
 *         than 1, a stride of 0 over more than one element of x, which is
 *         written in place); #LLMKIT_ERROR_INVALID_ARGUMENT (bad layout, scaling or
 *         parameters); #LLMKIT_ERROR_NO_DEVICE. Thread-safe for distinct x.
 *         #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in x, named by its
 *         index; x is left unchanged).
 */
LLMKIT_API llmkit_status llmkit_rope(const llmkit_tensor *x, const llmkit_tensor *positions,
                                     const llmkit_rope_options *options);

/**
 * @brief llmkit_rope() into another tensor: out = x rotated, x unchanged.
 *
 * One pass over x and one over out, where a copy then llmkit_rope() makes two
 * over the copy (Python's `llmkit.rope` without `in_place` uses this). The
 * dimensions past `rotary_dims` are copied. With out in x's dtype the bits
 * are those of llmkit_rope() on a copy of x; with another dtype the rotation
 * runs in float32 from x's values and rounds once to out's dtype.
 * @param x Tensor [B, S, H, D], float32, bfloat16 or float16, unit stride on D.
 * @param positions As llmkit_rope()'s.
 * @param out Tensor of x's shape, float32, bfloat16 or float16, unit stride on
 *            D. It may be x itself (then this is llmkit_rope()); any other
 *            overlap with x gives unspecified values.
 * @param options NULL for defaults.
 * @return llmkit_rope()'s statuses, and #LLMKIT_ERROR_SHAPE for an out whose
 *         shape differs from x's. A NaN or infinity in x is refused before
 *         anything is written to out. Thread-safe for distinct out.
 */
LLMKIT_API llmkit_status llmkit_rope_into(const llmkit_tensor *x, const llmkit_tensor *positions,
                                          const llmkit_tensor *out, const llmkit_rope_options *options);

/**
 * @brief The kernel set attention uses on this CPU.
 * @return "avx512vnni" (the AVX-512 set, decoding int8 KV caches in integers:
 *         queries and weights rounded to int16, see the Attention concept
 *         page), "avx512", "avx2" or "generic" (a static string, never NULL).
 *         The float paths agree with float64 to the same stated tolerances on
 *         every set. LLMKIT_MAX_CPU_ISA ("generic", "avx2", "avx512"), read
 *         once, caps the choice. Thread-safe.
 */
LLMKIT_API const char *llmkit_attention_isa(void);

/**
 * @brief Bytes of a KV cache: 2 * n_layers * n_kv_heads * head_dim * dtype_bytes * context * batch.
 * @param[out] out Receives the byte count.
 * @param n_layers Transformer layers, >= 0.
 * @param n_kv_heads Key/value heads per layer, >= 0.
 * @param head_dim Dimensions per head, >= 0.
 * @param dtype_bytes Bytes per element (2 for fp16/bf16), >= 0.
 * @param context Tokens per sequence, >= 0.
 * @param batch Sequences, >= 0.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         for a negative argument; #LLMKIT_ERROR_OUT_OF_RANGE when the product
 *         does not fit in 64 bits. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_bytes(uint64_t *out, int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                                               int64_t dtype_bytes, int64_t context, int64_t batch);

/**
 * @brief Bytes of a KV cache whose V has a head_dim of its own:
 *        n_layers * n_kv_heads * (head_dim + v_head_dim) * dtype_bytes * context * batch.
 *
 * DeepSeek-V3's per-head form (61 layers, 128 heads, K 192, V 128) in bf16 takes
 * 4997120 bytes per token; its latent cache (1 head of 576, no V: v_head_dim 0,
 * as a cache made with v_from_k) 70272. For 8-bit caches (int8, FP8) the per-row float32
 * scales come on top (llmkit_kv_cache_memory_bytes() counts them).
 * @param[out] out Receives the byte count.
 * @param n_layers Transformer layers, >= 0. @param n_kv_heads Key/value heads per layer, >= 0.
 * @param head_dim K's dimensions per head, >= 0.
 * @param v_head_dim V's dimensions per head, >= 0: head_dim for most models, 0 for a cache that stores no V.
 * @param dtype_bytes Bytes per element, >= 0. @param context Tokens per sequence, >= 0. @param batch Sequences, >= 0.
 * @return As llmkit_kv_cache_bytes(). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_bytes_dv(uint64_t *out, int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                                                  int64_t v_head_dim, int64_t dtype_bytes, int64_t context,
                                                  int64_t batch);

/** @brief Element type of a KV cache. */
typedef enum llmkit_kv_dtype LLMKIT_ENUM_BASE {
    LLMKIT_KV_F32 = 0,  /**< float32. */
    LLMKIT_KV_BF16 = 1, /**< bfloat16 (rounded to nearest even on append). */
    LLMKIT_KV_F16 = 2,  /**< IEEE float16 (rounded to nearest even on append). */
    LLMKIT_KV_INT8 = 3, /**< int8, symmetric, one float32 scale per token and kv head: scale = absmax / 127, q = round(x / scale). */
    LLMKIT_KV_FP8_E4M3 = 4, /**< FP8 E4M3 (OCP "fn", torch.float8_e4m3fn), one float32 scale per token and kv head: scale = absmax / 448 (1 for a zero row), q = fp8(x / scale) rounded to nearest even, as torch's cast. 3 mantissa bits: each element within 2^-4 of itself down to absmax / 28672 (E4M3's subnormals below), where int8's error is up to absmax / 254 for small and large elements alike, so keys with outlier channels keep more of their other channels in FP8. Added after 0.1.0. */
    LLMKIT_KV_FP8_E5M2 = 5  /**< FP8 E5M2 (torch.float8_e5m2), as #LLMKIT_KV_FP8_E4M3 with scale = absmax / 57344: 2 mantissa bits, a wider range. Added after 0.1.0. */
} llmkit_kv_dtype;

/** @brief A contiguous KV cache: max_sequences slots of `capacity` tokens, every layer. Opaque. */
typedef struct llmkit_kv_cache llmkit_kv_cache;

/** @brief Shape of an #llmkit_kv_cache, for llmkit_kv_cache_create(). */
typedef struct llmkit_kv_cache_options {
    uint32_t struct_size;   /**< sizeof(llmkit_kv_cache_options). */
    int32_t n_layers;       /**< Transformer layers, > 0. Default 1. */
    int32_t n_kv_heads;     /**< Key/value heads per layer, > 0. Default 1. */
    int32_t head_dim;       /**< Dimensions per head of K (and of q), 1..576. Default 128. */
    int64_t capacity;       /**< Tokens each sequence can hold, > 0. Default 4096. */
    int32_t max_sequences;  /**< Sequence slots, > 0. Default 1. */
    int32_t dtype;          /**< An #llmkit_kv_dtype value. Default #LLMKIT_KV_F32. */
    int32_t v_head_dim;     /**< Dimensions per head of V (and of the attention's output), 0..576; 0 (default) = head_dim. DeepSeek-V2/V3's per-head form: 192 and 128. */
    int32_t v_from_k;       /**< Nonzero: the cache stores no V; a token's V is the first v_head_dim elements of its K row (v_head_dim <= head_dim). This is multi-head latent attention's cache (DeepSeek, absorbed form): one kv head of 576 = 512 latent + 64 rotary dimensions, v_head_dim 512, 1152 bytes per token and layer in bf16. Appends pass v = NULL. A fused RoPE (append, attention's queries, erase) turns the LAST rope.rotary_dims of each row, MLA's rotary part (k_pe, q_pe), which must lie past V: 0 < rotary_dims <= head_dim - v_head_dim (64 for DeepSeek's). Default 0. */
} llmkit_kv_cache_options;

/** @brief Default #llmkit_kv_cache_options: 1 layer, 1 kv head of 128, 4096 tokens, 1 sequence, float32, V its own. */
#define LLMKIT_KV_CACHE_OPTIONS_INIT {sizeof(llmkit_kv_cache_options), 1, 1, 128, 4096, 1, LLMKIT_KV_F32, 0, 0}

/** @brief A paged KV cache: a pool of blocks shared by sequences through block tables. Opaque. */
typedef struct llmkit_paged_kv_cache llmkit_paged_kv_cache;

/** @brief Shape of an #llmkit_paged_kv_cache, for llmkit_paged_kv_cache_create(). */
typedef struct llmkit_paged_kv_cache_options {
    uint32_t struct_size;         /**< sizeof(llmkit_paged_kv_cache_options). */
    int32_t n_layers;             /**< Transformer layers, > 0. Default 1. */
    int32_t n_kv_heads;           /**< Key/value heads per layer, > 0. Default 1. */
    int32_t head_dim;             /**< Dimensions per head of K (and of q), 1..576. Default 128. */
    int32_t block_size;           /**< Tokens per block, > 0. Default 16 (vLLM's default). */
    int64_t n_blocks;             /**< Blocks in the pool (every layer's K and V of block_size tokens each), 1..INT32_MAX. Default 256. */
    int32_t max_sequences;        /**< Sequence slots, > 0. Default 64. */
    int64_t max_blocks_per_seq;   /**< Longest block table (max tokens per sequence / block_size); 0 = n_blocks. */
    int32_t dtype;                /**< An #llmkit_kv_dtype value. Default #LLMKIT_KV_F32. */
    int32_t v_head_dim;           /**< As #llmkit_kv_cache_options' v_head_dim. Default 0 (= head_dim). */
    int32_t v_from_k;             /**< As #llmkit_kv_cache_options' v_from_k (MLA's latent cache). Default 0. */
} llmkit_paged_kv_cache_options;

/** @brief Default #llmkit_paged_kv_cache_options: 1 layer, 1 kv head of 128, 256 blocks of 16 tokens, 64 sequences, float32, V its own. */
#define LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT \
    {sizeof(llmkit_paged_kv_cache_options), 1, 1, 128, 16, 256, 64, 0, LLMKIT_KV_F32, 0, 0}

/** @brief Options of llmkit_kv_cache_attention() and the paged variants. */
typedef struct llmkit_kv_attention_options {
    uint32_t struct_size;        /**< sizeof(llmkit_kv_attention_options). */
    int32_t causal;              /**< Nonzero (default): query i of Sq, at position len - Sq + i, sees keys j <= its position. 0: every cached key. */
    int64_t window;              /**< Sliding window: keys pos - window < j <= pos; implies causal. 0 = none. */
    float softcap;               /**< Logit soft-capping, s = softcap * tanh(s / softcap). 0 = none. */
    float scale;                 /**< Score scale; 0 = 1 / sqrt(D). */
    const float *alibi_slopes;   /**< Hq ALiBi slopes (adds -slope * (pos - j)), or NULL. Read during the call. */
    const float *sinks;          /**< Hq attention-sink logits (gpt-oss): each joins its head's softmax denominator as exp(sink) without a value. NULL = none. */
    int32_t n_threads;           /**< Worker threads; 0 = llmkit_get_num_threads(). */
    int64_t split_keys;          /**< Split-KV: keys per part when a sequence's queries form one tile (decode); rounded up to 64; 0 = 1024. Results do not depend on n_threads. */
    const llmkit_rope_options *rope; /**< Fused RoPE for the queries, or NULL (q used as given). Each query is rotated at its position (query i of sequence b at len_b - Sq + i) in a copy, q itself untouched: the same bits as llmkit_rope() on q at those positions before the call (on a v_from_k cache, on the last rotary_dims of each query, as its keys'). Pair it with llmkit_kv_cache_append_rope(). Its n_threads and stream are ignored. */
    const llmkit_tensor *lse;        /**< Output, or NULL = not wanted: float32 [B, Sq, Hq] in host memory (any strides) receiving each query row's log-sum-exp, as llmkit_attention_options.lse. Added after 0.1.0 (an older struct gets NULL). */
    const llmkit_tensor *cu_seqlens_q; /**< Packed queries, or NULL: int32 or int64 [B + 1] offsets in host memory (flash-attn's cu_seqlens_q), 0 first, never decreasing, Tq last. With it q and out are [Tq, Hq, D] and lse [Tq, Hq]: sequence b brings the cu_seqlens_q[b + 1] - cu_seqlens_q[b] queries in rows cu_seqlens_q[b] onwards, its last tokens, so one call serves decodes (1 query) and prefill chunks (many) side by side; a sequence may bring none. Each sequence gets the bits of a call with its queries alone. Added after 0.1.0 (an older struct gets NULL). */
} llmkit_kv_attention_options;

/** @brief Default #llmkit_kv_attention_options: causal, no window, softcap, ALiBi, sinks or RoPE, scale 1/sqrt(D), no lse, queries [B, Sq, Hq, D]. */
#define LLMKIT_KV_ATTENTION_OPTIONS_INIT {sizeof(llmkit_kv_attention_options), 1, 0, 0.0f, 0.0f, NULL, NULL, 0, 0, NULL, NULL, NULL}

/**
 * @brief Creates a contiguous KV cache (all memory allocated now, zeroed).
 * @param[out] out Receives the cache; free it with llmkit_kv_cache_free().
 * @param options Required: the cache's shape and dtype.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT
 *         (bad struct_size, a count <= 0, head_dim > 256, unknown dtype);
 *         #LLMKIT_ERROR_OUT_OF_RANGE (the size overflows);
 *         #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_create(llmkit_kv_cache **out, const llmkit_kv_cache_options *options);

/** @brief Frees a cache; NULL does nothing. @param cache The cache. */
LLMKIT_API void llmkit_kv_cache_free(llmkit_kv_cache *cache);

/**
 * @brief Starts an empty sequence in the first free slot.
 * @param cache The cache. @param[out] seq Receives the sequence id (0..max_sequences-1).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_MEMORY
 *         when every slot is in use. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_new(llmkit_kv_cache *cache, int32_t *seq);

/**
 * @brief Starts a sequence holding a copy of `src` (a contiguous cache shares nothing: the rows are copied).
 * @param cache The cache. @param src A live sequence. @param[out] seq Receives the new id.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE
 *         (src not live); #LLMKIT_ERROR_OUT_OF_MEMORY (no free slot). Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_fork(llmkit_kv_cache *cache, int32_t src, int32_t *seq);

/**
 * @brief Ends a sequence; its slot can be reused.
 * @param cache The cache. @param seq A live sequence.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_free(llmkit_kv_cache *cache, int32_t seq);

/**
 * @brief Keeps a sequence's first n tokens in every layer, dropping the rest.
 *
 * For speculative decoding (the target model appended K and V for every
 * draft token; drop those verification rejected) and for rolling back a
 * turn. Layers holding n tokens or fewer keep theirs; the next append writes
 * from position n (and a fused RoPE rotates it at n).
 * @param cache The cache. @param seq A live sequence.
 * @param n Tokens to keep, 0..llmkit_kv_cache_seq_length(seq, -1).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE (seq
 *         not live, n outside its range). Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_truncate(llmkit_kv_cache *cache, int32_t seq, int64_t n);

/**
 * @brief Erases tokens [from, to) of a sequence from every layer; the tokens after them move down.
 *
 * Context shift, as llama.cpp's (llama_memory_seq_rm then seq_add): when a
 * sequence fills its context, drop a span (keeping the first tokens, the
 * system prompt and StreamingLLM's attention sinks, and the most recent ones)
 * and go on generating. Token j >= to becomes token j - (to - from), and with
 * `rope` its K row is turned by -(to - from) positions: RoPE's angles grow
 * linearly with the position, so a key rotated at p, turned by -d, is the key
 * rotated at p - d, and the cache then holds what appending the kept tokens at
 * their new positions would have stored (to float32 rounding; 16-bit and
 * 8-bit rows are rounded again, as the append rounded them). Pass the
 * rotation the appends used (llmkit_kv_cache_append_rope(), or llmkit_rope()
 * before a plain append); YaRN's factor is not applied again. V rows, and K
 * rows when `rope` is NULL (a model without RoPE, ALiBi's say), move as they
 * are. The next append writes from the new length, and attention's queries
 * sit at the new positions.
 * @param cache The cache. @param seq A live sequence.
 * @param from First token erased. @param to One past the last; 0 <= from <= to <= the sequence's shortest layer.
 * @param rope The keys' rotation (M-RoPE refused), or NULL to move K rows unchanged. Read during the call.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE (seq
 *         not live, the range outside what every layer holds);
 *         #LLMKIT_ERROR_INVALID_ARGUMENT, #LLMKIT_ERROR_SHAPE (bad rope options; on a v_from_k
 *         cache, rotary dims reaching into V: see its option);
 *         #LLMKIT_ERROR_UNSUPPORTED (M-RoPE). On an error the sequence is
 *         unchanged. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_erase(llmkit_kv_cache *cache, int32_t seq, int64_t from, int64_t to,
                                                   const llmkit_rope_options *rope);

/**
 * @brief Saves a sequence's cached K and V, every layer, as a byte string.
 *
 * For prompt caching across runs (a system prompt prefilled once, written to
 * disk, loaded by the next process) and for moving a sequence between caches:
 * the paged cache writes the same format (llmkit_paged_kv_cache_seq_save()),
 * so a sequence saved from either kind loads into either, of any capacity or
 * block size, as long as the dtype, layers, kv heads and head dims match. The
 * bytes are the cache's own rows in its dtype: a 40-byte header ("LLMKITKV",
 * format version 1, dtype, shape), each layer's token count, then per layer
 * K's rows [head][token][dim] and V's, each followed for int8 and FP8 by the
 * rows' float32 scales (an element's value is its integer or FP8 value times
 * its row's scale, absmax / 127, / 448 or / 57344; the format is on the
 * Attention concept page). Loading them back gives the same bits, so
 * attention over the loaded sequence equals attention over the saved one.
 * @param cache The cache. @param seq A live sequence.
 * @param buf Receives the bytes, or NULL to ask for the size.
 * @param capacity Bytes available at buf.
 * @param[out] written Receives the bytes the sequence needs, also when buf is NULL or too small; may be NULL.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER (cache);
 *         #LLMKIT_ERROR_OUT_OF_RANGE (seq not live);
 *         #LLMKIT_ERROR_BUFFER_TOO_SMALL (written set; also for a NULL buf).
 *         Thread-safe with other readers of the cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_save(const llmkit_kv_cache *cache, int32_t seq, void *buf, size_t capacity,
                                                  size_t *written);

/**
 * @brief Replaces a sequence's cached K and V with a saved sequence's (see llmkit_kv_cache_seq_save()).
 *
 * Every part of the bytes is checked before anything is written, so on an
 * error the sequence is unchanged: the header, the sizes, and every value
 * (a NaN or infinity, or a negative scale, is refused as no append stores
 * one). Truncated, corrupt and hostile input gets an error naming the problem.
 * @param cache The cache. @param seq A live sequence (its tokens are replaced).
 * @param data The saved bytes (NULL only with size 0). @param size Their count.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_FORMAT (not a
 *         saved sequence, another format version, truncated, extra bytes, a
 *         value no append stores); #LLMKIT_ERROR_INVALID_ARGUMENT (saved from a
 *         cache of another dtype, layer count, kv heads or head dims);
 *         #LLMKIT_ERROR_OUT_OF_RANGE (seq not live, or more tokens than the
 *         cache's capacity); #LLMKIT_ERROR_UNSUPPORTED (a paged sequence saved
 *         after llmkit_paged_kv_cache_seq_release_before() released tokens: a
 *         contiguous cache holds every token). Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_load(llmkit_kv_cache *cache, int32_t seq, const void *data, size_t size);

/**
 * @brief Tokens a sequence holds in a layer.
 * @param cache The cache. @param seq A live sequence. @param layer 0..n_layers-1, or -1 for the largest over layers.
 * @param[out] length Receives the count.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_seq_length(const llmkit_kv_cache *cache, int32_t seq, int32_t layer,
                                                    int64_t *length);

/**
 * @brief Appends the K and V rows of new tokens (a prefill chunk, or one decode token) to a sequence's layer.
 * @param cache The cache. @param layer 0..n_layers-1. @param seq A live sequence.
 * @param k Keys [S, Hkv, D] or [1, S, Hkv, D]: float32, bfloat16 or float16, host
 *          memory, unit stride on D; converted to the cache's dtype (int8: quantised per token and head).
 * @param v Values [S, Hkv, Dv] (or [1, S, Hkv, Dv]; Dv the cache's v_head_dim), k's dtype;
 *          NULL for a cache made with v_from_k (it keeps no V), and only there.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_SHAPE (not
 *         this cache's heads and head dims, k and v differ);
 *         #LLMKIT_ERROR_INVALID_ARGUMENT (a v for a v_from_k cache); #LLMKIT_ERROR_DTYPE;
 *         #LLMKIT_ERROR_NON_FINITE; #LLMKIT_ERROR_OUT_OF_RANGE (bad layer or
 *         seq, or the sequence would pass its capacity);
 *         #LLMKIT_ERROR_UNSUPPORTED (device memory, a D stride other than 1).
 *         On error nothing is appended. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_append(llmkit_kv_cache *cache, int32_t layer, int32_t seq,
                                                const llmkit_tensor *k, const llmkit_tensor *v);

/**
 * @brief llmkit_kv_cache_append() with RoPE fused: K is rotated on its way into the cache.
 *
 * Token j of the sequence (the cache's own count: the first appended token is
 * j = 0) is rotated at position j, in float32 from the exact values of k, and
 * then stored in the cache's dtype (for int8, its scale is taken after the
 * rotation): one pass over k, no rotated copy for the caller to keep. The
 * bits equal llmkit_rope() on a float32 copy of k at positions len..len+S-1
 * followed by llmkit_kv_cache_append(). V is stored as it is. Models whose
 * positions are not the token count (shifted or multimodal positions) rotate
 * with llmkit_rope() and append instead. The cache keeps the cosines and
 * sines of the positions it rotated, for the rotation last used (every layer
 * rotates the same positions): 8 bytes per position and rotated pair, for
 * positions below 32768 (at most 16 MiB at head_dim 128), not counted by
 * llmkit_kv_cache_memory_bytes().
 * @param cache The cache. @param layer 0..n_layers-1. @param seq A live sequence.
 * @param k Keys, as llmkit_kv_cache_append(). @param v Values, as llmkit_kv_cache_append().
 * @param rope The rotation (layout, theta, rotary dims, scaling); NULL for
 *             the defaults (#LLMKIT_ROPE_OPTIONS_INIT). Its n_threads and stream are ignored.
 * @return As llmkit_kv_cache_append(), and #LLMKIT_ERROR_INVALID_ARGUMENT or
 *         #LLMKIT_ERROR_SHAPE for bad rope options (as llmkit_rope()), and
 *         on a v_from_k cache for rotary dims that are 0 (all of the row) or
 *         reach into V (its rotation turns the last rotary_dims of each row:
 *         MLA's k_pe); #LLMKIT_ERROR_UNSUPPORTED for M-RoPE. On error
 *         nothing is appended. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_append_rope(llmkit_kv_cache *cache, int32_t layer, int32_t seq,
                                                     const llmkit_tensor *k, const llmkit_tensor *v,
                                                     const llmkit_rope_options *rope);

/**
 * @brief Attention of new queries over cached sequences: prefill, chunked prefill or batched decode.
 *
 * q[b] holds the queries of the last Sq tokens of sequence seq_ids[b] (append
 * their K and V first): query i sits at position len_b - Sq + i, so a prefill
 * chunk attends to the cached prefix and to itself, causally; decode is Sq = 1,
 * with sequences of different lengths in one call. Scores, softcap, ALiBi,
 * window and softmax are as in llmkit_attention(), read from the cache in place.
 * Sequences that bring different numbers of queries (a serving step's decodes
 * and prefill chunks) go in one call with options->cu_seqlens_q, q then packed
 * [Tq, Hq, D].
 * @param cache The cache. @param layer 0..n_layers-1.
 * @param q Queries [B, Sq, Hq, D] (packed: [Tq, Hq, D]), float32, bfloat16 or float16; Hq a multiple of the cache's kv heads.
 * @param seq_ids B live sequence ids (may repeat). @param n_seqs B.
 * @param out Output [B, Sq, Hq, Dv] (packed: [Tq, Hq, Dv]), Dv the cache's v_head_dim, q's dtype.
 * @param options NULL for defaults. Its rope rotates q's first rotary_dims
 *                dimensions, as llmkit_rope() would.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_SHAPE (ranks,
 *         head counts, head_dim, B, a sequence shorter than its queries,
 *         offsets that are not B + 1 or do not end at Tq);
 *         #LLMKIT_ERROR_DTYPE; #LLMKIT_ERROR_OUT_OF_RANGE (bad layer or id);
 *         #LLMKIT_ERROR_INVALID_ARGUMENT (bad options);
 *         #LLMKIT_ERROR_NON_FINITE (a NaN or infinity in q; the cached rows
 *         were checked when appended);
 *         #LLMKIT_ERROR_UNSUPPORTED (device memory, a D stride other than 1, an
 *         out stride of 0 over more than one element).
 *         Thread-safe with other readers of the cache, for distinct outputs.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_attention(const llmkit_kv_cache *cache, int32_t layer, const llmkit_tensor *q,
                                                   const int32_t *seq_ids, int64_t n_seqs, const llmkit_tensor *out,
                                                   const llmkit_kv_attention_options *options);

/**
 * @brief Bytes the cache holds (allocated at creation).
 * @param cache The cache. @param[out] bytes Receives the count.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_kv_cache_memory_bytes(const llmkit_kv_cache *cache, uint64_t *bytes);

/**
 * @brief Creates a paged KV cache (the pool is allocated now, zeroed).
 * @param[out] out Receives the cache; free it with llmkit_paged_kv_cache_free().
 * @param options Required: the cache's shape and dtype.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_INVALID_ARGUMENT;
 *         #LLMKIT_ERROR_OUT_OF_RANGE (the size overflows); #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_create(llmkit_paged_kv_cache **out,
                                                      const llmkit_paged_kv_cache_options *options);

/** @brief Frees a paged cache; NULL does nothing. @param cache The cache. */
LLMKIT_API void llmkit_paged_kv_cache_free(llmkit_paged_kv_cache *cache);

/**
 * @brief Starts an empty sequence (no blocks yet).
 * @param cache The cache. @param[out] seq Receives the id.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_MEMORY (no free slot). Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_new(llmkit_paged_kv_cache *cache, int32_t *seq);

/**
 * @brief Starts a sequence that shares every block of `src` (reference counts +1, no copy).
 *
 * The first append of either sequence into a shared block (only the last,
 * partly filled one can be written) copies that block first, so neither sees
 * the other's new tokens.
 * @param cache The cache. @param src A live sequence. @param[out] seq Receives the new id.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE;
 *         #LLMKIT_ERROR_OUT_OF_MEMORY (no free slot). Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_fork(llmkit_paged_kv_cache *cache, int32_t src, int32_t *seq);

/**
 * @brief Ends a sequence: its blocks' reference counts drop, and blocks no one holds return to the free list.
 * @param cache The cache. @param seq A live sequence.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_free(llmkit_paged_kv_cache *cache, int32_t seq);

/**
 * @brief Saves a sequence's cached K and V as a byte string, in llmkit_kv_cache_seq_save()'s format.
 *
 * A sequence whose first tokens llmkit_paged_kv_cache_seq_release_before()
 * released saves the tokens it holds (format version 2: the first token held
 * follows the token counts), which load into a paged cache whose block_size
 * divides that token; every other sequence saves as version 1.
 * @param cache The cache. @param seq A live sequence.
 * @param buf Receives the bytes, or NULL to ask for the size. @param capacity Bytes available at buf.
 * @param[out] written Receives the bytes needed, also when buf is NULL or too small; may be NULL.
 * @return As llmkit_kv_cache_seq_save(). Thread-safe with other readers of the cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_save(const llmkit_paged_kv_cache *cache, int32_t seq, void *buf,
                                                        size_t capacity, size_t *written);

/**
 * @brief Erases tokens [from, to) of a sequence from every layer (see llmkit_kv_cache_seq_erase()).
 *
 * The moved rows are written into the sequence's blocks from block
 * from / block_size on; a block it shares with a fork is copied first, as an
 * append into it would be, and the blocks past the new length are released
 * (freed unless another sequence holds them). The results equal the
 * contiguous cache's bit for bit.
 * @param cache The cache. @param seq A live sequence. @param from First token erased.
 * @param to One past the last. @param rope The keys' rotation, or NULL.
 * @return As llmkit_kv_cache_seq_erase(), and #LLMKIT_ERROR_OUT_OF_RANGE (from
 *         before the tokens llmkit_paged_kv_cache_seq_release_before() released);
 *         #LLMKIT_ERROR_OUT_OF_MEMORY (too few free blocks for the shared
 *         blocks to copy). On an error the sequence is unchanged. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_erase(llmkit_paged_kv_cache *cache, int32_t seq, int64_t from,
                                                         int64_t to, const llmkit_rope_options *rope);

/**
 * @brief Replaces a sequence's cached K and V with a saved sequence's (see llmkit_kv_cache_seq_load()).
 *
 * The sequence's blocks are released first (as llmkit_paged_kv_cache_seq_truncate(seq, 0)
 * would) and the rows written into blocks of its own; a save from a cache of
 * another block size (or a contiguous one) loads the same. The tokens a save
 * of a released sequence lacks stay released (its block-table entries -1),
 * so attention keeps to the window it had.
 * @param cache The cache. @param seq A live sequence. @param data The saved bytes. @param size Their count.
 * @return As llmkit_kv_cache_seq_load(), and #LLMKIT_ERROR_OUT_OF_MEMORY (not
 *         enough free blocks, counting those only seq holds);
 *         #LLMKIT_ERROR_UNSUPPORTED (saved with released tokens whose count
 *         this cache's block_size does not divide). Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_load(llmkit_paged_kv_cache *cache, int32_t seq, const void *data,
                                                        size_t size);

/**
 * @brief Keeps a sequence's first n tokens in every layer (see llmkit_kv_cache_seq_truncate()).
 *
 * The blocks past the first ceil(n / block_size) are released: freed unless
 * a forked sequence still holds them. A kept block shared with a fork is
 * copied on the next write into it, as after llmkit_paged_kv_cache_seq_fork().
 * @param cache The cache. @param seq A live sequence.
 * @param n Tokens to keep, 0..llmkit_paged_kv_cache_seq_length(seq, -1).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_truncate(llmkit_paged_kv_cache *cache, int32_t seq, int64_t n);

/**
 * @brief Releases the blocks of a sequence's tokens that a sliding window has left behind.
 *
 * Says that `seq` no longer needs its first `n` tokens, in any layer: the
 * blocks holding only such tokens (the first floor(n / block_size)) are
 * released, freed unless a forked sequence still holds them, and their
 * entries in the block table become -1. The tokens keep their positions: the
 * sequence's length, the next append's position and RoPE are unchanged. A
 * model whose every layer attends through a window of W keys can call this
 * with n = max(0, length - W + 1) after each step (the next query, at position
 * length, sees keys from length - W + 1), so a sequence holds about W +
 * block_size tokens however long it grows. The block table still spans every
 * position, so max_blocks_per_seq bounds the positions a sequence reaches,
 * while n_blocks need only cover the tokens held.
 *
 * Attention must then keep to the tokens held: a call whose window (or lack
 * of one) lets a query see a released token fails with
 * #LLMKIT_ERROR_OUT_OF_RANGE, naming the sequence and the window that would
 * fit. llmkit_paged_kv_cache_seq_save() saves the tokens held (loadable
 * into a paged cache whose block_size divides the first one);
 * llmkit_paged_kv_cache_seq_truncate() takes it
 * back to 0 tokens or to at least the first token held.
 *
 * A block holds every layer's rows, so a model that mixes windowed and global
 * layers (Gemma 2 and 3, gpt-oss) keeps them in two caches, one per kind of
 * layer, and releases from the windowed layers' cache only.
 * @param cache The cache. @param seq A live sequence.
 * @param n Tokens no longer needed, 0..the tokens seq holds in its shortest layer
 *        (a smaller n than an earlier call's releases nothing).
 * @param[out] first_held Receives the first token seq still holds (a multiple of
 *        block_size; n = 0 just asks); may be NULL.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_release_before(llmkit_paged_kv_cache *cache, int32_t seq, int64_t n,
                                                                  int64_t *first_held);

/**
 * @brief Tokens a sequence holds in a layer.
 * @param cache The cache. @param seq A live sequence. @param layer 0..n_layers-1, or -1 for the largest.
 * @param[out] length Receives the count.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE. Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_length(const llmkit_paged_kv_cache *cache, int32_t seq,
                                                          int32_t layer, int64_t *length);

/**
 * @brief A sequence's block table (block ids in token order; -1 for a block
 *        llmkit_paged_kv_cache_seq_release_before() released).
 * @param cache The cache. @param seq A live sequence.
 * @param buf Receives the ids; NULL asks for the count. @param capacity Entries buf holds.
 * @param[out] needed Receives the table's length.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_RANGE;
 *         #LLMKIT_ERROR_BUFFER_TOO_SMALL (needed set). Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_seq_block_table(const llmkit_paged_kv_cache *cache, int32_t seq,
                                                               int32_t *buf, int64_t capacity, int64_t *needed);

/**
 * @brief Appends new tokens' K and V to a sequence's layer, taking blocks from the free list as needed.
 *
 * A shared block that the append writes into is copied first (copy-on-write).
 * @param cache The cache. @param layer 0..n_layers-1. @param seq A live sequence.
 * @param k Keys [S, Hkv, D] or [1, S, Hkv, D] (as llmkit_kv_cache_append()).
 * @param v Values [S, Hkv, Dv], or NULL for a v_from_k cache (as llmkit_kv_cache_append()).
 * @return As llmkit_kv_cache_append(), and #LLMKIT_ERROR_OUT_OF_MEMORY when the
 *         pool has too few free blocks; on error nothing changes. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_append(llmkit_paged_kv_cache *cache, int32_t layer, int32_t seq,
                                                      const llmkit_tensor *k, const llmkit_tensor *v);

/**
 * @brief llmkit_paged_kv_cache_append() with RoPE fused, as llmkit_kv_cache_append_rope().
 * @param cache The cache. @param layer 0..n_layers-1. @param seq A live sequence.
 * @param k Keys. @param v Values. @param rope The rotation; NULL for the defaults.
 * @return As llmkit_paged_kv_cache_append(), and #LLMKIT_ERROR_INVALID_ARGUMENT
 *         or #LLMKIT_ERROR_SHAPE for bad rope options. On error nothing
 *         changes. Not thread-safe on one cache.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_append_rope(llmkit_paged_kv_cache *cache, int32_t layer, int32_t seq,
                                                           const llmkit_tensor *k, const llmkit_tensor *v,
                                                           const llmkit_rope_options *rope);

/**
 * @brief Attention over paged sequences, walking their block tables (see llmkit_kv_cache_attention()).
 *
 * Gives the same bits as the contiguous cache for the same rows and options.
 * @param cache The cache. @param layer 0..n_layers-1. @param q Queries [B, Sq, Hq, D].
 * @param seq_ids B live sequence ids. @param n_seqs B. @param out Output, q's shape and dtype.
 * @param options NULL for defaults.
 * @return As llmkit_kv_cache_attention(). Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_attention(const llmkit_paged_kv_cache *cache, int32_t layer,
                                                         const llmkit_tensor *q, const int32_t *seq_ids, int64_t n_seqs,
                                                         const llmkit_tensor *out,
                                                         const llmkit_kv_attention_options *options);

/**
 * @brief Attention over the pool with caller-made block tables (as vLLM's paged attention takes them).
 * @param cache The cache. @param layer 0..n_layers-1. @param q Queries [B, Sq, Hq, D].
 * @param block_tables int32 [B, max_blocks] (any strides): row b lists sequence b's blocks in token order;
 *        the first ceil(seq_lens[b] / block_size) entries must be pool block ids, or -1 for
 *        released blocks before the first one held (which no query's window may reach, as
 *        llmkit_paged_kv_cache_seq_release_before() describes).
 * @param seq_lens int32 or int64 [B]: tokens of each sequence, Sq..max_blocks * block_size.
 * @param out Output, q's shape and dtype. @param options NULL for defaults.
 * @return As llmkit_paged_kv_cache_attention(), and #LLMKIT_ERROR_OUT_OF_RANGE
 *         for a block id outside the pool or a length past the table. Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_attention_tables(const llmkit_paged_kv_cache *cache, int32_t layer,
                                                                const llmkit_tensor *q, const llmkit_tensor *block_tables,
                                                                const llmkit_tensor *seq_lens, const llmkit_tensor *out,
                                                                const llmkit_kv_attention_options *options);

/**
 * @brief Bytes of the blocks in use (a fork adds nothing until it writes) and of the whole pool.
 * @param cache The cache. @param[out] used Receives the bytes of blocks held by sequences (NULL: not wanted).
 * @param[out] pool Receives the pool's bytes (NULL: not wanted).
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER (cache). Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_memory_bytes(const llmkit_paged_kv_cache *cache, uint64_t *used,
                                                            uint64_t *pool);

/**
 * @brief Blocks on the free list.
 * @param cache The cache. @param[out] n_free Receives the count.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe with other readers.
 */
LLMKIT_API llmkit_status llmkit_paged_kv_cache_free_blocks(const llmkit_paged_kv_cache *cache, int64_t *n_free);

/** @} */
/* END ATTENTION SECTION */

/* ------------------------------------------------------------------------- */
/* BEGIN TOKENIZER SECTION (issue 3) */
/** @defgroup tokenizer Tokenizers: byte-level BPE (tiktoken)
 *
 * A tokenizer turns UTF-8 text into token ids and ids back into bytes. This
 * release has byte-level BPE exactly as OpenAI's tiktoken does it: the text is
 * split into pieces by the encoding's regular expression (PCRE2), and each
 * piece is merged from single bytes by repeatedly joining the adjacent pair
 * whose concatenation has the lowest rank (the leftmost on ties); a token's
 * rank is its id. Long pieces take O(n log n) time, never quadratic.
 *
 * Special tokens (`<|endoftext|>` ...) follow tiktoken's rules: where one
 * occurs in the text it is encoded as its id only when allowed
 * (#llmkit_encode_options); an occurrence that is not allowed is an error
 * unless `special_as_text` asks to encode it as ordinary text.
 *
 * Thread safety: a loaded tokenizer never changes, so any number of threads may
 * use one at the same time (each thread keeps its own regex scratch space).
 *  @{ */

/** @brief Opaque handle to a loaded tokenizer. */
typedef struct llmkit_tokenizer llmkit_tokenizer;

/**
 * @brief Loads a tiktoken encoding: a rank file and a named preset.
 *
 * The file holds one `base64(token bytes) SPACE rank` line per token (empty
 * lines are skipped); the preset supplies the pre-tokenizer regex and the
 * special tokens, which are not in the file:
 * - `r50k_base` (also `gpt2`): GPT-2's regex, `<|endoftext|>` = 50256;
 * - `p50k_base`: the same regex and special token;
 * - `cl100k_base`: `<|endoftext|>` 100257, `<|fim_prefix|>` 100258,
 *   `<|fim_middle|>` 100259, `<|fim_suffix|>` 100260, `<|endofprompt|>` 100276;
 * - `o200k_base`: `<|endoftext|>` 199999, `<|endofprompt|>` 200018;
 * - `llama3` (Llama 3 to 3.3 `tokenizer.model`): 256 special tokens
 *   128000..128255 as meta-llama/llama-models numbers them
 *   (`<|begin_of_text|>` 128000, `<|eot_id|>` 128009, ...);
 * - `qwen2` (`qwen.tiktoken`): Qwen2's regex (single digits),
 *   `<|endoftext|>` 151643, `<|im_start|>` 151644, `<|im_end|>` 151645.
 * @param[out] out Receives the tokenizer; free it with llmkit_tokenizer_free().
 * @param path Path of the rank file (NUL-terminated).
 * @param encoding_name One of the names above.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_IO when the
 *         file cannot be read; #LLMKIT_ERROR_FORMAT for a malformed line (the
 *         message gives `path:line`), a duplicate token or rank, or a file that
 *         lacks one of the 256 single bytes; #LLMKIT_ERROR_INVALID_ARGUMENT for
 *         an unknown encoding name; #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_from_tiktoken(llmkit_tokenizer **out, const char *path,
                                                        const char *encoding_name);

/** @brief Options of llmkit_tokenizer_from_file(). */
typedef struct llmkit_tokenizer_load_options {
    uint32_t struct_size;           /**< sizeof(llmkit_tokenizer_load_options). */
    const char *tiktoken_encoding;  /**< Preset of a tiktoken rank file (see llmkit_tokenizer_from_tiktoken()); required for that format, must be NULL for the others. Default NULL. */
    int32_t gguf_allow_duplicate_keys; /**< GGUF only: nonzero accepts a file that repeats a metadata key, keeping the first value (llama.cpp refuses such files); 0 (default): #LLMKIT_ERROR_FORMAT naming the key. */
} llmkit_tokenizer_load_options;

/** @brief Default #llmkit_tokenizer_load_options: no tiktoken preset, duplicate GGUF keys refused. */
#define LLMKIT_TOKENIZER_LOAD_OPTIONS_INIT {sizeof(llmkit_tokenizer_load_options), NULL, 0}

/**
 * @brief Loads a tokenizer file, detecting its format from the content.
 *
 * - A JSON object: a Hugging Face `tokenizer.json`, with its normalizer
 *   (BertNormalizer, NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents,
 *   Prepend, Replace, ByteLevel, Nmt, Precompiled — SentencePiece's compiled
 *   rules as T5/ALBERT/XLM-R files carry them, applied per grapheme cluster
 *   as `tokenizers` does — and Sequence), pre-tokenizer (ByteLevel,
 *   BertPreTokenizer, Whitespace, WhitespaceSplit, Metaspace, Split, Digits,
 *   Punctuation, CharDelimiterSplit, FixedLength, UnicodeScripts, Sequence), model (BPE ranked by its merges,
 *   with byte_fallback, unk_token, continuing_subword_prefix,
 *   end_of_word_suffix and ignore_merges; WordPiece; WordLevel; Unigram; the type is
 *   inferred when the file leaves it out), post-processor (TemplateProcessing,
 *   BertProcessing, RobertaProcessing, ByteLevel, Sequence), decoder
 *   (ByteLevel, WordPiece, Metaspace, ByteFallback, Fuse, Strip, Replace,
 *   BPEDecoder, CTC, Sequence) and added tokens, giving the ids of the `tokenizers`
 *   package. Added tokens are matched before the model with their lstrip,
 *   rstrip, single_word and normalized flags; special ones follow
 *   #llmkit_encode_options like tiktoken's special tokens. The file's
 *   `truncation` and `padding` settings are ignored.
 * - Lines `base64(token) rank`: a tiktoken rank file; give its preset in
 *   `options->tiktoken_encoding` (the file holds no pattern or special tokens).
 * - A SentencePiece `.model` (a protobuf ModelProto): BPE by piece scores or
 *   Unigram (Viterbi), exactly as the sentencepiece library segments: its
 *   normalizer (identity or the precompiled character map, e.g. nmt_nfkc;
 *   dummy prefix, `▁` for spaces, extra whitespace removal), byte fallback to
 *   `<0xNN>` pieces, user-defined pieces matched whole. Control pieces
 *   (`<s>`, `[INST]`) are the special tokens: plain text unless allowed (never
 *   an error, as in sentencepiece); `add_special_tokens` adds BOS. Decoding is
 *   sentencepiece's: `▁` becomes a space, the dummy-prefix space is dropped,
 *   control pieces vanish, byte pieces are reassembled (U+FFFD for each byte of
 *   an invalid sequence). WORD and CHAR models are #LLMKIT_ERROR_UNSUPPORTED.
 * - A GGUF file (magic `GGUF`): the tokenizer in its `tokenizer.ggml.*`
 *   metadata: `llama` (SentencePiece BPE by scores, as above), `gpt2`
 *   (byte-level BPE by merges, pre-tokenized by the regex family that
 *   `tokenizer.ggml.pre` names: default, gpt-2, mpt, falcon, starcoder,
 *   refact, command-r, deepseek-llm, deepseek-coder, deepseek-v3, llama3 /
 *   llama-bpe / dbrx, qwen2, ...) or `bert` (WordPiece with BERT's
 *   normalization); `add_special_tokens` adds what add_bos_token /
 *   add_eos_token say (BERT: [CLS] ... [SEP]).
 *
 * Tokens of a tokenizer.json are the strings of its vocabulary (e.g. `Ġthe`
 * for GPT-2), which llmkit_tokenizer_token_to_id() and
 * llmkit_tokenizer_id_to_token() use; llmkit_tokenizer_decode() runs the
 * file's decoder (without one, tokens joined by spaces), special tokens included.
 * @param[out] out Receives the tokenizer; free it with llmkit_tokenizer_free().
 * @param path Path of the file (NUL-terminated).
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_IO when the file
 *         cannot be read; #LLMKIT_ERROR_FORMAT for a malformed file (for JSON
 *         the message names the JSON path, e.g. `at /model/merges/3: ...`), a
 *         token id outside [0, 2^24), or content of no known format;
 *         #LLMKIT_ERROR_UNSUPPORTED naming a component type llmkit lacks;
 *         #LLMKIT_ERROR_INVALID_ARGUMENT for a rank file without a preset, a
 *         preset given for another format, or an unknown preset;
 *         #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_from_file(llmkit_tokenizer **out, const char *path,
                                                    const llmkit_tokenizer_load_options *options);

/**
 * @brief Loads a tokenizer from the bytes of a tokenizer file held in memory.
 *
 * The same formats, detection and options as llmkit_tokenizer_from_file(),
 * for a vocabulary embedded in a program, fetched over a network or unpickled.
 * Nothing of `data` is kept: it may be freed as soon as the call returns. A
 * GGUF buffer is parsed in place (a whole model file is better opened with
 * llmkit_tokenizer_from_file(), which maps it).
 * @param[out] out Receives the tokenizer; free it with llmkit_tokenizer_free().
 * @param data The file's bytes (may be NULL when size is 0).
 * @param size Bytes of data.
 * @param options NULL for defaults.
 * @return As llmkit_tokenizer_from_file(), without #LLMKIT_ERROR_IO; messages
 *         call the buffer `(memory)`. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_from_memory(llmkit_tokenizer **out, const void *data, size_t size,
                                                      const llmkit_tokenizer_load_options *options);

/**
 * @brief A tiktoken encoding given in full: what `tiktoken.Encoding(name,
 *        pat_str=, mergeable_ranks=, special_tokens=)` takes besides the ranks.
 *
 * For rank files whose pattern or special tokens are not one of the presets of
 * llmkit_tokenizer_from_tiktoken(): a model's own regex, or a preset's ranks
 * extended with chat tokens (tiktoken's README example: cl100k_base plus
 * `<|im_start|>` 100264 and `<|im_end|>` 100265).
 */
typedef struct llmkit_tiktoken_encoding {
    uint32_t struct_size;               /**< sizeof(llmkit_tiktoken_encoding). */
    const char *pattern;                /**< The pre-tokenizer regex (tiktoken's pat_str) with the meaning it has in tiktoken's regex engine (Rust's regex crate: \\w, \\b, POSIX classes, script names, class set operations, `$`; see the Tokenization page), run by PCRE2; or a preset name whose regex to use ("cl100k_base", "o200k_base", ...). Required. */
    const char *const *special_tokens;  /**< Special tokens' texts (NUL-terminated UTF-8); may be NULL when n_special_tokens is 0. */
    const int32_t *special_token_ids;   /**< Their ids, each >= 0 and not a rank of the file; may be NULL when n_special_tokens is 0. */
    size_t n_special_tokens;            /**< Entries in special_tokens and special_token_ids. */
} llmkit_tiktoken_encoding;

/** @brief An empty #llmkit_tiktoken_encoding (pattern must still be set). */
#define LLMKIT_TIKTOKEN_ENCODING_INIT {sizeof(llmkit_tiktoken_encoding), NULL, NULL, NULL, 0}

/**
 * @brief Makes a byte-level BPE tokenizer from a rank file's bytes and an
 *        encoding given in full (tiktoken's `Encoding` constructor).
 *
 * Encodes exactly as tiktoken does with the same pattern, ranks and special
 * tokens. A preset's pattern, as llmkit or as tiktoken spells it, gets the
 * preset's hand-written scanner; any other runs through PCRE2 (JIT). Nothing of `ranks` or
 * `encoding` is kept.
 * @param[out] out Receives the tokenizer; free it with llmkit_tokenizer_free().
 * @param ranks The text of a `.tiktoken` rank file (`base64(token) rank` lines).
 * @param size Bytes of ranks.
 * @param encoding The pattern and special tokens (required).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER (out, ranks, encoding, its
 *         pattern, or its arrays when n_special_tokens > 0);
 *         #LLMKIT_ERROR_INVALID_ARGUMENT for a bad struct_size, an empty or
 *         invalid pattern (PCRE2's message), an empty, negative or repeated
 *         special token; #LLMKIT_ERROR_FORMAT for malformed ranks (as
 *         llmkit_tokenizer_from_tiktoken(), the buffer called `(memory)`) or a
 *         special id that is a rank; #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_from_ranks(llmkit_tokenizer **out, const void *ranks, size_t size,
                                                     const llmkit_tiktoken_encoding *encoding);

/**
 * @brief Frees a tokenizer. No other call may be using it.
 * @param tokenizer The tokenizer; NULL is ignored.
 */
LLMKIT_API void llmkit_tokenizer_free(llmkit_tokenizer *tokenizer);

/**
 * @brief The number of token ids: the largest id, special tokens included, plus one.
 *
 * Where a rank file has gaps, some ids below it name no token;
 * llmkit_tokenizer_id_to_token() tells.
 * @param tokenizer The tokenizer. @param[out] out Receives the size.
 * @return #LLMKIT_OK or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_vocab_size(const llmkit_tokenizer *tokenizer, int32_t *out);

/** @brief Per-call options of llmkit_tokenizer_encode(): how special tokens in the text are treated. */
typedef struct llmkit_encode_options {
    uint32_t struct_size;                 /**< sizeof(llmkit_encode_options). */
    int32_t allow_all_special;            /**< Nonzero: every special token in the text becomes its id (tiktoken's allowed_special="all"). Default 0. */
    const char *const *allowed_special;   /**< Special tokens (NUL-terminated texts) that become their id where they occur; may be NULL when n_allowed_special is 0. */
    size_t n_allowed_special;             /**< Number of entries in allowed_special. */
    int32_t special_as_text;              /**< Nonzero: special tokens that are not allowed are encoded as ordinary text (tiktoken's disallowed_special=()); 0 (default): finding one is an error. */
    int32_t n_threads;                    /**< Worker threads of llmkit_tokenizer_encode_batch(); 0 (default) = llmkit_get_num_threads(). llmkit_tokenizer_encode() runs on the calling thread and ignores it. */
    int32_t add_special_tokens;           /**< Nonzero: add the special tokens the tokenizer's post-processor puts around a text (e.g. BERT's [CLS] ... [SEP], Llama's BOS); tiktoken encodings have none. Default 0. */
} llmkit_encode_options;

/** @brief Default #llmkit_encode_options: no special token allowed, finding one is an error, default thread count. */
#define LLMKIT_ENCODE_OPTIONS_INIT {sizeof(llmkit_encode_options), 0, NULL, 0, 0, 0, 0}

/**
 * @brief Encodes UTF-8 text into token ids.
 *
 * No BOS or EOS is added unless `options->add_special_tokens` asks for them.
 * For tiktoken encodings the ids never outnumber the bytes of the text; other
 * formats can give more ids than bytes (a prepended U+2581, normalizers that
 * expand characters, added special tokens), so ask for the count (`ids` NULL)
 * or retry with the `n_ids` a #LLMKIT_ERROR_BUFFER_TOO_SMALL reports.
 * @param tokenizer The tokenizer.
 * @param text The text, `len` bytes of valid UTF-8 (need not be NUL-terminated;
 *        may be NULL when len is 0).
 * @param len Bytes of text.
 * @param ids Caller's buffer for the ids, or NULL to ask for the count.
 * @param capacity Ids that fit in `ids`.
 * @param[out] n_ids Receives the number of ids (also when the buffer is too small).
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `n_ids` set;
 *         #LLMKIT_ERROR_INVALID_ARGUMENT for invalid UTF-8 (the message gives
 *         the byte offset), a special token in the text that is not allowed (the
 *         message names it), or an `allowed_special` entry that is not a special
 *         token; #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_encode(const llmkit_tokenizer *tokenizer, const char *text, size_t len,
                                                 int32_t *ids, size_t capacity, size_t *n_ids,
                                                 const llmkit_encode_options *options);

/**
 * @brief Encodes many UTF-8 texts at once, spread over worker threads.
 *
 * Gives for each text exactly what llmkit_tokenizer_encode() gives, with the
 * same options (special-token rules apply to every text); `options->n_threads`
 * sets how many threads share the texts (one text is never split). The ids of
 * all texts are written back to back: those of text `i` are
 * `ids[offsets[i]]` .. `ids[offsets[i + 1] - 1]`, and `offsets[n_texts]` is
 * the total. For tiktoken encodings ids never outnumber bytes, so a buffer of
 * the texts' total length in ids is always large enough; for other formats
 * ask for the count first or retry with `offsets[n_texts]`.
 * @param tokenizer The tokenizer.
 * @param texts `n_texts` pointers to UTF-8 texts (need not be NUL-terminated;
 *        an entry may be NULL when its length is 0). May be NULL when n_texts is 0.
 * @param lens `n_texts` lengths in bytes. May be NULL when n_texts is 0.
 * @param n_texts Number of texts.
 * @param ids Caller's buffer for the ids of all texts, or NULL to ask for the count.
 * @param capacity Ids that fit in `ids`.
 * @param[out] offsets Caller's array of `n_texts + 1` entries; receives where
 *        each text's ids start, then the total (also when `ids` is NULL or too small).
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `offsets` set;
 *         #LLMKIT_ERROR_INVALID_ARGUMENT as for llmkit_tokenizer_encode(), the
 *         message beginning with `texts[i]: ` for the first failing text;
 *         #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_MEMORY. On failure the
 *         contents of `ids` and `offsets` are unspecified. Thread-safe; calls
 *         from several threads at once take turns on llmkit's worker pool.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_encode_batch(const llmkit_tokenizer *tokenizer, const char *const *texts,
                                                       const size_t *lens, size_t n_texts, int32_t *ids,
                                                       size_t capacity, size_t *offsets,
                                                       const llmkit_encode_options *options);

/**
 * @brief Decodes token ids into bytes.
 *
 * For a Hugging Face tokenizer.json the output is what its decoder makes of
 * the tokens (special tokens included; without a decoder, the tokens joined
 * by spaces), always valid UTF-8. For the other formats it is the tokens'
 * bytes back to back; it is not NUL-terminated, and
 * a cut inside a multi-byte character (e.g. one id of a longer sequence) gives
 * bytes that are not valid UTF-8 on their own.
 * @param tokenizer The tokenizer.
 * @param ids Token ids (may be NULL when n is 0).
 * @param n Number of ids.
 * @param buf Caller's buffer, or NULL to ask for the size.
 * @param capacity Bytes available in buf.
 * @param[out] needed Receives the number of bytes (may be NULL).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `needed` set;
 *         #LLMKIT_ERROR_OUT_OF_RANGE for an id that names no token;
 *         #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_decode(const llmkit_tokenizer *tokenizer, const int32_t *ids, size_t n,
                                                 char *buf, size_t capacity, size_t *needed);

/**
 * @brief Looks up the id of a token from its exact bytes (regular or special).
 * @param tokenizer The tokenizer.
 * @param token The token's bytes (need not be NUL-terminated).
 * @param len Bytes of token.
 * @param[out] id Receives the id, or -1 when no token has these bytes.
 * @return #LLMKIT_OK (also when not found) or #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_token_to_id(const llmkit_tokenizer *tokenizer, const char *token, size_t len,
                                                      int32_t *id);

/**
 * @brief Writes the bytes of one token.
 * @param tokenizer The tokenizer.
 * @param id The token id.
 * @param buf Caller's buffer, or NULL to ask for the size; not NUL-terminated.
 * @param capacity Bytes available in buf.
 * @param[out] needed Receives the token's length in bytes (may be NULL).
 * @param[out] is_special Receives 1 for a special token, 0 otherwise (may be NULL).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_OUT_OF_RANGE when no token has this id;
 *         #LLMKIT_ERROR_BUFFER_TOO_SMALL with `needed` set;
 *         #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_id_to_token(const llmkit_tokenizer *tokenizer, int32_t id, char *buf,
                                                      size_t capacity, size_t *needed, int32_t *is_special);

/* --- Streaming decode (toktrain) --- */

/**
 * @brief Opaque handle to a streaming decoder: ids in, complete UTF-8 text out.
 *
 * A token of byte-level BPE may hold part of a character (an emoji is often
 * two or three tokens), so decoding ids one at a time, as a sampler produces
 * them, would print broken characters. The decoder keeps back the 1..3 bytes
 * of a character not yet complete and hands out only whole characters. Bytes
 * that can never become valid UTF-8 are replaced by U+FFFD (EF BF BD), one per
 * maximal invalid subpart, exactly as Python's `bytes.decode("utf-8",
 * "replace")` and hence tiktoken's `decode` do; an incomplete character left
 * at llmkit_tokenizer_decoder_flush() is one U+FFFD. So for any way of
 * splitting the ids into feeds, the outputs of all feeds and the flush joined
 * equal that one-shot decode, and each output is valid UTF-8 on its own.
 */
typedef struct llmkit_tokenizer_decoder llmkit_tokenizer_decoder;

/**
 * @brief Makes a streaming decoder for one stream of ids.
 * @param[out] out Receives the decoder; free it with llmkit_tokenizer_decoder_free().
 * @param tokenizer The tokenizer; it must outlive the decoder (it is only read,
 *        so any number of decoders and threads may share it).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_MEMORY.
 *         Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_decoder_new(llmkit_tokenizer_decoder **out,
                                                      const llmkit_tokenizer *tokenizer);

/**
 * @brief Feeds ids; writes the text they complete.
 *
 * The output is at most `3 * (3 + bytes of the ids' tokens)` bytes. Nothing
 * is consumed unless the call succeeds: a NULL `buf` asks for the size, and
 * with #LLMKIT_ERROR_BUFFER_TOO_SMALL or any other error the decoder is as it
 * was, so the same ids can be fed again.
 * @param decoder The decoder.
 * @param ids Token ids (may be NULL when n is 0).
 * @param n Number of ids.
 * @param buf Caller's buffer for the UTF-8 text (not NUL-terminated), or NULL
 *        to ask for the size.
 * @param capacity Bytes available in buf.
 * @param[out] needed Receives the number of bytes of text (may be NULL).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `needed` set;
 *         #LLMKIT_ERROR_OUT_OF_RANGE for an id that names no token;
 *         #LLMKIT_ERROR_NULL_POINTER. One thread at a time per decoder.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_decoder_feed(llmkit_tokenizer_decoder *decoder, const int32_t *ids,
                                                       size_t n, char *buf, size_t capacity, size_t *needed);

/**
 * @brief Ends the stream: writes the held-back bytes (an incomplete character
 *        becomes one U+FFFD, so 0 or 3 bytes) and resets the decoder for a new stream.
 *
 * As with feed, a NULL `buf` asks for the size and a failed call changes nothing.
 * @param decoder The decoder.
 * @param buf Caller's buffer, or NULL to ask for the size.
 * @param capacity Bytes available in buf.
 * @param[out] needed Receives the number of bytes (may be NULL).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `needed` set;
 *         #LLMKIT_ERROR_NULL_POINTER. One thread at a time per decoder.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_decoder_flush(llmkit_tokenizer_decoder *decoder, char *buf,
                                                        size_t capacity, size_t *needed);

/**
 * @brief Frees a streaming decoder (held-back bytes are dropped).
 * @param decoder The decoder; NULL is ignored.
 */
LLMKIT_API void llmkit_tokenizer_decoder_free(llmkit_tokenizer_decoder *decoder);

/* --- end streaming decode --- */

/* --- Offsets (toktrain) --- */

/**
 * @brief Encodes UTF-8 text and gives each token its byte span in the text.
 *
 * The ids are those of llmkit_tokenizer_encode() with the same options. Token
 * `i` covers bytes `[offsets[2*i], offsets[2*i+1])` of `text`.
 *
 * For byte-level BPE the spans tile the text: each starts where the previous
 * one ends, and the bytes of a span are exactly the token's bytes (a special
 * token's span is its text). A token that holds only part of a multi-byte
 * character (common for emoji and CJK) covers just the bytes it holds, so its
 * span starts or ends inside that character.
 *
 * For SentencePiece (`.model` files and GGUF files with a SentencePiece
 * vocabulary) the spans are sentencepiece's own `begin`/`end`: a piece covers
 * the input its normalized text came from (a leading "▁" covers the space it
 * replaced; the dummy-prefix "▁" adds nothing), spans never overlap but may
 * skip input the normalizer dropped (extra whitespace); the byte-fallback
 * pieces of one character are empty spans at its start except the last,
 * which covers the whole character; BOS is the empty span at 0, EOS the empty
 * span at `len`, an allowed special token its own text.
 *
 * For Hugging Face tokenizer.json files the spans are those of the
 * `tokenizers` package (`Encoding.offsets`, which Python gives in characters),
 * in bytes: each stage keeps, for every byte of its text, the input range it
 * came from, and a token spans its first byte's start to its last byte's end.
 * So a lowercased or accent-stripped token covers its original characters;
 * text the normalizer drops belongs to no token; a prepended "▁" covers the
 * first character; tokens holding parts of one character (byte-level BPE,
 * byte fallback, an NFKC expansion) each span that whole character, so spans
 * may overlap; an added token covers its match with the whitespace lstrip /
 * rstrip took; post-processor tokens (`[CLS]`, `<s>`) are empty spans at 0; and
 * ByteLevel's or RobertaProcessing's trim_offsets moves a span past the spaces
 * at the ends of its token, counted in characters (as the Python package does).
 *
 * Kinds without offsets fail with #LLMKIT_ERROR_UNSUPPORTED naming the kind.
 * @param tokenizer The tokenizer.
 * @param text The text, `len` bytes of valid UTF-8 (may be NULL when len is 0).
 * @param len Bytes of text.
 * @param ids Caller's buffer for the ids, or NULL to ask for the count.
 * @param offsets Caller's buffer of `2 * capacity` byte offsets (start, end per
 *        token); may be NULL only when `ids` is NULL.
 * @param capacity Tokens that fit in `ids` (and pairs in `offsets`); `len` is always enough for
 *        byte-level BPE; SentencePiece and tokenizer.json may need more (special tokens, byte
 *        fallback after a normalizer that expands text): retry with `n_ids`.
 * @param[out] n_ids Receives the number of ids (also when the buffer is too small).
 * @param options NULL for defaults.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `n_ids` set;
 *         #LLMKIT_ERROR_UNSUPPORTED for a tokenizer kind that cannot give
 *         offsets yet (the message names it); the errors of llmkit_tokenizer_encode().
 *         Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_encode_with_offsets(const llmkit_tokenizer *tokenizer, const char *text,
                                                              size_t len, int32_t *ids, size_t *offsets,
                                                              size_t capacity, size_t *n_ids,
                                                              const llmkit_encode_options *options);

/**
 * @brief Encodes a pair of texts into one sequence: a sentence pair for a
 * BERT-style model, a reranker's query and document.
 *
 * As Hugging Face `tokenizers`' `encode(a, b)`: each text is encoded as by
 * llmkit_tokenizer_encode() with `options` (no special tokens yet), the ids of
 * `a` typed 0 and those of `b` typed 1; with `options->add_special_tokens` a
 * tokenizer.json's post-processor then lays them out with its special tokens
 * and types: TemplateProcessing's `pair` template (its `type_id`s), BERT's
 * `[CLS] a [SEP] b [SEP]` (types 0 ... 0 1 ... 1), RoBERTa's
 * `<s> a </s></s> b </s>` (every type 0, with or without special tokens).
 * Without a post-processor, and for the other kinds, the two encodings follow
 * each other; with add_special_tokens each text gets its own (a
 * SentencePiece model's BOS/EOS: `<s> a <s> b`, as transformers' Llama
 * tokenizers do), typed as its text. A template without a `pair` entry
 * cannot add special tokens to a pair (#LLMKIT_ERROR_UNSUPPORTED).
 *
 * The three per-id outputs are optional: `type_ids` (BERT's token_type_ids),
 * `sequence_ids` (0 or 1: the text an id came from; -1 for an id the
 * post-processor or add_special_tokens added, as `tokenizers`' `sequence_ids`
 * gives None) and `offsets` (the byte span `[offsets[2*i], offsets[2*i+1])` of
 * id `i` in ITS OWN text, as llmkit_tokenizer_encode_with_offsets() gives it;
 * added ids get empty spans). Asking for offsets fails with
 * #LLMKIT_ERROR_UNSUPPORTED where llmkit_tokenizer_encode_with_offsets() does.
 * @param tokenizer The tokenizer.
 * @param text_a The first text, `len_a` bytes of valid UTF-8 (may be NULL when len_a is 0).
 * @param len_a Bytes of text_a.
 * @param text_b The second text, `len_b` bytes of valid UTF-8 (may be NULL when len_b is 0).
 * @param len_b Bytes of text_b.
 * @param ids Caller's buffer for the ids, or NULL to ask for the count.
 * @param type_ids NULL, or a buffer of `capacity` type ids.
 * @param sequence_ids NULL, or a buffer of `capacity` sequence ids.
 * @param offsets NULL, or a buffer of `2 * capacity` byte offsets.
 * @param capacity Ids that fit in each buffer.
 * @param[out] n_ids Receives the number of ids (also when the buffers are too small).
 * @param options NULL for defaults (no special tokens added).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_BUFFER_TOO_SMALL with `n_ids` set;
 *         #LLMKIT_ERROR_UNSUPPORTED as above; the errors of
 *         llmkit_tokenizer_encode(), the message naming the text (`text_a: `
 *         or `text_b: ` before the problem). Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_encode_pair(const llmkit_tokenizer *tokenizer, const char *text_a,
                                                      size_t len_a, const char *text_b, size_t len_b, int32_t *ids,
                                                      int32_t *type_ids, int32_t *sequence_ids, size_t *offsets,
                                                      size_t capacity, size_t *n_ids,
                                                      const llmkit_encode_options *options);

/* --- end offsets --- */

/* --- BPE training and saving (toktrain) --- */

/**
 * @brief Progress callback of llmkit_bpe_train(): called after each merge.
 * @param user_data The options' user_data.
 * @param done Merges done so far (new tokens in the vocabulary).
 * @param total Merges wanted (vocab_size - 256).
 * @return 0 to go on; nonzero cancels the training (#LLMKIT_ERROR_CANCELLED).
 */
typedef int (*llmkit_bpe_progress_fn)(void *user_data, size_t done, size_t total);

/** @brief Options of llmkit_bpe_train(). */
typedef struct llmkit_bpe_train_options {
    uint32_t struct_size;                /**< sizeof(llmkit_bpe_train_options). */
    size_t vocab_size;                   /**< Tokens to learn, the 256 single bytes included (>= 256); special tokens come on top. Required. */
    const char *pattern;                 /**< Pre-tokenizer regex, read as tiktoken reads it (see #llmkit_tiktoken_encoding), or a tiktoken preset name whose regex to use ("cl100k_base", "o200k_base", "r50k_base", "llama3", "qwen2"); NULL = "cl100k_base". */
    const char *const *special_tokens;   /**< Special tokens (NUL-terminated), given ids vocab_size, vocab_size + 1, ... in order; may be NULL when n_special_tokens is 0. */
    size_t n_special_tokens;             /**< Entries in special_tokens. */
    llmkit_bpe_progress_fn progress;     /**< Called after each merge; NULL for none. */
    int32_t n_threads;                   /**< Threads that split a list of texts; 0 (default) = llmkit_get_num_threads(). */
    void *user_data;                     /**< Passed to progress. */
} llmkit_bpe_train_options;

/** @brief Default #llmkit_bpe_train_options (vocab_size must still be set). */
#define LLMKIT_BPE_TRAIN_OPTIONS_INIT {sizeof(llmkit_bpe_train_options), 0, NULL, NULL, 0, NULL, 0, NULL}

/**
 * @brief Trains a byte-level BPE tokenizer on a corpus, with minbpe's semantics.
 *
 * Each text is split into chunks by the pattern (a chunk never spans two
 * texts; special tokens in the text are ordinary text here); every chunk
 * starts as its bytes (ids 0..255 are the byte values), and the most frequent
 * adjacent pair, counted over all chunks, is merged into a new token (id 256,
 * 257, ...) until vocab_size tokens exist. Ties go to the pair whose first
 * occurrence in the corpus comes first, which is the pair Python's dict order
 * makes minbpe pick, so the merges equal minbpe's RegexTokenizer.train. Where
 * minbpe would give two ids the same bytes, the first id is kept and training
 * goes on until vocab_size distinct tokens exist; when no pair is left it
 * stops early (the vocabulary is then smaller). Counting is incremental: a
 * merge updates only the words that hold the pair.
 * @param[out] out Receives the tokenizer (encode it like any other; free with
 *        llmkit_tokenizer_free()).
 * @param texts `n_texts` UTF-8 texts (need not be NUL-terminated; an entry may be
 *        NULL when its length is 0). May be NULL when n_texts is 0.
 * @param lens `n_texts` lengths in bytes. May be NULL when n_texts is 0.
 * @param n_texts Number of texts.
 * @param options Required (for vocab_size).
 * @return #LLMKIT_OK; #LLMKIT_ERROR_INVALID_ARGUMENT for vocab_size < 256,
 *         a pattern that does not compile, invalid UTF-8 (the message names the
 *         text and byte), an empty or repeated special token, n_threads < 0;
 *         #LLMKIT_ERROR_CANCELLED when the progress callback asked to stop;
 *         #LLMKIT_ERROR_NULL_POINTER; #LLMKIT_ERROR_OUT_OF_MEMORY. Thread-safe
 *         (the callback runs on the calling thread).
 */
LLMKIT_API llmkit_status llmkit_bpe_train(llmkit_tokenizer **out, const char *const *texts, const size_t *lens,
                                          size_t n_texts, const llmkit_bpe_train_options *options);

/**
 * @brief Saves a byte-level BPE tokenizer's ranks as a tiktoken `.tiktoken` file.
 *
 * One `base64(token) rank` line per token, as tiktoken's own files; the
 * special tokens and the pattern are not stored (as in tiktoken), so load it
 * back with llmkit_tokenizer_from_tiktoken() and a preset of the same pattern.
 * @param tokenizer A byte-level BPE tokenizer (trained or loaded from a rank file).
 * @param path Where to write (NUL-terminated); an existing file is replaced.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_IO; #LLMKIT_ERROR_UNSUPPORTED for another
 *         tokenizer kind; #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_save_tiktoken(const llmkit_tokenizer *tokenizer, const char *path);

/**
 * @brief Saves a byte-level BPE tokenizer as a Hugging Face `tokenizer.json`.
 *
 * The file has a BPE model (GPT-2's byte-to-character alphabet, merges
 * derived from the ranks, `ignore_merges` as tiktoken looks whole pieces up
 * first), a Split pre-tokenizer with the tokenizer's regex followed by
 * ByteLevel, a ByteLevel decoder, and the special tokens as added tokens; HF
 * tokenizers loads it (`Tokenizer.from_file`) and gives the same ids.
 * @param tokenizer A byte-level BPE tokenizer.
 * @param path Where to write; an existing file is replaced.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_IO; #LLMKIT_ERROR_UNSUPPORTED for another
 *         tokenizer kind; #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_save_tokenizer_json(const llmkit_tokenizer *tokenizer, const char *path);

/**
 * @brief Writes a byte-level BPE tokenizer's ranks as the text of a `.tiktoken`
 *        file into a caller's buffer (what llmkit_tokenizer_save_tiktoken() writes).
 *
 * Together with llmkit_tokenizer_pattern() and the special tokens
 * (llmkit_tokenizer_id_to_token()'s is_special), this is all
 * llmkit_tokenizer_from_ranks() needs to rebuild the tokenizer: a trained
 * tokenizer can be stored or sent without a file.
 * @param tokenizer A byte-level BPE tokenizer (trained, a tiktoken rank file, from_ranks).
 * @param buf Caller's buffer, or NULL to ask for the size; not NUL-terminated.
 * @param capacity Bytes available in buf.
 * @param[out] needed Receives the text's length in bytes (may be NULL).
 * @return #LLMKIT_OK (also for a NULL buf, with `needed` set);
 *         #LLMKIT_ERROR_BUFFER_TOO_SMALL with `needed` set;
 *         #LLMKIT_ERROR_UNSUPPORTED for another
 *         tokenizer kind; #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_to_tiktoken(const llmkit_tokenizer *tokenizer, char *buf, size_t capacity,
                                                      size_t *needed);

/**
 * @brief The pre-tokenizer regex of a byte-level BPE tokenizer (tiktoken's pat_str).
 *
 * As the tokenizer runs it: `\s` and `\S` spelled out as Unicode White_Space
 * (what tiktoken's regex engine means by them), so passing it back to
 * llmkit_tokenizer_from_ranks() gives the same tokenizer.
 * @param tokenizer A byte-level BPE tokenizer.
 * @param[out] pattern Receives a NUL-terminated string owned by the tokenizer,
 *             valid until it is freed.
 * @return #LLMKIT_OK; #LLMKIT_ERROR_UNSUPPORTED for another tokenizer kind;
 *         #LLMKIT_ERROR_NULL_POINTER. Thread-safe.
 */
LLMKIT_API llmkit_status llmkit_tokenizer_pattern(const llmkit_tokenizer *tokenizer, const char **pattern);

/* --- end BPE training --- */

/** @} */
/* END TOKENIZER SECTION */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LLMKIT_H */
