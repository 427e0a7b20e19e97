// Writes text seeds for fuzz_byte_bpe into the folder given as argv[1]: 2 KB
// slices of the data folder's corpora (English, the 60-language UDHR, the
// mixed slice of code, markup and scripts), cut at UTF-8 character starts,
// so the fuzzer starts from real text in many scripts.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *const corpora[] = {"udhr-60lang.txt", "mixed-slice.txt", "tinyshakespeare.txt"};
    int written = 0;
    for (const char *name : corpora) {
        const std::string path = std::string(LLMKIT_FUZZ_DATA_DIR) + "/corpus/" + name;
        std::ifstream f(path, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (text.empty()) {
            std::fprintf(stderr, "seeds_byte_bpe: cannot read %s\n", path.c_str());
            return 1;
        }
        const size_t slices = 16, len = 2048;
        for (size_t k = 0; k < slices; ++k) {
            size_t b = text.size() / slices * k, e = b + len;
            const auto continuation = [&](size_t i) { return i < text.size() && (text[i] & 0xC0) == 0x80; };
            while (continuation(b)) ++b;
            if (e > text.size()) e = text.size();
            while (e > b && continuation(e)) --e;
            const std::string out = std::string(argv[1]) + "/" + name + "." + std::to_string(k);
            std::ofstream(out, std::ios::binary).write(text.data() + b, std::streamsize(e - b));
            ++written;
        }
    }
    std::printf("seeds_byte_bpe: %d seeds\n", written);
    return 0;
}
