// Writes small rank files for fuzz_tiktoken_ranks into the folder given as
// argv[1]: the 256 single bytes (base64) as ranks 0..255, in byte order or
// reversed, with or without a few multi-byte tokens after them, so the
// fuzzer starts from files that parse and build.
#include <fstream>
#include <string>

#include "tokenizer/base64.hpp"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *merges[] = {"He", "ll", "llo", "Hello", " w", "or", " wor", "ld", " world", "\xC3\xA9", "caf\xC3\xA9"};
    for (int variant = 0; variant < 3; ++variant) {
        std::string file;
        int rank = 0;
        const auto add = [&](const std::string &token) {
            file += llmkit::tok::base64_encode(token) + " " + std::to_string(rank++) + "\n";
        };
        for (int b = 0; b < 256; ++b) add(std::string(1, char(variant == 2 ? 255 - b : b)));
        if (variant > 0)
            for (const char *m : merges) add(m);
        std::ofstream(std::string(argv[1]) + "/ranks" + std::to_string(variant) + ".tiktoken", std::ios::binary)
            << file;
    }
    return 0;
}
