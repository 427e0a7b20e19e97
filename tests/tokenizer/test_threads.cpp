// Thread safety by contract: one loaded tokenizer used from 8 threads at once
// (encode, encode with offsets, decode, streaming decode) gives exactly the
// single-thread results. Run under ThreadSanitizer by scripts/test.sh
// (LLMKIT_SANITIZE=thread), where a data race fails the test.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llmkit/llmkit.hpp"
#include "support/test_support.hpp"

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

using llmkit_test::read_file;

struct results {
    std::vector<int32_t> ids;
    std::vector<size_t> offsets;
    std::string decoded, streamed;
};

results run_all(const llmkit::tokenizer &tok, const std::string &text) {
    results r;
    r.ids = tok.encode(text, {}, false, true);
    llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
    o.special_as_text = 1;
    tok.encode_with_offsets(text, r.offsets, &o);
    r.decoded = tok.decode(r.ids);
    llmkit::tokenizer_decoder dec(tok);
    for (size_t i = 0; i < r.ids.size(); i += 3)
        r.streamed += dec.feed(std::vector<int32_t>(r.ids.begin() + std::ptrdiff_t(i),
                                                    r.ids.begin() + std::ptrdiff_t(std::min(i + 3, r.ids.size()))));
    r.streamed += dec.flush();
    return r;
}

}  // namespace

TEST_CASE("8 threads share one tokenizer: encode, offsets, decode, stream decode", "[threads]") {
    const std::string data = LLMKIT_TEST_DATA_DIR;
    const std::string corpus = read_file(data + "/corpus/mixed-slice.txt");
    for (const char *name : {"cl100k_base", "o200k_base"}) {
        const std::string file = data + "/tiktoken/" + name + ".tiktoken";
        const auto tok = llmkit::tokenizer::from_tiktoken(file, name);
        // Each thread takes its own slice (cut at a line start), plus one slice all threads share.
        std::vector<std::string> slices;
        for (size_t k = 0; k < 8; ++k) {
            size_t b = corpus.size() * k / 8, e = corpus.size() * (k + 1) / 8;
            b = k == 0 ? 0 : corpus.find('\n', b) + 1;
            e = k == 7 ? corpus.size() : corpus.find('\n', e) + 1;
            std::string slice = corpus.substr(b, e - b);
            if (slice.size() > 8000) slice.resize(slice.rfind('\n', 8000) + 1);  // whole lines: whole characters
            slices.push_back(slice);
        }
        const std::string shared = slices[3];
        std::vector<results> expected;
        for (const auto &s : slices) expected.push_back(run_all(tok, s));
        const results expected_shared = run_all(tok, shared);
        REQUIRE(expected_shared.decoded == shared);
        REQUIRE(expected_shared.streamed == shared);

        std::vector<int> ok(8, 0);
        std::vector<std::thread> threads;
        for (size_t k = 0; k < 8; ++k) {
            threads.emplace_back([&, k] {
                int good = 1;
                for (int round = 0; round < 2; ++round) {
                    const results a = run_all(tok, slices[k]);
                    const results b = run_all(tok, shared);
                    good &= a.ids == expected[k].ids && a.offsets == expected[k].offsets &&
                            a.decoded == expected[k].decoded && a.streamed == expected[k].streamed;
                    good &= b.ids == expected_shared.ids && b.offsets == expected_shared.offsets &&
                            b.streamed == expected_shared.streamed;
                }
                ok[k] = good;
            });
        }
        for (auto &t : threads) t.join();
        for (size_t k = 0; k < 8; ++k) {
            INFO(name << " thread " << k);
            CHECK(ok[k] == 1);
        }
    }
}

#endif  // LLMKIT_TEST_DATA_DIR
