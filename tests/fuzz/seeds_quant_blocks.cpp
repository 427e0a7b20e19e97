// Writes seeds for fuzz_quant_blocks into the directory given as argv[1]: for
// every GGUF type, 9 rows x 3 blocks of real quantizer output (so the
// mutations start from blocks with sensible scales), and the same with the
// first two bytes of each block set to 0x7C00 (f16 infinity, where most
// types keep their scale).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "quant/gguf_blocks.hpp"

using namespace llmkit;

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    size_t count = 0;
    const quant::type_traits *types = quant::all_types(&count);
    int written = 0;
    for (size_t i = 0; i < count; ++i) {
        const quant::type_traits &t = types[i];
        const int64_t rows = 9, blocks = 3, k = blocks * t.block_elems;
        std::vector<float> x(static_cast<size_t>(k));
        std::vector<uint8_t> seed = {uint8_t(i), 4, 8, 2};  // the harness reads i, 5 x rows, 9 rows, 3 blocks
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < k; ++j) x[size_t(j)] = float(std::sin(0.37 * double(j + 1) * double(r + 2)));
            std::vector<uint8_t> row(static_cast<size_t>(blocks * t.block_bytes));
            t.quantize_row(x.data(), row.data(), k);
            seed.insert(seed.end(), row.begin(), row.end());
        }
        for (const bool inf : {false, true}) {
            std::vector<uint8_t> s = seed;
            if (inf)
                for (size_t b = 4; b + 1 < s.size(); b += size_t(t.block_bytes)) s[b] = 0x00, s[b + 1] = 0x7C;
            const std::string path = std::string(argv[1]) + "/" + t.name + (inf ? "-inf" : "") + ".bin";
            FILE *f = std::fopen(path.c_str(), "wb");
            if (!f || std::fwrite(s.data(), 1, s.size(), f) != s.size() || std::fclose(f) != 0) {
                std::fprintf(stderr, "seeds_quant_blocks: cannot write %s\n", path.c_str());
                return 1;
            }
            ++written;
        }
    }
    std::printf("seeds_quant_blocks: %d seeds in %s\n", written, argv[1]);
    return 0;
}
