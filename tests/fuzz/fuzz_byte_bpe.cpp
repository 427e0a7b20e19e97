// libFuzzer harness: arbitrary bytes as text for the byte-level BPE presets
// cl100k_base and o200k_base (their rank files from the data folder). The
// fast paths (the hand-written pre-tokenizer scanners; merges that start
// characters whole, the piece memo, the pair tables, long-piece merging) are
// checked against plain references on whatever the fuzzer makes:
//   - encode() and encode_ordinary() fail with LLMKIT_ERROR_INVALID_ARGUMENT
//     on invalid UTF-8 (and encode() on a special token it may not take),
//     never otherwise;
//   - decoding the ids gives the text back, byte for byte (byte-level BPE is
//     lossless), with and without special tokens allowed;
//   - the scanner's pieces tile the text and equal PCRE2's matches of the
//     preset's pattern, where every code point is one whose classes the two
//     Unicode versions agree on (below U+0870, CJK, Hangul syllables);
//   - the ids equal lowest-rank-first merging of each piece's bytes, the
//     leftmost pair on ties (the definition), where every piece is short
//     enough for that quadratic reference.
// Any difference aborts with the text's preset and position.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/tokenizer.hpp"

namespace tok = llmkit::tok;

namespace {

[[noreturn]] void fail(const char *preset, const std::string &what) {
    std::fprintf(stderr, "fuzz_byte_bpe (%s): %s\n", preset, what.c_str());
    std::abort();
}

struct preset {
    const char *name;
    std::unique_ptr<tok::byte_level_bpe> bpe;
};

std::vector<preset> &presets() {
    static std::vector<preset> all = [] {
        std::vector<preset> v;
        for (const char *name : {"cl100k_base", "o200k_base"}) {
            const std::string path = std::string(LLMKIT_FUZZ_DATA_DIR) + "/tiktoken/" + name + ".tiktoken";
            try {
                v.push_back({name, tok::load_tiktoken(path, name)});
            } catch (const llmkit::core::error &e) {
                fail(name, std::string("cannot load the rank file (the data folder is required): ") + e.what());
            }
        }
        return v;
    }();
    return all;
}

// The code points whose pre-tokenizer classes PCRE2 (Unicode 14) and the
// scanners (Unicode 16) agree on for certain: assigned before Unicode 14 or
// unassigned in both. Text made only of these must split identically.
bool classes_agree(const std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) { ++i; continue; }
        uint32_t cp;
        size_t n;
        if (c >= 0xF0) cp = c & 0x07, n = 4;
        else if (c >= 0xE0) cp = c & 0x0F, n = 3;
        else cp = c & 0x1F, n = 2;
        for (size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(text[i + k]) & 0x3F);
        i += n;
        if (cp < 0x870 || (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0xAC00 && cp <= 0xD7A3)) continue;
        return false;
    }
    return true;
}

// The definition: parts start as single bytes; merge the adjacent pair whose
// concatenation has the lowest rank (leftmost on ties) until no pair is a token.
void reference_merge(const tok::rank_table &t, std::string_view piece, std::vector<int32_t> &out) {
    std::vector<std::string> parts;
    for (char c : piece) parts.emplace_back(1, c);
    for (;;) {
        uint32_t best = tok::k_no_rank;
        size_t at = 0;
        for (size_t k = 0; k + 1 < parts.size(); ++k) {
            const uint32_t r = t.rank(parts[k] + parts[k + 1]);
            if (r < best) best = r, at = k;
        }
        if (best == tok::k_no_rank) break;
        parts[at] += parts[at + 1];
        parts.erase(parts.begin() + std::ptrdiff_t(at) + 1);
    }
    for (const std::string &s : parts) out.push_back(int32_t(t.rank(s)));
}

// The longest pieces checked against reference_merge (quadratic in the length).
constexpr size_t k_reference_max = 256;

std::string decoded(const tok::byte_level_bpe &bpe, const std::vector<int32_t> &ids) {
    std::string out;
    bpe.decode(ids.data(), ids.size(), out);
    return out;
}

void check(const preset &p, std::string_view text) {
    const tok::byte_level_bpe &bpe = *p.bpe;
    const bool valid = tok::is_valid_utf8(text);
    std::vector<int32_t> ids;
    try {
        bpe.encode_ordinary(text, ids);
    } catch (const llmkit::core::error &e) {
        if (valid || e.status() != LLMKIT_ERROR_INVALID_ARGUMENT)
            fail(p.name, std::string("encode_ordinary: ") + e.what());
    }
    if (!valid && !ids.empty()) fail(p.name, "encode_ordinary accepted invalid UTF-8");
    if (decoded(bpe, ids) != (valid ? text : std::string_view()))
        fail(p.name, "encode_ordinary's ids do not decode to the text");

    for (const bool all_special : {false, true}) {
        tok::encode_options o;
        o.allow_all_special = all_special;
        std::vector<int32_t> with_specials;
        try {
            bpe.encode(text, o, with_specials);
        } catch (const llmkit::core::error &e) {
            // Invalid UTF-8, or (specials not allowed) a special token's text.
            if (e.status() != LLMKIT_ERROR_INVALID_ARGUMENT) fail(p.name, std::string("encode: ") + e.what());
            if (valid && all_special) fail(p.name, std::string("encode failed on valid text: ") + e.what());
            continue;
        }
        if (!valid) fail(p.name, "encode accepted invalid UTF-8");
        if (decoded(bpe, with_specials) != text) fail(p.name, "encode's ids do not decode to the text");
        if (!all_special && with_specials != ids) fail(p.name, "encode differs from encode_ordinary");
    }
    if (!valid) return;

    // The scanner's pieces: contiguous, covering the text.
    std::vector<std::pair<size_t, size_t>> pieces;
    tok::pretokenize(bpe.pre_tokenizer_kind(), text, [&](size_t b, size_t e) { pieces.emplace_back(b, e); });
    size_t at = 0, longest = 0;
    for (const auto &[b, e] : pieces) {
        if (b != at || e <= b) fail(p.name, "scanner piece at byte " + std::to_string(b) + " leaves a gap or is empty");
        at = e;
        longest = std::max(longest, e - b);
    }
    if (at != text.size()) fail(p.name, "scanner pieces stop at byte " + std::to_string(at));

    if (classes_agree(text)) {
        std::vector<std::pair<size_t, size_t>> matches;
        bpe.pre_tokenizer().for_each_match(text, [&](size_t b, size_t e) { matches.emplace_back(b, e); });
        if (matches != pieces) {
            size_t k = 0;
            while (k < matches.size() && k < pieces.size() && matches[k] == pieces[k]) ++k;
            fail(p.name, "scanner and PCRE2 split differently from piece " + std::to_string(k));
        }
    }

    if (longest <= k_reference_max) {
        std::vector<int32_t> want;
        for (const auto &[b, e] : pieces) reference_merge(bpe.ranks(), text.substr(b, e - b), want);
        if (want != ids) {
            size_t k = 0;
            while (k < want.size() && k < ids.size() && want[k] == ids[k]) ++k;
            fail(p.name, "ids differ from lowest-rank-first merging at id " + std::to_string(k));
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    for (const preset &p : presets()) check(p, text);
    return 0;
}
