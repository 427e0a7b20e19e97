// Writes small valid GGUF files into the directory given as argv[1]: seeds for
// fuzz_gguf that reach past the header (every value type, nested arrays,
// tensors of several types, a non-default alignment). The data folder's files
// are large and hold no tensors except stories260K.
#include <cstdio>
#include <string>
#include <vector>

#include "formats/gguf.hpp"

using namespace llmkit;

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];

    gguf::writer w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 2);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
    const float scores[5] = {0, 0, 0, -1, -2};
    w.set_array("tokenizer.ggml.scores", gguf::value_type::f32, scores, 5);
    const int32_t types[5] = {2, 3, 3, 1, 1};
    w.set_array("tokenizer.ggml.token_type", gguf::value_type::i32, types, 5);
    w.write(dir + "/vocab.gguf");

    gguf::value inner;
    inner.type = gguf::value_type::array;
    inner.elem_type = gguf::value_type::u64;
    const uint64_t xs[2] = {1, 1ull << 63};
    inner.raw = reinterpret_cast<const uint8_t *>(xs);
    inner.count = 2;
    gguf::value nested;
    nested.type = gguf::value_type::array;
    nested.elem_type = gguf::value_type::array;
    nested.items = {inner, inner};
    nested.count = 2;
    w.set("nested", nested);
    const std::vector<float> f32(64, 0.5f);
    w.add_tensor("blk.0.attn_norm.weight", 0, {64}, f32.data(), f32.size() * 4);
    const std::vector<uint8_t> q4(2 * 18, 0x88);
    w.add_tensor("blk.0.ffn_down.weight", 2, {32, 2}, q4.data(), q4.size());
    const std::vector<uint8_t> q4k(144, 0x21);
    w.add_tensor("blk.0.ffn_up.weight", 12, {256}, q4k.data(), q4k.size());
    w.write(dir + "/model.gguf");

    w.set_u32("general.alignment", 64);
    w.write(dir + "/aligned64.gguf");
    return 0;
}
