// Writes seeds for fuzz_pattern into the folder given as argv[1]: each preset's
// pattern (llmkit's and tiktoken's spelling) and a few patterns of other shapes
// (lookarounds, \C, empty matches, possessives, Rust's class operations and
// property names), each followed by a NUL and a text of letters, digits,
// spaces, two- and three-byte characters.
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/train.hpp"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    std::vector<std::string> patterns;
    for (const char *preset : {"r50k_base", "cl100k_base", "o200k_base", "llama3", "qwen2"}) {
        patterns.push_back(llmkit::tok::tiktoken_preset_pattern(preset));
        if (const char *s = llmkit::tok::tiktoken_preset_spelling(preset)) patterns.push_back(s);
    }
    for (const char *p : {R"(\S+|\s+)", R"(\C)", R"(x*)", R"((?=\p{L})\p{L}{1,3}|\d|\s)", R"(\b\w+\b|[^\w]++)",
                          R"((a+)+$|.)", R"([\p{Han}\p{Hiragana}]+|\X)",
                          // Rust's dialect, translated for PCRE2 (rust_regex_to_pcre2).
                          R"([\p{L}&&[^\p{Han}]]+|[a-z--[aeiou]]+|[\w~~\d]|[[:alpha:][:^digit:]]+|.)",
                          R"(\b\w+\B|\<|\>|\h+|\p{Letter}+|\p{gc=Lu}|\p{Is_Greek}|\p{^Han}|\u0041|\w+$)"})
        patterns.push_back(p);
    const std::string text = "hello world caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C 12345  \n\n don't<|x|>HELLO";
    int n = 0;
    for (const std::string &p : patterns) {
        std::ofstream(std::string(argv[1]) + "/pattern" + std::to_string(n++), std::ios::binary)
            << p << '\0' << text;
    }
    return 0;
}
