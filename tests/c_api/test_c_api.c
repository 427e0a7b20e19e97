/* The C ABI from plain C99, compiled with -std=c99 -pedantic -Werror: the header
 * must be valid C, and every call path a C user takes must work. Prints
 * "N passed, M failed" and exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llmkit/llmkit.h"

static int passed = 0, failed = 0;

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (cond) {                                                            \
            ++passed;                                                          \
        } else {                                                               \
            ++failed;                                                          \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

static llmkit_tensor host_tensor(void *data, llmkit_dtype dtype, int32_t ndim, const int64_t *shape) {
    llmkit_tensor t;
    llmkit_device host = LLMKIT_DEVICE_HOST;
    t.data = data;
    t.device = host;
    t.ndim = ndim;
    t.dtype = dtype;
    t.shape = shape;
    t.strides = NULL;
    t.byte_offset = 0;
    return t;
}

static llmkit_tensor f32_2d(float *data, const int64_t *shape) {
    llmkit_dtype f32 = LLMKIT_DTYPE_F32;
    return host_tensor(data, f32, 2, shape);
}

static llmkit_tensor i32_1d(int32_t *data, const int64_t *shape) {
    llmkit_dtype i32 = LLMKIT_DTYPE_I32;
    return host_tensor(data, i32, 1, shape);
}

int main(void) {
    float logits[2 * 5] = {0.1f, 3.0f, -1.0f, 2.5f, 0.0f, /* row 1 */ 4.0f, 0.0f, 1.0f, -2.0f, 3.9f};
    int64_t lshape[2] = {2, 5}, tshape[1] = {2};
    int32_t tokens[2] = {-1, -1};
    llmkit_tensor lt = f32_2d(logits, lshape), tt = i32_1d(tokens, tshape);
    llmkit_sampler_chain *chain = NULL;
    llmkit_sampler_chain_options copts = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
    llmkit_sample_params params = LLMKIT_SAMPLE_PARAMS_INIT;
    llmkit_sample_options sopts = LLMKIT_SAMPLE_OPTIONS_INIT;
    char text[128];
    size_t needed = 0, len = 0;
    int32_t count = -1;

    /* Versions. */
    EXPECT(strcmp(llmkit_version(), LLMKIT_VERSION_STRING) == 0);
    EXPECT(llmkit_version_number() == LLMKIT_VERSION_NUMBER);
    EXPECT(strcmp(llmkit_status_string(LLMKIT_ERROR_SHAPE), "LLMKIT_ERROR_SHAPE") == 0);
    EXPECT(strcmp(llmkit_status_string((llmkit_status)-999), "LLMKIT_ERROR_UNKNOWN") == 0);
    EXPECT(strstr(llmkit_build_info(), "cuda=") != NULL);
    EXPECT(llmkit_backend_compiled(LLMKIT_DEVICE_CPU) == 1);
    EXPECT(llmkit_device_count(&count, LLMKIT_DEVICE_CPU) == LLMKIT_OK && count == 1);
    EXPECT(llmkit_device_count(NULL, LLMKIT_DEVICE_CPU) == LLMKIT_ERROR_NULL_POINTER);
    EXPECT(llmkit_set_num_threads(-1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    EXPECT(llmkit_set_num_threads(2) == LLMKIT_OK && llmkit_get_num_threads() == 2);
    EXPECT(llmkit_set_num_threads(0) == LLMKIT_OK && llmkit_get_num_threads() >= 1);

    /* A chain: greedy picks the argmax of each row. */
    copts.seed = 42;
    EXPECT(llmkit_sampler_chain_create(&chain, &copts) == LLMKIT_OK && chain != NULL);
    EXPECT(llmkit_sampler_chain_add_top_k(chain, 3) == LLMKIT_OK);
    EXPECT(llmkit_sampler_chain_add_greedy(chain) == LLMKIT_OK);
    EXPECT(llmkit_sampler_chain_length(chain, &len) == LLMKIT_OK && len == 2);
    EXPECT(llmkit_sampler_chain_describe(chain, NULL, 0, &needed) == LLMKIT_OK);
    EXPECT(needed == strlen("top_k(3) -> greedy") + 1);
    EXPECT(llmkit_sampler_chain_describe(chain, text, sizeof text, &needed) == LLMKIT_OK);
    EXPECT(strcmp(text, "top_k(3) -> greedy") == 0);
    EXPECT(llmkit_sampler_chain_describe(chain, text, 4, &needed) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    EXPECT(llmkit_sampler_chain_sample(chain, &lt, &tt, &sopts) == LLMKIT_OK);
    EXPECT(tokens[0] == 1 && tokens[1] == 0);

    /* Errors carry a status and a message. */
    llmkit_clear_error();
    EXPECT(strcmp(llmkit_last_error_message(), "") == 0);
    EXPECT(llmkit_sampler_chain_add_top_p(chain, 0.5f, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    EXPECT(strstr(llmkit_last_error_message(), "greedy") != NULL); /* nothing after a picker */
    logits[3] = NAN;
    EXPECT(llmkit_sampler_chain_sample(chain, &lt, &tt, NULL) == LLMKIT_ERROR_NON_FINITE);
    EXPECT(strstr(llmkit_last_error_message(), "row 0, token 3") != NULL);
    logits[3] = 2.5f;
    EXPECT(llmkit_sampler_chain_sample(chain, NULL, &tt, NULL) == LLMKIT_ERROR_NULL_POINTER);
    EXPECT(llmkit_sampler_chain_create(NULL, NULL) == LLMKIT_ERROR_NULL_POINTER);
    llmkit_sampler_chain_free(chain);
    llmkit_sampler_chain_free(NULL);

    /* One-call sampling: temperature 0 is greedy; a seed is reproducible. */
    params.temperature = 0.0f;
    EXPECT(llmkit_sample(&lt, &tt, &params) == LLMKIT_OK && tokens[0] == 1 && tokens[1] == 0);
    params.temperature = 1.0f;
    params.top_p = 0.9f;
    params.seed = 7;
    EXPECT(llmkit_sample(&lt, &tt, &params) == LLMKIT_OK);
    {
        int32_t again[2];
        llmkit_tensor at = i32_1d(again, tshape);
        EXPECT(llmkit_sample(&lt, &at, &params) == LLMKIT_OK);
        EXPECT(again[0] == tokens[0] && again[1] == tokens[1]);
    }
    params.top_p = 0.0f;
    EXPECT(llmkit_sample(&lt, &tt, &params) == LLMKIT_ERROR_INVALID_ARGUMENT);
    params.struct_size = 1;
    EXPECT(llmkit_sample(&lt, &tt, &params) == LLMKIT_ERROR_INVALID_ARGUMENT);

    /* Tokenizer: errors name the problem; with the data, a round trip. */
    {
        llmkit_tokenizer *tok = NULL;
        EXPECT(llmkit_tokenizer_from_tiktoken(&tok, "/nonexistent/x.tiktoken", "cl100k_base") == LLMKIT_ERROR_IO);
        EXPECT(tok == NULL && strstr(llmkit_last_error_message(), "/nonexistent/x.tiktoken") != NULL);
#ifdef LLMKIT_TEST_DATA_DIR
        EXPECT(llmkit_tokenizer_from_tiktoken(&tok, LLMKIT_TEST_DATA_DIR "/tiktoken/cl100k_base.tiktoken",
                                              "no_such_preset") == LLMKIT_ERROR_INVALID_ARGUMENT);
        if (llmkit_tokenizer_from_tiktoken(&tok, LLMKIT_TEST_DATA_DIR "/tiktoken/cl100k_base.tiktoken",
                                           "cl100k_base") == LLMKIT_OK) {
            const char *text = "Hello, world! llmkit speaks C99.";
            int32_t ids[64];
            char back[128];
            size_t n_ids = 0, needed = 0;
            llmkit_encode_options eo = LLMKIT_ENCODE_OPTIONS_INIT;
            EXPECT(llmkit_tokenizer_encode(tok, text, strlen(text), NULL, 0, &n_ids, &eo) == LLMKIT_OK && n_ids > 0);
            EXPECT(llmkit_tokenizer_encode(tok, text, strlen(text), ids, 64, &n_ids, &eo) == LLMKIT_OK);
            EXPECT(ids[0] == 9906); /* "Hello" in cl100k_base */
            EXPECT(llmkit_tokenizer_decode(tok, ids, n_ids, back, sizeof back, &needed) == LLMKIT_OK);
            EXPECT(needed == strlen(text) && memcmp(back, text, needed) == 0);
            llmkit_tokenizer_free(tok);
        } else {
            EXPECT(!"cl100k_base did not load");
        }
#endif
        llmkit_tokenizer_free(NULL);
    }

    printf("c_api: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
