/* Sampling through the C ABI: one-call sampling, a sampler chain with
 * per-sequence state, processed logits, and an error. Plain C99.
 * Built and run by the snippet_c test; its output is checked against
 * sampling_basic.expected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <llmkit/llmkit.h>

/* Every fallible call returns a status; on failure, report and clean up. */
#define CHECK(call)                                                                          \
    do {                                                                                     \
        llmkit_status status_ = (call);                                                      \
        if (status_ != LLMKIT_OK) {                                                          \
            fprintf(stderr, "%s: %s: %s\n", #call, llmkit_status_string(status_),            \
                    llmkit_last_error_message());                                            \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)

enum { B = 2, V = 8 };

static void print_row(const char *label, const float *row) {
    int v;
    printf("%s", label);
    for (v = 0; v < V; ++v) printf(" %6.2f", row[v]);
    printf("\n");
}

int main(void) {
    /* Two rows of logits over 8 tokens. -inf masks token 7 of row 0: it can never be picked. */
    float logits[B * V] = {1.0f, 3.0f, 0.5f, 2.5f, -1.0f, 0.0f, 2.0f, -INFINITY,
                           0.2f, 0.1f, 4.0f, 0.3f, 3.9f,  -2.0f, 1.0f, 0.0f};
    float processed[B * V];
    int32_t tokens[B], again[B];
    int64_t logits_shape[2] = {B, V}, tokens_shape[1] = {B};
    /* Tensors are DLPack-style descriptors of memory that stays the caller's. */
    llmkit_tensor logits_t = {logits, LLMKIT_DEVICE_HOST, 2, LLMKIT_DTYPE_F32, logits_shape, NULL, 0};
    llmkit_tensor processed_t = {processed, LLMKIT_DEVICE_HOST, 2, LLMKIT_DTYPE_F32, logits_shape, NULL, 0};
    llmkit_tensor tokens_t = {tokens, LLMKIT_DEVICE_HOST, 1, LLMKIT_DTYPE_I32, tokens_shape, NULL, 0};
    llmkit_tensor again_t = {again, LLMKIT_DEVICE_HOST, 1, LLMKIT_DTYPE_I32, tokens_shape, NULL, 0};
    llmkit_sample_params params = LLMKIT_SAMPLE_PARAMS_INIT;
    llmkit_sampler_chain_options chain_options = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
    llmkit_sampler_chain *chain = NULL;
    const int32_t prompt0[3] = {1, 1, 3}, prompt1[1] = {2};
    char *text = NULL;
    size_t needed = 0;
    llmkit_status status;
    int step, exit_code = 1;

    /* 1. One call, no object: temperature 0 is greedy, the argmax of each row. */
    params.temperature = 0.0f;
    CHECK(llmkit_sample(&logits_t, &tokens_t, &params));
    printf("greedy:          %d %d\n", (int)tokens[0], (int)tokens[1]);

    /* 2. Random draws are keyed by the seed: the same seed gives the same tokens. */
    params.temperature = 0.8f;
    params.top_k = 3;
    params.seed = 7;
    CHECK(llmkit_sample(&logits_t, &tokens_t, &params));
    CHECK(llmkit_sample(&logits_t, &again_t, &params));
    printf("seed 7:          %d %d (again: %d %d)\n", (int)tokens[0], (int)tokens[1], (int)again[0],
           (int)again[1]);

    /* 3. A chain: a presence penalty, top-k, temperature, then a random draw. */
    chain_options.seed = 42;
    CHECK(llmkit_sampler_chain_create(&chain, &chain_options));
    CHECK(llmkit_sampler_chain_add_penalties(chain, 64, 1.0f, 0.0f, 1.5f));
    CHECK(llmkit_sampler_chain_add_top_k(chain, 4));
    CHECK(llmkit_sampler_chain_add_temperature(chain, 0.7f));
    CHECK(llmkit_sampler_chain_add_dist(chain));

    /* Caller-owned buffers: a NULL buffer asks for the size. */
    CHECK(llmkit_sampler_chain_describe(chain, NULL, 0, &needed));
    text = malloc(needed);
    if (!text) goto done;
    CHECK(llmkit_sampler_chain_describe(chain, text, needed, &needed));
    printf("chain:           %s\n", text);

    /* Each row is a sequence with its own history; the prompts count for the penalty. */
    CHECK(llmkit_sampler_chain_accept(chain, 0, prompt0, 3));
    CHECK(llmkit_sampler_chain_accept(chain, 1, prompt1, 1));
    for (step = 0; step < 6; ++step) {
        CHECK(llmkit_sampler_chain_sample(chain, &logits_t, &tokens_t, NULL));
        printf("step %d:          %d %d\n", step, (int)tokens[0], (int)tokens[1]);
    }

    /* What the picker would draw from now: removed tokens are -inf. */
    CHECK(llmkit_sampler_chain_apply(chain, &logits_t, &processed_t, NULL));
    print_row("processed row 0:", processed);
    print_row("processed row 1:", processed + V);

    /* 4. Errors never abort: NaN is rejected with a status and a message for this thread. */
    logits[3] = NAN;
    status = llmkit_sample(&logits_t, &tokens_t, &params);
    printf("NaN logit:       %s\n", llmkit_status_string(status));
    printf("message:         %s\n", llmkit_last_error_message());
    exit_code = status == LLMKIT_ERROR_NON_FINITE ? 0 : 1;

done:
    free(text);
    llmkit_sampler_chain_free(chain);
    return exit_code;
}
