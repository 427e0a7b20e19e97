#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"

namespace llmkit::tok {

byte_level_bpe::byte_level_bpe(std::vector<std::pair<std::string, uint32_t>> ranks, const std::string &pattern,
                               std::vector<special_token> specials, const std::string &source)
    : ranks_(std::move(ranks), source),
      regex_(pattern, /*dollar_end_only=*/true),  // Rust's `$`, as tiktoken
      pretok_(pretokenizer_for(pattern)),
      specials_(std::move(specials)) {
    const int missing = ranks_.missing_byte();
    if (missing >= 0)
        core::fail(LLMKIT_ERROR_FORMAT, source, ": byte 0x", "0123456789abcdef"[missing >> 4],
                   "0123456789abcdef"[missing & 15], " is not a token; byte-level BPE needs all 256 bytes");
    if (ranks_.end_rank() > uint32_t(INT32_MAX)) core::fail(LLMKIT_ERROR_FORMAT, source, ": rank too large");
    vocab_size_ = static_cast<int32_t>(ranks_.end_rank());
    for (size_t i = 0; i < specials_.size(); ++i) {
        const special_token &s = specials_[i];
        std::string_view existing;
        if (s.text.empty()) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "special token ", s.id, " is empty");
        if (s.id < 0) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "special token ", s.text, " has a negative id");
        if (ranks_.bytes(static_cast<uint32_t>(s.id), existing))
            core::fail(LLMKIT_ERROR_FORMAT, source, ": special token ", s.text, " has id ", s.id,
                       ", which is already a regular token's rank");
        if (!special_by_text_.emplace(s.text, i).second || !special_by_id_.emplace(s.id, i).second)
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "special token ", s.text, " (id ", s.id, ") is given twice");
        vocab_size_ = std::max(vocab_size_, s.id + 1);
        if (std::find(special_lengths_.begin(), special_lengths_.end(), s.text.size()) == special_lengths_.end())
            special_lengths_.push_back(s.text.size());
        if (special_first_bytes_.find(s.text[0]) == std::string::npos) special_first_bytes_ += s.text[0];
        starts_special_[static_cast<unsigned char>(s.text[0])] = true;
    }
    std::sort(special_lengths_.rbegin(), special_lengths_.rend());
}

void byte_level_bpe::encode_ordinary(std::string_view text, std::vector<int32_t> &out) const {
    // Both splitters are defined on valid UTF-8 only (PCRE2 matches with
    // PCRE2_NO_UTF_CHECK: invalid bytes there are undefined behaviour, which
    // fuzz_byte_bpe found as a crash in the JIT code).
    check_utf8(text, "text");
    encode_split(text, out);
}

// text: valid UTF-8, checked by the caller.
void byte_level_bpe::encode_split(std::string_view text, std::vector<int32_t> &out) const {
    // From 64 KiB of text (a millisecond of encoding) the merge tables that
    // another program may have evicted are worth streaming in first, and
    // from 256 KiB the pair table too. o200k in Python, timed between
    // tiktoken's calls as bench_tokenizer.py does, against the build
    // without: 1.05-1.06x on 1.2 MB of UDHR, ~1.05x on the 130 KB mixed
    // slice (noisy); with warm caches that slice took 1.03x as long when it
    // streamed the pair table as well, hence the second threshold.
    constexpr size_t k_prefetch_tables_from = size_t(64) << 10, k_prefetch_pairs_from = size_t(256) << 10;
    if (text.size() >= k_prefetch_tables_from) ranks_.prefetch_merge_tables(text.size() >= k_prefetch_pairs_from);
    piece_queue queue(ranks_, this_thread_piece_cache(), out);
    const auto piece = [&](size_t b, size_t e) { queue.push(text.substr(b, e - b)); };
    if (pretok_ != pretok_kind::none) pretokenize(pretok_, text, piece);
    else regex_.for_each_match(text, piece);
    queue.flush();
}

bool byte_level_bpe::find_special(std::string_view text, size_t from, size_t &pos, const special_token *&found) const {
    if (specials_.empty()) return false;
    // The next byte that may start a special token. libstdc++'s find_first_of
    // calls memchr on the set once per byte of text; one candidate byte (the
    // usual '<') is a single vectorized memchr, several a table lookup per byte.
    const auto next = [&](size_t p) -> size_t {
        if (special_first_bytes_.size() == 1) return text.find(special_first_bytes_[0], p);
        for (; p < text.size(); ++p)
            if (starts_special_[static_cast<unsigned char>(text[p])]) return p;
        return std::string_view::npos;
    };
    for (size_t p = next(from); p != std::string_view::npos; p = next(p + 1)) {
        for (size_t len : special_lengths_) {
            if (len > text.size() - p) continue;
            const auto it = special_by_text_.find(text.substr(p, len));
            if (it != special_by_text_.end()) {
                pos = p;
                found = &specials_[it->second];
                return true;
            }
        }
    }
    return false;
}

void byte_level_bpe::encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const {
    check_utf8(text, "text");
    std::vector<bool> allowed(specials_.size(), options.allow_all_special);
    for (std::string_view name : options.allowed_special) {
        const auto it = special_by_text_.find(name);
        if (it == special_by_text_.end())
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "allowed special token \"", name,
                       "\" is not a special token of this tokenizer");
        allowed[it->second] = true;
    }
    size_t start = 0;   // first byte not yet encoded
    size_t search = 0;  // where to look for the next special token
    size_t pos = 0;
    const special_token *special = nullptr;
    while (find_special(text, search, pos, special)) {
        const size_t index = size_t(special - specials_.data());
        if (!allowed[index]) {
            if (!options.special_as_text)
                core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "text contains the special token ", special->text,
                           " at byte ", pos,
                           ", which is not allowed: allow it to encode it as its id, or encode special tokens as text");
            search = pos + 1;
            continue;
        }
        encode_split(text.substr(start, pos - start), out);
        out.push_back(special->id);
        start = search = pos + special->text.size();
    }
    encode_split(text.substr(start), out);
}

void byte_level_bpe::decode(const int32_t *ids, size_t n, std::string &out) const {
    for (size_t i = 0; i < n; ++i) {
        std::string_view bytes;
        if (!id_to_token(ids[i], bytes))
            core::fail(LLMKIT_ERROR_OUT_OF_RANGE, "ids[", i, "] = ", ids[i], " is not a token id (vocabulary size ",
                       vocab_size_, ")");
        out.append(bytes.data(), bytes.size());
    }
}

int32_t byte_level_bpe::token_to_id(std::string_view bytes) const {
    const auto it = special_by_text_.find(bytes);
    if (it != special_by_text_.end()) return specials_[it->second].id;
    const uint32_t r = bytes.empty() ? k_no_rank : ranks_.rank(bytes);
    return r == k_no_rank ? -1 : static_cast<int32_t>(r);
}

bool byte_level_bpe::id_to_token(int32_t id, std::string_view &out) const {
    if (id < 0) return false;
    if (ranks_.bytes(static_cast<uint32_t>(id), out)) return true;
    const auto it = special_by_id_.find(id);
    if (it == special_by_id_.end()) return false;
    out = specials_[it->second].text;
    return true;
}

}  // namespace llmkit::tok
