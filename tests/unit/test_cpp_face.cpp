// The header-only C++ face, compiled as a user would (-Wall -Wextra -Werror)
// against the shared library only: RAII, the fluent builder, exceptions.
#include <cstdio>
#include <vector>

#include "llmkit/llmkit.hpp"

int main() {
    int failed = 0, passed = 0;
    auto expect = [&](bool ok, const char *what) {
        if (ok) {
            ++passed;
        } else {
            ++failed;
            std::fprintf(stderr, "FAILED: %s\n", what);
        }
    };
    const std::vector<float> logits{0.5f, 2.0f, -1.0f, 1.9f, /* row 1 */ 3.0f, 0.0f, 0.0f, 0.0f};
    llmkit::sampler_chain chain(7);
    chain.penalties(16, 1.1f, 0.0f, 0.0f).top_k(2).greedy();
    expect(chain.size() == 3, "size");
    expect(chain.describe() == "penalties(last_n=16, repeat=1.1, frequency=0, presence=0) -> top_k(2) -> greedy",
           "describe");
    const auto t = chain.sample(logits.data(), 2, 4);
    expect(t.size() == 2 && t[0] == 1 && t[1] == 0, "greedy tokens");
    bool threw = false;
    try {
        chain.top_k(0);
    } catch (const llmkit::error &e) {
        threw = e.status() == LLMKIT_ERROR_INVALID_ARGUMENT;
    }
    expect(threw, "exception with status");
    llmkit::sampler_chain moved = std::move(chain);
    expect(moved.size() == 3, "movable");
    std::printf("cpp_face: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
