/* Built against an installed llmkit (find_package and pkg-config). */
#include <stdio.h>
#include <string.h>

#include <llmkit/llmkit.h>

int main(void) {
    float logits[4] = {0.0f, 2.0f, 5.0f, 1.0f};
    int32_t token = -1;
    int64_t shape[1] = {4};
    llmkit_tensor lt = {0}, tt = {0};
    llmkit_dtype f32 = LLMKIT_DTYPE_F32, i32 = LLMKIT_DTYPE_I32;
    llmkit_device host = LLMKIT_DEVICE_HOST;
    llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
    lt.data = logits; lt.device = host; lt.ndim = 1; lt.dtype = f32; lt.shape = shape;
    tt.data = &token; tt.device = host; tt.ndim = 0; tt.dtype = i32;
    p.temperature = 0.0f;
    if (llmkit_sample(&lt, &tt, &p) != LLMKIT_OK || token != 2 || strcmp(llmkit_version(), LLMKIT_VERSION_STRING)) {
        fprintf(stderr, "consumer failed: %s\n", llmkit_last_error_message());
        return 1;
    }
    printf("installed llmkit %s: sampled token %d\n", llmkit_version(), (int)token);
    return 0;
}
