// Writes small tokenizer.json seeds for fuzz_tokenizer_json into the folder
// given as argv[1]: one per model type and most component types, so the
// fuzzer starts from files that load.
#include <cstdio>
#include <string>

namespace {

const char *const k_added =
    R"("added_tokens": [{"id": 0, "content": "<unk>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false},)"
    R"({"id": 1, "content": "<s>", "special": true, "normalized": false, "lstrip": true, "rstrip": true, "single_word": false},)"
    R"({"id": 9, "content": "ab", "special": false, "normalized": true, "lstrip": false, "rstrip": false, "single_word": true}],)";

const char *const k_seeds[] = {
    // WordPiece + BERT pieces.
    R"({"normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["<s>", 1], "cls": ["<unk>", 0]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"unk_token": "<unk>", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                  "vocab": {"<unk>": 0, "<s>": 1, "a": 2, "##b": 3, "c": 4, "##c": 5, ",": 6, "ab": 9}}})",
    // Byte-level BPE.
    R"({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "\u0120a": 5, "abc": 6},
                  "merges": ["a b", "\u0120 a", "ab c"]}})",
    // SentencePiece-style BPE with byte fallback.
    R"({"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": false},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                    {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
                  "vocab": {"<unk>": 0, "<s>": 1, "<0x41>": 2, "<0xC3>": 3, "\u2581": 4, "a": 5, "\u2581a": 6},
                  "merges": [["\u2581", "a"]]}})",
    // Unigram with a sequence of normalizers and pre-tokenizers.
    R"({"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
                      {"type": "Strip", "strip_left": true, "strip_right": true}, {"type": "Prepend", "prepend": "_"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "UnicodeScripts"}, {"type": "Digits", "individual_digits": true},
                         {"type": "Punctuation", "behavior": "Contiguous"},
                         {"type": "Split", "pattern": {"Regex": "[aeiou]"}, "behavior": "MergedWithNext", "invert": false},
                         {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true}]},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
        "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false,
                  "vocab": [["<unk>", 0.0], ["<s>", 0.0], ["\u2581", -2.0], ["a", -3.0], ["b", -3.5], ["ab", -4.0], ["_", -5.0], ["1", -6.0]]}})",
    // WordLevel whose unk_token is not in the vocab (loads; unknown words fail the text), Nmt normalizer.
    R"({"normalizer": {"type": "Nmt"}, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "model": {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"Hello": 0, "world,": 1, "a": 2, "<s>": 3}}})",
    // BPE whose unk_token is not in the vocab (a regression seed: encode once failed with the wrong status).
    R"({"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": false},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
                  "vocab": {"<unk4": 0, "<s>": 1, "\u2581": 2, "a": 3, "\u2581a": 4}, "merges": [["\u2581", "a"]]}})",
};

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int i = 0;
    for (const char *seed : k_seeds) {
        std::string body(seed);
        if (i < 3) body.insert(1, k_added);
        const std::string path = std::string(argv[1]) + "/seed_" + std::to_string(i++) + ".json";
        std::FILE *f = std::fopen(path.c_str(), "wb");
        if (!f) return 1;
        std::fwrite(body.data(), 1, body.size(), f);
        std::fclose(f);
    }
    return 0;
}
