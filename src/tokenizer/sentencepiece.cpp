#include "tokenizer/sentencepiece.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cstring>
#include <map>
#include <queue>

#include "core/error.hpp"

namespace llmkit::tok {

namespace {

constexpr std::string_view k_space_symbol = "\xE2\x96\x81";  // U+2581 "▁"
constexpr std::string_view k_replacement_char = "\xEF\xBF\xBD";  // U+FFFD

std::atomic<uint64_t> g_next_owner{1};

// sentencepiece's OneCharLen: the length a UTF-8 lead byte announces.
inline size_t one_char_len(unsigned char c) { return "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4]; }

// The length of the valid UTF-8 character at the start of s (no overlongs,
// surrogates or code points above U+10FFFF), or 0 when it is malformed.
size_t valid_char_len(std::string_view s) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    const size_t n = s.size();
    const unsigned c = p[0];
    if (c < 0x80) return 1;
    auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        const unsigned cp = (c & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        const unsigned cp = (c & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F);
        return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
    }
    return 0;
}

// "<0x41>" -> 0x41; -1 when the piece is not of that form.
int byte_of_piece(std::string_view piece) {
    if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
    int v = 0;
    for (size_t i = 3; i < 5; ++i) {
        const char c = piece[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// Each thread's memo of merged BPE words (direct-mapped; an entry is valid
// for the tokenizer whose owner id it holds, and owner ids are never reused).
struct spm_word_cache {
    static constexpr size_t k_entries = 4096;
    static constexpr size_t k_max_bytes = 48;
    static constexpr size_t k_max_ids = 17;
    struct alignas(64) entry {
        uint64_t owner = 0;
        uint8_t len = 0, count = 0;
        char bytes[k_max_bytes];
        int32_t ids[k_max_ids];
    };
    entry entries[k_entries];
};

spm_word_cache &this_thread_word_cache() {
    thread_local std::unique_ptr<spm_word_cache> cache(new spm_word_cache());
    return *cache;
}

uint64_t hash_bytes(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

std::vector<std::pair<std::string_view, uint32_t>> normal_piece_entries(const spm_model &m) {
    std::vector<std::pair<std::string_view, uint32_t>> entries;
    entries.reserve(m.pieces.size());
    for (size_t i = 0; i < m.pieces.size(); ++i) {
        const spm_type t = m.pieces[i].type;
        if (t == spm_type::normal || t == spm_type::user_defined || t == spm_type::unused)
            entries.emplace_back(m.pieces[i].text, uint32_t(i));
    }
    return entries;
}

}  // namespace

sentencepiece::sentencepiece(spm_model model, const std::string &source)
    : model_(std::move(model)),
      source_(source),
      pieces_(normal_piece_entries(model_), source),
      cache_owner_(g_next_owner.fetch_add(1, std::memory_order_relaxed)) {
    const size_t n = model_.pieces.size();
    if (n == 0) core::fail(LLMKIT_ERROR_FORMAT, source, ": the vocabulary has no pieces");
    if (n > k_spm_max_pieces)
        core::fail(LLMKIT_ERROR_FORMAT, source, ": ", n, " pieces is more than the limit of ", k_spm_max_pieces);
    std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
    min_score_ = FLT_MAX;
    bool any_normal = false;
    for (size_t i = 0; i < n; ++i) {
        const spm_piece &p = model_.pieces[i];
        const auto id = int32_t(i);
        if (p.text.empty()) core::fail(LLMKIT_ERROR_FORMAT, source, ": piece ", i, " is empty");
        switch (p.type) {
        case spm_type::normal:
            any_normal = true;
            min_score_ = std::min(min_score_, p.score);
            break;
        case spm_type::user_defined: user_defined_.push_back(p.text); break;
        case spm_type::unused: has_unused_ = true; break;
        case spm_type::unknown:
            if (unk_id_ >= 0) core::fail(LLMKIT_ERROR_FORMAT, source, ": pieces ", unk_id_, " and ", i, " are both unknown");
            unk_id_ = id;
            break;
        case spm_type::control: break;
        case spm_type::byte: {
            const int b = byte_of_piece(p.text);
            if (!model_.byte_fallback)
                core::fail(LLMKIT_ERROR_FORMAT, source, ": byte piece ", p.text, " (id ", i,
                           ") in a model without byte fallback");
            if (b < 0) core::fail(LLMKIT_ERROR_FORMAT, source, ": byte piece ", i, " is not of the form <0xNN>");
            break;
        }
        default: core::fail(LLMKIT_ERROR_FORMAT, source, ": piece ", i, " has unknown type ", int(p.type));
        }
        if (p.type == spm_type::control || p.type == spm_type::unknown || p.type == spm_type::byte) {
            if (!reserved_.emplace(p.text, id).second)
                core::fail(LLMKIT_ERROR_FORMAT, source, ": piece \"", p.text, "\" is defined twice");
            if (p.type == spm_type::control) controls_.emplace_back(p.text, id);
        }
    }
    if (!any_normal) min_score_ = 0;
    if (unk_id_ < 0) core::fail(LLMKIT_ERROR_FORMAT, source, ": no piece has the unknown type");
    for (int b = 0; b < 256; ++b) {
        const char name[7] = {'<', '0', 'x', "0123456789ABCDEF"[b >> 4], "0123456789ABCDEF"[b & 15], '>', 0};
        byte_ids_[b] = piece_to_id(std::string_view(name, 6));
    }
    for (const int32_t id : {model_.bos_id, model_.eos_id})
        if (id >= int32_t(n) || id < -1)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": BOS/EOS id ", id, " is outside the ", n, " pieces");
    for (std::string_view u : user_defined_) {
        if (std::find(user_defined_lengths_.begin(), user_defined_lengths_.end(), u.size()) ==
            user_defined_lengths_.end())
            user_defined_lengths_.push_back(u.size());
        if (user_defined_first_bytes_.find(u[0]) == std::string::npos) user_defined_first_bytes_ += u[0];
    }
    std::sort(user_defined_lengths_.rbegin(), user_defined_lengths_.rend());
    if (!model_.precompiled_charsmap.empty())
        charsmap_ = std::make_unique<spm_charsmap>(model_.precompiled_charsmap, source);
    for (int c = 0x21; c < 0x7F; ++c)
        plain_ascii_[c] = (!charsmap_ || !charsmap_->rule_before_ascii(static_cast<unsigned char>(c))) &&
                          user_defined_first_bytes_.find(char(c)) == std::string::npos;

    if (model_.algo == spm_model::algorithm::bpe) {
        // Words may be merged separately when no mergeable piece has "▁" after
        // another character (then no merge crosses the start of a word).
        split_words_ = !has_unused_ && !model_.treat_whitespace_as_suffix;
        for (size_t i = 0; i < n && split_words_; ++i) {
            const spm_piece &p = model_.pieces[i];
            if (p.type != spm_type::normal && p.type != spm_type::user_defined) continue;
            for (size_t at = p.text.find(k_space_symbol, 1); at != std::string::npos;
                 at = p.text.find(k_space_symbol, at + 1)) {
                if (at < 3 || p.text.compare(at - 3, 3, k_space_symbol) != 0) {
                    split_words_ = false;
                    break;
                }
            }
        }
    } else {
        // The trie of the Unigram lattice: built with ordered maps, then flattened.
        std::vector<std::map<uint8_t, uint32_t>> children(1);
        std::vector<int32_t> ids(1, -1);
        for (size_t i = 0; i < n; ++i) {
            // (Unused pieces are skipped by the lattice as if absent.)
            const spm_type t = model_.pieces[i].type;
            if (t != spm_type::normal && t != spm_type::user_defined) continue;
            uint32_t node = 0;
            for (unsigned char c : model_.pieces[i].text) {
                auto it = children[node].find(c);
                if (it == children[node].end()) {
                    it = children[node].emplace(c, uint32_t(children.size())).first;
                    children.emplace_back();
                    ids.push_back(-1);
                }
                node = it->second;
            }
            ids[node] = int32_t(i);
        }
        // Flattened into a double array, nodes in breadth-first order: each
        // node's children take the first base whose slots base + c are all
        // free (first_free: below it every slot is taken).
        std::vector<uint32_t> slot_of(children.size(), 0);
        trie_.assign(1, trie_slot{});
        trie_[0].check = -2;  // the root: taken, and never any node's child
        trie_[0].id = ids[0];
        size_t first_free = 1;
        std::vector<uint32_t> order(1, 0);
        for (size_t at = 0; at < order.size(); ++at) {
            const uint32_t v = order[at];
            if (children[v].empty()) continue;
            const int64_t c_min = children[v].begin()->first;
            while (first_free < trie_.size() && trie_[first_free].check != -1) ++first_free;
            int64_t b = std::max<int64_t>(1, int64_t(first_free)) - c_min;
            // (At most 4096 tries, then past the end, where every slot is
            // free: a crafted vocabulary cannot make the search quadratic.)
            for (int tries = 0;; ++b, ++tries) {
                if (tries == 4096) b = std::max<int64_t>(int64_t(trie_.size()), 1) - c_min;
                bool fits = true;
                for (const auto &[c, child] : children[v]) {
                    const size_t sl = size_t(b + c);
                    if (sl < trie_.size() && trie_[sl].check != -1) {
                        fits = false;
                        break;
                    }
                }
                if (fits) break;
            }
            if (b + 256 > int64_t(INT32_MAX)) core::fail(LLMKIT_ERROR_FORMAT, source, ": the piece trie is too large");
            trie_[slot_of[v]].base = int32_t(b);
            for (const auto &[c, child] : children[v]) {
                const size_t sl = size_t(b + c);
                if (sl >= trie_.size()) trie_.resize(sl + 1);
                trie_[sl].check = int32_t(slot_of[v]);
                trie_[sl].id = ids[child];
                if (ids[child] >= 0) {
                    // sentencepiece 0.2.2's lattice scores: a user-defined piece
                    // of n bytes (n = this slot's depth) float(0.1 * (n - 1)).
                    const spm_piece &pc = model_.pieces[size_t(ids[child])];
                    trie_[sl].score = pc.type == spm_type::user_defined
                                          ? float(0.1 * double(int(pc.text.size()) - 1))
                                          : pc.score;
                }
                slot_of[child] = uint32_t(sl);
                order.push_back(child);
            }
        }
    }
}

int32_t sentencepiece::piece_to_id(std::string_view piece) const {
    const auto it = reserved_.find(piece);
    if (it != reserved_.end()) return it->second;
    const uint32_t r = pieces_.rank(piece);
    return r == k_no_rank ? unk_id_ : int32_t(r);
}

int32_t sentencepiece::token_to_id(std::string_view piece) const {
    const auto it = reserved_.find(piece);
    if (it != reserved_.end()) return it->second;
    const uint32_t r = piece.empty() ? k_no_rank : pieces_.rank(piece);
    return r == k_no_rank ? -1 : int32_t(r);
}

bool sentencepiece::id_to_token(int32_t id, std::string_view &out) const {
    if (id < 0 || size_t(id) >= model_.pieces.size()) return false;
    out = model_.pieces[size_t(id)].text;
    return true;
}

size_t sentencepiece::match_user_defined(std::string_view s) const {
    if (user_defined_.empty() || s.empty() || user_defined_first_bytes_.find(s[0]) == std::string::npos) return 0;
    for (size_t len : user_defined_lengths_) {
        if (len > s.size()) continue;
        const uint32_t r = pieces_.rank(s.substr(0, len));
        if (r != k_no_rank && model_.pieces[r].type == spm_type::user_defined) return len;
    }
    return 0;
}

std::string sentencepiece::normalize(std::string_view input) const { return normalize(input, nullptr); }

// As sentencepiece's Normalizer::Normalize, including its norm_to_orig map:
// each output byte maps to the input offset of the unit it came from (the
// dummy prefix to the first kept unit), and one more entry maps the end.
std::string sentencepiece::normalize(std::string_view input, std::vector<size_t> *norm_to_orig) const {
    std::string out;
    size_t consumed = 0;
    auto put = [&](std::string_view bytes) {
        out += bytes;
        if (norm_to_orig) norm_to_orig->insert(norm_to_orig->end(), bytes.size(), consumed);
    };
    // One normalized unit at the start of s: a user-defined piece as it is,
    // the charsmap's replacement, or one character (U+FFFD for one malformed byte).
    auto next_unit = [&](std::string_view s, std::string_view &unit) -> size_t {
        if (const size_t u = match_user_defined(s)) {
            unit = s.substr(0, u);
            return u;
        }
        if (charsmap_) {
            std::string_view rep;
            if (const size_t m = charsmap_->longest_prefix(s, rep)) {
                unit = rep;
                return m;
            }
        }
        const size_t len = valid_char_len(s);
        if (len == 0) {
            unit = k_replacement_char;
            return 1;
        }
        unit = s.substr(0, len);
        return len;
    };
    const bool remove_ws = model_.remove_extra_whitespaces;
    std::string_view unit;
    if (remove_ws) {  // leading spaces go
        while (!input.empty()) {
            const size_t used = next_unit(input, unit);
            if (unit != " ") break;
            input.remove_prefix(used);
            consumed += used;
        }
    }
    if (input.empty()) {
        if (norm_to_orig) norm_to_orig->push_back(consumed);
        return out;
    }
    out.reserve(input.size() + input.size() / 2 + 3);
    const std::string_view space = model_.escape_whitespaces ? k_space_symbol : std::string_view(" ");
    if (!model_.treat_whitespace_as_suffix && model_.add_dummy_prefix) put(space);
    bool prev_space = remove_ws;
    while (!input.empty()) {
        // A run of bytes that are each their own unit, unchanged: plain
        // bytes each followed by ASCII or the end.
        size_t run = 0;
        while (run < input.size() && static_cast<unsigned char>(input[run]) < 0x80 &&
               plain_ascii_[static_cast<unsigned char>(input[run])] &&
               (run + 1 == input.size() || static_cast<unsigned char>(input[run + 1]) < 0x80))
            ++run;
        if (run > 0) {
            out.append(input.data(), run);
            if (norm_to_orig)
                for (size_t i = 0; i < run; ++i) norm_to_orig->push_back(consumed + i);
            input.remove_prefix(run);
            consumed += run;
            prev_space = false;
            continue;
        }
        const size_t used = next_unit(input, unit);
        if (prev_space)
            while (!unit.empty() && unit[0] == ' ') unit.remove_prefix(1);
        if (!unit.empty()) {
            for (size_t i = 0; i < unit.size(); ++i) {
                if (unit[i] == ' ' && model_.escape_whitespaces)
                    put(k_space_symbol);
                else
                    put(unit.substr(i, 1));
            }
            prev_space = unit.back() == ' ';
        }
        input.remove_prefix(used);
        consumed += used;
        if (!remove_ws) prev_space = false;
    }
    if (remove_ws) {  // trailing spaces go; the end then maps to where they began
        while (out.size() >= space.size() && out.compare(out.size() - space.size(), space.size(), space) == 0) {
            out.resize(out.size() - space.size());
            if (norm_to_orig) {
                consumed = (*norm_to_orig)[out.size()];
                norm_to_orig->resize(out.size());
            }
        }
    }
    if (model_.treat_whitespace_as_suffix && model_.add_dummy_prefix) put(space);
    if (norm_to_orig) norm_to_orig->push_back(consumed);
    return out;
}

void sentencepiece::emit(std::string_view piece, int32_t id, std::vector<int32_t> &out, const span_sink *sink) const {
    if (id == unk_id_ && model_.byte_fallback) {
        for (unsigned char b : piece) out.push_back(byte_ids_[b]);
    } else {
        out.push_back(id);
    }
    if (!sink) return;
    // piece is a view into the normalized text. As in sentencepiece, the byte
    // pieces of one character are empty spans at its start but the last,
    // which covers the whole character.
    const size_t begin = size_t(piece.data() - sink->base), end = begin + piece.size();
    if (id == unk_id_ && model_.byte_fallback) {
        for (size_t i = 0; i + 1 < piece.size(); ++i) sink->spans->emplace_back(begin, begin);
        if (piece.empty()) return;
    }
    sink->spans->emplace_back(begin, end);
}

// BPE exactly as sentencepiece's bpe_model.cc: every character (or whole
// user-defined piece, which never merges) starts as a symbol; repeatedly the
// adjacent pair whose concatenation is a piece with the highest score is
// merged, the leftmost among equal scores. Merging into an unused piece is
// allowed and undone at the end by splitting it back along the merge that
// made it.
void sentencepiece::encode_bpe_segment(std::string_view text, std::vector<int32_t> &out, const span_sink *sink) const {
    struct symbol {
        int32_t prev, next;
        bool frozen;
        uint32_t begin, len;  // bytes in text; len 0 = merged away
    };
    std::vector<symbol> symbols;
    symbols.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        size_t len = match_user_defined(text.substr(pos));
        const bool frozen = len != 0;
        if (!frozen) len = std::min(one_char_len(static_cast<unsigned char>(text[pos])), text.size() - pos);
        const auto index = int32_t(symbols.size());
        symbols.push_back({index - 1, pos + len < text.size() ? index + 1 : -1, frozen, uint32_t(pos), uint32_t(len)});
        pos += len;
    }
    if (symbols.empty()) return;

    struct candidate {
        float score;
        int32_t left, right;
        uint32_t size;
    };
    // Highest score first, then the leftmost.
    auto worse = [](const candidate &a, const candidate &b) {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<candidate, std::vector<candidate>, decltype(worse)> agenda(worse);
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
    auto view = [&](const symbol &s) { return text.substr(s.begin, s.len); };
    auto add_pair = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0 || symbols[size_t(left)].frozen || symbols[size_t(right)].frozen) return;
        const symbol &l = symbols[size_t(left)], &r = symbols[size_t(right)];
        const std::string_view merged = text.substr(l.begin, l.len + r.len);
        const uint32_t id = pieces_.rank(merged);
        if (id == k_no_rank) return;
        agenda.push({model_.pieces[id].score, left, right, uint32_t(merged.size())});
        if (model_.pieces[id].type == spm_type::unused) rev_merge[merged] = {view(l), view(r)};
    };
    for (size_t i = 1; i < symbols.size(); ++i) add_pair(int32_t(i - 1), int32_t(i));
    while (!agenda.empty()) {
        const candidate top = agenda.top();
        agenda.pop();
        symbol &l = symbols[size_t(top.left)];
        symbol &r = symbols[size_t(top.right)];
        if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;  // stale
        l.len += r.len;
        l.next = r.next;
        if (r.next >= 0) symbols[size_t(r.next)].prev = top.left;
        r.len = 0;
        add_pair(l.prev, top.left);
        add_pair(top.left, l.next);
    }
    // Unused pieces are split back recursively into the pieces they were merged from.
    auto resegment = [&](auto &self, std::string_view w) -> void {
        const int32_t id = piece_to_id(w);
        if (has_unused_ && model_.pieces[size_t(id)].type == spm_type::unused) {
            const auto it = rev_merge.find(w);
            if (it != rev_merge.end()) {  // split w itself (not the stored views: offsets need w's position)
                const size_t left = it->second.first.size();
                self(self, w.substr(0, left));
                self(self, w.substr(left));
                return;
            }
        }
        emit(w, id, out, sink);
    };
    for (int32_t i = 0; i != -1; i = symbols[size_t(i)].next) resegment(resegment, view(symbols[size_t(i)]));
}

void sentencepiece::encode_bpe(std::string_view text, std::vector<int32_t> &out, const span_sink *sink) const {
    if (!split_words_) {
        encode_bpe_segment(text, out, sink);
        return;
    }
    spm_word_cache &cache = this_thread_word_cache();
    std::vector<int32_t> word_ids;
    // A word ends before each "▁" that follows another character.
    size_t begin = 0;
    while (begin < text.size()) {
        size_t end = begin;
        while (end < text.size() && text.compare(end, 3, k_space_symbol) == 0) end += 3;
        for (;;) {
            end = text.find(k_space_symbol, end);
            if (end == std::string_view::npos) {
                end = text.size();
                break;
            }
            if (end > begin && (end < 3 || text.compare(end - 3, 3, k_space_symbol) != 0)) break;
            end += 3;
        }
        const std::string_view word = text.substr(begin, end - begin);
        begin = end;
        if (word.size() > spm_word_cache::k_max_bytes || sink) {  // the cache keeps ids, not spans
            encode_bpe_segment(word, out, sink);
            continue;
        }
        spm_word_cache::entry &e = cache.entries[hash_bytes(word) & (spm_word_cache::k_entries - 1)];
        if (e.owner == cache_owner_ && e.len == word.size() && std::memcmp(e.bytes, word.data(), word.size()) == 0) {
            out.insert(out.end(), e.ids, e.ids + e.count);
            continue;
        }
        word_ids.clear();
        encode_bpe_segment(word, word_ids, nullptr);
        out.insert(out.end(), word_ids.begin(), word_ids.end());
        if (word_ids.size() <= spm_word_cache::k_max_ids) {
            e.owner = cache_owner_;
            e.len = uint8_t(word.size());
            e.count = uint8_t(word_ids.size());
            std::memcpy(e.bytes, word.data(), word.size());
            std::copy(word_ids.begin(), word_ids.end(), e.ids);
        }
    }
}

// Unigram exactly as sentencepiece's optimized Viterbi (unigram_model.cc,
// EncodeOptimized, as of sentencepiece 0.2.2): at each character start, every
// piece that begins there proposes a path to its end with the piece's score
// added (a user-defined piece of n bytes gets float(0.1 * (n - 1)), above
// every log probability, so it always wins); a character no piece of its own
// length covers gets the unknown piece at min_score - 10. Ties keep the
// earlier proposal. Path scores are float sums, as the reference's are, so
// that near-ties (a + b + c in another order) break the same way; and, as
// there, once the score a proposal starts from is beyond +-100000 (about
// ten thousand pieces), it is subtracted from every score from there to the
// furthest end proposed so far, which changes the roundings after it.
// (sentencepiece 0.2.1 and earlier gave user-defined pieces
// n * max_score - 0.1, summed in double: exact ties next to one, such as
// "@@" + "@" against "@" + "@@", then break differently.)
void sentencepiece::encode_unigram(std::string_view text, std::vector<int32_t> &out, const span_sink *sink) const {
    struct best_path {
        int32_t id = -1;
        float score = 0;
        int64_t starts_at = -1;
    };
    const size_t size = text.size();
    const float unk_score = min_score_ - 10.0f;
    // Reused per thread (up to a 1M-byte text, see the end): a long text's
    // array, freshly mapped each call, cost its page faults (a tenth of a
    // 127 KB encode).
    thread_local std::vector<best_path> best;
    best.assign(size + 1, best_path{});
    const auto *bytes = reinterpret_cast<const unsigned char *>(text.data());
    constexpr float k_reset = 100000.0f;
    size_t frontier = 0;  // the furthest end proposed so far
    for (size_t start = 0; start < size;) {
        float here = best[start].score;
        if (here < -k_reset || here > k_reset) {
            const float offset = here;
            for (size_t i = start; i <= frontier; ++i)
                if (i == start || best[i].starts_at != -1) best[i].score -= offset;
            here = 0.0f;
        }
        const size_t mblen = std::min(one_char_len(bytes[start]), size - start);
        bool has_single = false;
        const trie_slot *trie = trie_.data();
        const size_t n_slots = trie_.size();
        uint32_t node = 0;
        for (size_t key = start; key < size;) {
            const size_t next = size_t(int64_t(trie[node].base) + bytes[key]);
            if (next >= n_slots || trie[next].check != int32_t(node)) break;
            node = uint32_t(next);
            ++key;
            const int32_t id = trie[node].id;
            if (id < 0) continue;
            const size_t length = key - start;
            frontier = std::max(frontier, key);
            const float candidate = trie[node].score + here;
            best_path &target = best[key];
            if (target.starts_at == -1 || candidate > target.score) {
                target.score = candidate;
                target.starts_at = int64_t(start);
                target.id = id;
            }
            if (!has_single && length == mblen) has_single = true;
        }
        if (!has_single) {
            frontier = std::max(frontier, start + mblen);
            best_path &target = best[start + mblen];
            const float candidate = unk_score + here;
            if (target.starts_at == -1 || candidate > target.score) {
                target.score = candidate;
                target.starts_at = int64_t(start);
                target.id = unk_id_;
            }
        }
        start += mblen;
    }
    std::vector<std::pair<size_t, size_t>> path;  // (start, end) from the end back
    for (size_t end = size; end > 0;) {
        const auto start = size_t(best[end].starts_at);
        path.emplace_back(start, end);
        end = start;
    }
    for (auto it = path.rbegin(); it != path.rend(); ++it)
        emit(text.substr(it->first, it->second - it->first), best[it->second].id, out, sink);
    // A huge text's array is not kept for the rest of the thread's life.
    constexpr size_t k_keep_entries = size_t(1) << 20;  // 16 MiB
    if (best.capacity() > k_keep_entries) std::vector<best_path>().swap(best);
}

void sentencepiece::encode_normalized(std::string_view normalized, std::vector<int32_t> &out,
                                      const span_sink *sink) const {
    if (normalized.empty()) return;
    const size_t first = out.size(), first_span = sink ? sink->spans->size() : 0;
    if (model_.algo == spm_model::algorithm::bpe)
        encode_bpe(normalized, out, sink);
    else
        encode_unigram(normalized, out, sink);
    // Without byte fallback, a run of unknown pieces is reported as one
    // <unk>, as sentencepiece does (so that decoding gives one unk surface),
    // whose span covers the run.
    if (!model_.byte_fallback) {
        size_t w = first;
        for (size_t r = first; r < out.size(); ++r) {
            const bool joins = out[r] == unk_id_ && w > first && out[w - 1] == unk_id_;
            if (sink) {
                auto &sp = *sink->spans;
                if (joins)
                    sp[first_span + (w - 1 - first)].second = sp[first_span + (r - first)].second;
                else
                    sp[first_span + (w - first)] = sp[first_span + (r - first)];
            }
            if (!joins) out[w++] = out[r];
        }
        out.resize(w);
        if (sink) sink->spans->resize(first_span + (w - first));
    }
}

void sentencepiece::encode_plain(std::string_view text, size_t offset, std::vector<int32_t> &out,
                                 std::vector<std::pair<size_t, size_t>> *spans) const {
    if (!spans) {
        encode_normalized(normalize(text, nullptr), out, nullptr);
        return;
    }
    // Segment with spans in the normalized text, then map them back to text.
    std::vector<size_t> norm_to_orig;
    const std::string normalized = normalize(text, &norm_to_orig);
    std::vector<std::pair<size_t, size_t>> norm_spans;
    const span_sink sink{normalized.data(), &norm_spans};
    encode_normalized(normalized, out, &sink);
    for (const auto &[b, e] : norm_spans) spans->emplace_back(offset + norm_to_orig[b], offset + norm_to_orig[e]);
}

void sentencepiece::encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const {
    const bool add = options.add_special_tokens;
    encode(text, options, add && model_.add_bos, add && model_.add_eos, out);
}

void sentencepiece::encode(std::string_view text, const encode_options &options, bool add_bos, bool add_eos,
                           std::vector<int32_t> &out) const {
    encode_spans(text, options, add_bos, add_eos, out, nullptr);
}

// Offsets as sentencepiece's SentencePieceText gives them (begin/end of each
// piece in the input), plus: BOS is the empty span at 0, EOS the empty span at
// the end, an allowed special token its own text.
void sentencepiece::encode_with_offsets(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                                        std::vector<std::pair<size_t, size_t>> &spans) const {
    const bool add = options.add_special_tokens;
    const size_t first_id = ids.size(), first_span = spans.size();
    encode_spans(text, options, add && model_.add_bos, add && model_.add_eos, ids, &spans);
    if (ids.size() - first_id != spans.size() - first_span)
        core::fail(LLMKIT_ERROR_INTERNAL, "offsets: ", ids.size() - first_id, " ids but ", spans.size() - first_span,
                   " spans");
}

// BOS the empty span at 0, EOS the empty span at the end, as encode_with_offsets gives them.
void sentencepiece::add_sequence_specials(encoding &e, int32_t sequence, size_t text_len) const {
    if (model_.add_bos && model_.bos_id >= 0) {
        e.ids.insert(e.ids.begin(), model_.bos_id);
        e.type_ids.insert(e.type_ids.begin(), sequence);
        e.sequence_ids.insert(e.sequence_ids.begin(), -1);
        if (e.has_spans) e.spans.insert(e.spans.begin(), {0, 0});
    }
    if (model_.add_eos && model_.eos_id >= 0) {
        e.ids.push_back(model_.eos_id);
        e.type_ids.push_back(sequence);
        e.sequence_ids.push_back(-1);
        // An added token's span is empty at 0, as in every kind's pairs (it
        // belongs to no text); encode_with_offsets of one text puts EOS at
        // the end, as sentencepiece does.
        if (e.has_spans) e.spans.emplace_back(0, 0);
    }
}

void sentencepiece::encode_spans(std::string_view text, const encode_options &options, bool add_bos, bool add_eos,
                                 std::vector<int32_t> &out, std::vector<std::pair<size_t, size_t>> *spans) const {
    if (add_bos && model_.bos_id >= 0) {
        out.push_back(model_.bos_id);
        if (spans) spans->emplace_back(0, 0);
    }
    // Allowed control pieces split the text; each fragment is normalized on its own.
    std::vector<std::pair<std::string_view, int32_t>> allowed;
    if (options.allow_all_special) {
        allowed = controls_;
    } else {
        for (std::string_view name : options.allowed_special) {
            const auto it = std::find_if(controls_.begin(), controls_.end(),
                                         [&](const auto &c) { return c.first == name; });
            if (it == controls_.end())
                core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "allowed special token \"", name,
                           "\" is not a special token of this tokenizer");
            allowed.push_back(*it);
        }
    }
    // Longest first, so that the leftmost-longest special token is found.
    std::sort(allowed.begin(), allowed.end(),
              [](const auto &a, const auto &b) { return a.first.size() > b.first.size(); });
    size_t start = 0;
    if (!allowed.empty()) {
        for (size_t pos = 0; pos < text.size();) {
            const auto it = std::find_if(allowed.begin(), allowed.end(), [&](const auto &c) {
                return text.compare(pos, c.first.size(), c.first) == 0;
            });
            if (it == allowed.end()) {
                ++pos;
                continue;
            }
            encode_plain(text.substr(start, pos - start), start, out, spans);
            out.push_back(it->second);
            if (spans) spans->emplace_back(pos, pos + it->first.size());
            pos += it->first.size();
            start = pos;
        }
    }
    encode_plain(text.substr(start), start, out, spans);
    if (add_eos && model_.eos_id >= 0) {
        out.push_back(model_.eos_id);
        if (spans) spans->emplace_back(text.size(), text.size());
    }
}

void sentencepiece::decode(const int32_t *ids, size_t n, std::string &out) const {
    const size_t n_pieces = model_.pieces.size();
    std::string bytes;  // a run of byte pieces, turned into text at its end
    bool at_start = true;  // no visible text yet: a leading "▁" is the dummy prefix
    auto flush_bytes = [&] {
        if (bytes.empty()) return;
        // Each byte of a malformed sequence becomes U+FFFD, as sentencepiece does.
        std::string_view s = bytes;
        while (!s.empty()) {
            const size_t len = valid_char_len(s);
            if (len == 0) {
                out += k_replacement_char;
                s.remove_prefix(1);
            } else {
                out.append(s.data(), len);
                s.remove_prefix(len);
            }
        }
        bytes.clear();
        at_start = false;
    };
    for (size_t i = 0; i < n; ++i) {
        const int32_t id = ids[i];
        if (id < 0 || size_t(id) >= n_pieces)
            core::fail(LLMKIT_ERROR_OUT_OF_RANGE, "ids[", i, "] = ", id, " is not a token id (vocabulary size ",
                       n_pieces, ")");
        const spm_piece &p = model_.pieces[size_t(id)];
        if (p.type == spm_type::byte) {
            bytes += char(byte_of_piece(p.text));
            continue;
        }
        flush_bytes();
        if (p.type == spm_type::control) continue;
        if (p.type == spm_type::unknown) {
            out += model_.unk_surface;
            at_start = false;
            continue;
        }
        std::string_view piece = p.text;
        if (at_start && (model_.add_dummy_prefix || model_.remove_extra_whitespaces) &&
            !model_.treat_whitespace_as_suffix && piece.substr(0, 3) == k_space_symbol)
            piece.remove_prefix(3);
        for (size_t at = 0; at < piece.size();) {
            if (piece.compare(at, 3, k_space_symbol) == 0) {
                out += ' ';
                at += 3;
            } else {
                out += piece[at++];
            }
        }
        at_start = false;
    }
    flush_bytes();
}

}  // namespace llmkit::tok
