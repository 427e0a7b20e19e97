// A C++ driver for profiling the byte-level BPE encoder without Python in the
// way (perf record, callgrind): loads a tiktoken rank file from the shared
// data folder, encodes one corpus `reps` times and prints the best thread CPU
// time and a hash of the ids (equal hashes: equal ids). Built with the tests
// (bench/CMakeLists.txt) as llmkit_tok_encode_driver; ctest runs it once.
//
//   llmkit_tok_encode_driver <encoding> <corpus file name> [reps] [encode|cold|scan] [reference ids]
//
// scan times the pre-tokenizer alone. LLMKIT_FLUSH_MB=n writes n MB between
// encodes (the caches another library's encode would leave). The data folder is LLMKIT_DATA_DIR, else
// the one the build was configured with. A reference ids file (one id per
// line, as corpus/mixed-slice-ids/) is compared with the encode's ids.
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace {

double thread_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::string slurp(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

}  // namespace

int main(int argc, char **argv) try {
    using namespace llmkit::tok;
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <encoding> <corpus file> [reps] [encode|cold|scan] [reference ids]\n", argv[0]);
        return 2;
    }
    const std::string enc = argv[1], corpus = argv[2];
    const int reps = argc > 3 ? std::max(1, std::atoi(argv[3])) : 20;
    const std::string mode = argc > 4 ? argv[4] : "encode";
    const char *env = std::getenv("LLMKIT_DATA_DIR");
    const std::string data = env ? env : LLMKIT_DEFAULT_DATA_DIR;
    auto tok = load_tiktoken(data + "/tiktoken/" + enc + ".tiktoken", enc);
    const std::string text = slurp(data + "/corpus/" + corpus);
    if (text.empty()) {
        std::fprintf(stderr, "cannot read %s/corpus/%s\n", data.c_str(), corpus.c_str());
        return 1;
    }
    std::vector<int32_t> ids;
    double best = 1e30;
    size_t pieces = 0;
    // LLMKIT_FLUSH_MB: written between encodes, as another library's encode
    // does between llmkit's in bench_tokenizer.py's interleaved timing.
    const char *flush_env = std::getenv("LLMKIT_FLUSH_MB");
    std::vector<char> flush(flush_env ? size_t(std::max(0, std::atoi(flush_env))) << 20 : 0);
    for (int r = 0; r < reps; ++r) {
        for (size_t k = 0; k < flush.size(); k += 64) flush[k] = char(flush[k] + r);
        ids.clear();
        pieces = 0;
        // cold: a freshly loaded tokenizer each time, its memos empty (the load is not timed).
        if (mode == "cold" && r > 0) tok = load_tiktoken(data + "/tiktoken/" + enc + ".tiktoken", enc);
        const double t0 = thread_seconds();
        if (mode == "scan") pretokenize(tok->pre_tokenizer_kind(), text, [&](size_t, size_t) { ++pieces; });
        else tok->encode_ordinary(text, ids);
        best = std::min(best, thread_seconds() - t0);
    }
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the ids
    for (int32_t v : ids) h = (h ^ uint32_t(v)) * 1099511628211ull;
    std::printf("%s %s %s: %.2f MB/s (%.3f ms) ids %zu pieces %zu hash %016llx", enc.c_str(), corpus.c_str(),
                mode.c_str(), double(text.size()) / best / 1e6, best * 1e3, ids.size(), pieces,
                static_cast<unsigned long long>(h));
    if (argc > 5) {
        std::istringstream ref(slurp(argv[5]));
        std::vector<int32_t> want;
        for (int32_t v; ref >> v;) want.push_back(v);
        if (want != ids) {
            std::printf(": DIFFERENT from the reference %s (%zu ids)\n", argv[5], want.size());
            return 1;
        }
        std::printf(": equal to the reference");
    }
    std::printf("\n");
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
