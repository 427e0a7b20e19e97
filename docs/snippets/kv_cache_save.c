/* A prompt's KV cache saved to a file and loaded by another cache, through
 * the C ABI. A contiguous bf16 cache holds a 48-token "prompt" in 2 layers;
 * llmkit_kv_cache_seq_save() writes it to a temporary file; a paged cache of
 * 16-token blocks (as a later process would make) loads it, and attention over
 * the loaded sequence equals attention over the original, bit for bit. A
 * truncated file is refused with an error that says so. Run by the
 * snippet_c_kv_cache_save test; its output is checked against
 * kv_cache_save.expected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmkit/llmkit.h"

enum { LAYERS = 2, HKV = 2, HQ = 4, D = 64, PROMPT = 48 };

#define CHECK(call)                                                                    \
    do {                                                                               \
        if ((call) != LLMKIT_OK) {                                                     \
            fprintf(stderr, "%s: %s\n", #call, llmkit_last_error_message());           \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

static float rows_k[PROMPT * HKV * D], rows_v[PROMPT * HKV * D], q[HQ * D], out_a[HQ * D], out_b[HQ * D];

int main(void) {
    const int64_t rows_shape[3] = {PROMPT, HKV, D}, q_shape[4] = {1, 1, HQ, D};
    llmkit_tensor k = {rows_k, LLMKIT_DEVICE_HOST, 3, LLMKIT_DTYPE_F32, rows_shape, NULL, 0};
    llmkit_tensor v = {rows_v, LLMKIT_DEVICE_HOST, 3, LLMKIT_DTYPE_F32, rows_shape, NULL, 0};
    llmkit_tensor tq = {q, LLMKIT_DEVICE_HOST, 4, LLMKIT_DTYPE_F32, q_shape, NULL, 0};
    llmkit_tensor ta = {out_a, LLMKIT_DEVICE_HOST, 4, LLMKIT_DTYPE_F32, q_shape, NULL, 0};
    llmkit_tensor tb = {out_b, LLMKIT_DEVICE_HOST, 4, LLMKIT_DTYPE_F32, q_shape, NULL, 0};
    llmkit_kv_cache_options co = LLMKIT_KV_CACHE_OPTIONS_INIT;
    llmkit_paged_kv_cache_options po = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    llmkit_kv_cache *cache = NULL;
    llmkit_paged_kv_cache *paged = NULL;
    int32_t seq = -1, loaded = -1, layer;
    size_t need = 0, i;
    unsigned char *bytes;
    long size;
    FILE *f;

    for (i = 0; i < PROMPT * HKV * D; ++i) { /* any finite rows: a fixed pattern */
        rows_k[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        rows_v[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    }
    for (i = 0; i < HQ * D; ++i) q[i] = (float)((i * 29) % 89) / 44.0f - 1.0f;

    /* 1. The prompt in a contiguous bf16 cache, both layers. */
    co.n_layers = LAYERS, co.n_kv_heads = HKV, co.head_dim = D, co.capacity = 256, co.dtype = LLMKIT_KV_BF16;
    CHECK(llmkit_kv_cache_create(&cache, &co));
    CHECK(llmkit_kv_cache_seq_new(cache, &seq));
    for (layer = 0; layer < LAYERS; ++layer) CHECK(llmkit_kv_cache_append(cache, layer, seq, &k, &v));

    /* 2. Its bytes: ask for the size (BUFFER_TOO_SMALL with need set), then save, then write the file. */
    if (llmkit_kv_cache_seq_save(cache, seq, NULL, 0, &need) != LLMKIT_ERROR_BUFFER_TOO_SMALL) return 1;
    bytes = malloc(need);
    if (!bytes) return 1;
    CHECK(llmkit_kv_cache_seq_save(cache, seq, bytes, need, NULL));
    printf("saved %zu bytes (40 + 2 x 8 + 2 layers x 48 tokens x 2 heads x (K, V) x 64 x 2 = %d)\n", need,
           40 + 2 * 8 + LAYERS * PROMPT * HKV * 2 * D * 2);
    f = tmpfile();
    if (!f || fwrite(bytes, 1, need, f) != need) return 1;
    free(bytes);

    /* 3. Read the file back and load it into a paged cache of 16-token blocks. */
    rewind(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    bytes = malloc((size_t)size);
    if (!bytes || fread(bytes, 1, (size_t)size, f) != (size_t)size) return 1;
    fclose(f);
    po.n_layers = LAYERS, po.n_kv_heads = HKV, po.head_dim = D, po.block_size = 16, po.n_blocks = 32;
    po.dtype = LLMKIT_KV_BF16;
    CHECK(llmkit_paged_kv_cache_create(&paged, &po));
    CHECK(llmkit_paged_kv_cache_seq_new(paged, &loaded));
    CHECK(llmkit_paged_kv_cache_seq_load(paged, loaded, bytes, (size_t)size));

    /* 4. The next token's query attends to the same bits in both caches. */
    for (layer = 0; layer < LAYERS; ++layer) {
        CHECK(llmkit_kv_cache_attention(cache, layer, &tq, &seq, 1, &ta, NULL));
        CHECK(llmkit_paged_kv_cache_attention(paged, layer, &tq, &loaded, 1, &tb, NULL));
        printf("layer %d: same output bits: %s\n", layer, memcmp(out_a, out_b, sizeof out_a) == 0 ? "yes" : "no");
    }

    /* 5. A file cut short is refused; the sequence keeps its tokens. */
    if (llmkit_paged_kv_cache_seq_load(paged, loaded, bytes, (size_t)size - 100) != LLMKIT_ERROR_FORMAT) return 1;
    printf("truncated: %s\n", llmkit_last_error_message());
    free(bytes);
    llmkit_paged_kv_cache_free(paged);
    llmkit_kv_cache_free(cache);
    return 0;
}
