/* Sampling from a real model's logits, in C.
 *
 * Reads the float32 logits that the tiny stories260K Llama produced at its
 * first 4 positions (shared/data/models/stories260K/logits_pos0-3.f32) and its
 * llama2.c vocabulary (tok512.bin), then:
 *   1. picks greedily and checks the result against llama2.c's own greedy run;
 *   2. draws 8 continuations per position with temperature 1.5 -> top-p 0.95, seeded.
 * Usage: sample_stories260k <data-dir>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmkit/llmkit.h"

enum { N_POS = 4, VOCAB = 512, N_DRAWS = 8 };

static char *pieces[VOCAB];

static int load_vocab(const char *path) {
    FILE *f = fopen(path, "rb");
    int32_t max_len, i;
    if (!f) return 0;
    if (fread(&max_len, 4, 1, f) != 1) goto fail;
    for (i = 0; i < VOCAB; ++i) {
        float score;
        int32_t len;
        if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > max_len) goto fail;
        pieces[i] = calloc((size_t)len + 1, 1);
        if (!pieces[i] || fread(pieces[i], 1, (size_t)len, f) != (size_t)len) goto fail;
    }
    fclose(f);
    return 1;
fail:
    fclose(f);
    return 0;
}

static int check(llmkit_status s, const char *what) {
    if (s == LLMKIT_OK) return 1;
    fprintf(stderr, "%s failed: %s\n", what, llmkit_last_error_message());
    return 0;
}

int main(int argc, char **argv) {
    char path[4096];
    static float logits[N_POS * VOCAB], batch[N_POS * N_DRAWS * VOCAB];
    int32_t greedy[N_POS], drawn[N_POS * N_DRAWS], expected[N_POS + 1];
    int64_t lshape[2] = {N_POS, VOCAB}, tshape[1] = {N_POS};
    int64_t bshape[2] = {N_POS * N_DRAWS, VOCAB}, dshape[1] = {N_POS * N_DRAWS};
    llmkit_tensor lt = {0}, tt = {0}, bt = {0}, dt = {0};
    llmkit_dtype f32 = LLMKIT_DTYPE_F32, i32 = LLMKIT_DTYPE_I32;
    llmkit_device host = LLMKIT_DEVICE_HOST;
    llmkit_sampler_chain *chain = NULL;
    llmkit_sampler_chain_options copts = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
    FILE *f;
    int i, j, ok = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <shared/data dir>\n", argv[0]);
        return 2;
    }
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", argv[1]);
    if (!load_vocab(path)) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/models/stories260K/logits_pos0-3.f32", argv[1]);
    f = fopen(path, "rb");
    if (!f || fread(logits, 4, N_POS * VOCAB, f) != N_POS * VOCAB) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/models/stories260K/greedy_ids_n200.txt", argv[1]);
    f = fopen(path, "r");
    for (i = 0; f && i <= N_POS; ++i)
        if (fscanf(f, "%d", &expected[i]) != 1) break;
    if (!f || i <= N_POS) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    fclose(f);

    lt.data = logits; lt.device = host; lt.ndim = 2; lt.dtype = f32; lt.shape = lshape;
    tt.data = greedy; tt.device = host; tt.ndim = 1; tt.dtype = i32; tt.shape = tshape;

    /* 1. Greedy, as llama2.c's `run -t 0` does. */
    if (!check(llmkit_sampler_chain_create(&chain, NULL), "create") ||
        !check(llmkit_sampler_chain_add_greedy(chain), "add_greedy") ||
        !check(llmkit_sampler_chain_sample(chain, &lt, &tt, NULL), "sample"))
        return 1;
    llmkit_sampler_chain_free(chain);
    printf("greedy:");
    for (i = 0; i < N_POS; ++i) {
        printf(" [%s]", pieces[greedy[i]]);
        if (greedy[i] != expected[i + 1]) ok = 0;
    }
    printf("  -> %s llama2.c\n", ok ? "matches" : "DIFFERS FROM");

    /* 2. Eight seeded draws per position: temperature 1.5 -> top-p 0.95. Each
     *    row of the batch is its own sequence, so its Philox stream differs. */
    for (i = 0; i < N_POS; ++i)
        for (j = 0; j < N_DRAWS; ++j) memcpy(batch + (i * N_DRAWS + j) * VOCAB, logits + i * VOCAB, VOCAB * 4);
    bt.data = batch; bt.device = host; bt.ndim = 2; bt.dtype = f32; bt.shape = bshape;
    dt.data = drawn; dt.device = host; dt.ndim = 1; dt.dtype = i32; dt.shape = dshape;
    copts.seed = 133742;
    if (!check(llmkit_sampler_chain_create(&chain, &copts), "create") ||
        !check(llmkit_sampler_chain_add_temperature(chain, 1.5f), "add_temperature") ||
        !check(llmkit_sampler_chain_add_top_p(chain, 0.95f, 1), "add_top_p") ||
        !check(llmkit_sampler_chain_add_dist(chain), "add_dist") ||
        !check(llmkit_sampler_chain_sample(chain, &bt, &dt, NULL), "sample"))
        return 1;
    llmkit_sampler_chain_free(chain);
    for (i = 0; i < N_POS; ++i) {
        printf("position %d, temperature 1.5 -> top-p 0.95 draws:", i);
        for (j = 0; j < N_DRAWS; ++j) printf(" [%s]", pieces[drawn[i * N_DRAWS + j]]);
        printf("\n");
    }
    for (i = 0; i < VOCAB; ++i) free(pieces[i]);
    return ok ? 0 : 1;
}
