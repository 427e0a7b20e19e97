#include "tokenizer/hf_models.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <queue>

#include "core/error.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace llmkit::tok {

namespace {

constexpr int32_t k_max_id = 1 << 24;  // ids index tables: bound what a hostile file can ask for

std::string byte_token(unsigned b) {
    static const char hex[] = "0123456789ABCDEF";
    return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
}

void find_byte_tokens(const vocab_table &vocab, int32_t (&ids)[256]) {
    for (unsigned b = 0; b < 256; ++b) ids[b] = vocab.id(byte_token(b));
}

}  // namespace

vocab_table::vocab_table(std::vector<std::pair<std::string, int32_t>> entries, const std::string &source,
                         bool duplicate_tokens_last_wins) {
    int32_t end = 0;
    for (const auto &e : entries) {
        if (e.second < 0 || e.second >= k_max_id)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": token \"", e.first, "\" has id ", e.second,
                       ", outside [0, 16777216)");
        end = std::max(end, e.second + 1);
    }
    by_id_.resize(size_t(end));
    present_.assign(size_t(end), false);
    for (auto &e : entries) {
        if (present_[size_t(e.second)])
            core::fail(LLMKIT_ERROR_FORMAT, source, ": id ", e.second, " is given to both \"", by_id_[size_t(e.second)],
                       "\" and \"", e.first, "\"");
        present_[size_t(e.second)] = true;
        by_id_[size_t(e.second)] = std::move(e.first);
    }
    size_t cap = 16;
    while (cap < 2 * entries.size()) cap *= 2;
    slots_.assign(cap, slot{0, -1});
    mask_ = cap - 1;
    for (size_t i = 0; i < by_id_.size(); ++i) {
        if (!present_[i]) continue;
        const uint64_t h = std::hash<std::string_view>()(by_id_[i]);
        size_t k = size_t(h) & mask_;
        bool again = false;
        for (; slots_[k].id >= 0; k = (k + 1) & mask_) {
            if (slots_[k].hash != uint32_t(h >> 32) || by_id_[size_t(slots_[k].id)] != by_id_[i]) continue;
            if (!duplicate_tokens_last_wins)
                core::fail(LLMKIT_ERROR_FORMAT, source, ": token \"", by_id_[i], "\" appears twice");
            again = true;  // ids rise: this one is the last so far
            break;
        }
        slots_[k] = slot{uint32_t(h >> 32), int32_t(i)};
        count_ += !again;
    }
}

void subword_model::tokenize_spans(std::string_view, std::vector<int32_t> &, std::vector<span> &) const {
    core::fail(LLMKIT_ERROR_UNSUPPORTED, "offsets are not implemented for this subword model");
}

// ---------------------------------------------------------------- BPE

bpe_merges::bpe_merges(std::vector<std::pair<std::string, int32_t>> vocab,
                       const std::vector<std::pair<std::string_view, std::string_view>> &merges, bpe_options options,
                       const std::string &source)
    : options_(std::move(options)) {
    static std::atomic<uint64_t> next_id{1};
    id_ = next_id.fetch_add(1);
    vocab_ = vocab_table(std::move(vocab), source, options_.duplicate_tokens_last_wins);
    if (options_.unk_token) unk_id_ = vocab_.id(*options_.unk_token);  // a missing unk fails at encode time, as in HF
    find_byte_tokens(vocab_, byte_ids_);
    const size_t prefix_len = options_.continuing_subword_prefix ? options_.continuing_subword_prefix->size() : 0;
    merges_.reserve(merges.size());
    std::string joined;
    for (size_t i = 0; i < merges.size(); ++i) {
        const auto &[a, b] = merges[i];
        const int32_t ia = vocab_.id(a), ib = vocab_.id(b);
        if (ia < 0 || ib < 0)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": merges[", i, "] = \"", a, " ", b, "\": \"", ia < 0 ? a : b,
                       "\" is not in the vocab");
        if (b.size() < prefix_len)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": merges[", i, "]: \"", b,
                       "\" is shorter than the continuing_subword_prefix");
        joined.assign(a).append(b.substr(prefix_len));
        const int32_t id = vocab_.id(joined);
        if (id < 0)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": merges[", i, "]: the merged token \"", joined,
                       "\" is not in the vocab");
        if (i > std::numeric_limits<uint32_t>::max()) core::fail(LLMKIT_ERROR_FORMAT, source, ": too many merges");
        merges_.set(key(ia, ib), merge{uint32_t(i), id});
    }
}

void bpe_merges::merge_table::reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots_.assign(cap, slot{k_empty, merge{0, 0}});
    mask_ = cap - 1;
}

void bpe_merges::merge_table::set(uint64_t key, merge m) {
    for (size_t i = size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_;; i = (i + 1) & mask_) {
        slot &s = slots_[i];
        if (s.key == key || s.key == k_empty) {
            s = slot{key, m};
            return;
        }
    }
}

void bpe_merges::initial_symbols(std::string_view piece, std::vector<std::pair<int32_t, uint32_t>> &symbols) const {
    // HF's BPE::merge_word: one symbol per character (with prefix/suffix),
    // byte fallback, then unk; a pending (fused) unk is flushed before the next
    // known character only.
    int32_t pending_unk = -1;
    uint32_t pending_len = 0;
    std::string s;
    for (size_t i = 0; i < piece.size();) {
        const size_t n = std::min(uni::char_len(static_cast<unsigned char>(piece[i])), piece.size() - i);
        const bool first = i == 0, last = i + n == piece.size();
        std::string_view ch = piece.substr(i, n);
        if ((!first && options_.continuing_subword_prefix) || (last && options_.end_of_word_suffix)) {
            s.clear();
            if (!first && options_.continuing_subword_prefix) s += *options_.continuing_subword_prefix;
            s += ch;
            if (last && options_.end_of_word_suffix) s += *options_.end_of_word_suffix;
            ch = s;
        }
        i += n;
        const int32_t id = vocab_.id(ch);
        if (id >= 0) {
            if (pending_unk >= 0) {
                symbols.emplace_back(pending_unk, pending_len);
                pending_unk = -1;
            }
            symbols.emplace_back(id, uint32_t(n));
            continue;
        }
        if (options_.byte_fallback) {
            bool all = true;
            for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
            if (all) {
                for (char c : ch) symbols.emplace_back(byte_ids_[static_cast<unsigned char>(c)], 1u);
                continue;
            }
        }
        if (options_.unk_token) {
            if (unk_id_ < 0)
                // As in HF (UnkTokenOutOfVocabulary): the file loads, and only a text
                // that needs the unk fails, so this is the text's error, like WordLevel's.
                core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "BPE: \"", ch.substr(0, 8),
                           "\" is not in the vocab and the unk_token \"", *options_.unk_token, "\" is not either");
            if (pending_unk >= 0 && options_.fuse_unk) {
                pending_len += uint32_t(n);
            } else {
                if (pending_unk >= 0) symbols.emplace_back(pending_unk, pending_len);
                pending_unk = unk_id_;
                pending_len = uint32_t(n);
            }
        }
    }
    if (pending_unk >= 0) symbols.emplace_back(pending_unk, pending_len);
}

namespace {

// Each thread's memo of recently merged words (HF keeps a cache too): a
// direct-mapped table keyed by the model's process-unique id and the word.
struct word_cache {
    struct entry {
        uint64_t owner = 0;
        std::string word;
        std::vector<int32_t> ids;
        std::vector<uint32_t> lens;  // each id's byte length once the offsets path asked; else empty
    };
    static constexpr size_t k_slots = 4096;
    static constexpr size_t k_max_word = 64;  // longer words are rare and merged each time
    std::vector<entry> slots{k_slots};
};

// The entry of piece in this thread's memo for the model numbered owner:
// filled by fill(ids, lens or nullptr) unless it holds the piece already (with
// byte lengths, when need_lens). nullptr for a piece too long to keep.
template <typename Fill>
const word_cache::entry *cached_word(uint64_t owner, std::string_view piece, bool need_lens, Fill fill) {
    if (piece.size() > word_cache::k_max_word) return nullptr;
    thread_local word_cache cache;
    auto &e = cache.slots[(std::hash<std::string_view>()(piece) ^ (owner * 0x9E3779B97F4A7C15ull)) % word_cache::k_slots];
    const bool hit = e.owner == owner && e.word == piece;
    if (!hit || (need_lens && e.lens.size() != e.ids.size())) {
        e.owner = 0;  // invalid until filled (fill may throw)
        e.ids.clear();
        e.lens.clear();
        fill(e.ids, need_lens ? &e.lens : nullptr);
        e.owner = owner;
        e.word.assign(piece);
    }
    return &e;
}

}  // namespace

void bpe_merges::tokenize(std::string_view piece, std::vector<int32_t> &out) const {
    if (piece.empty()) return;
    const auto *e = cached_word(id_, piece, false, [&](std::vector<int32_t> &ids, std::vector<uint32_t> *) {
        merge_word<false>(piece, ids, nullptr);
    });
    if (e) out.insert(out.end(), e->ids.begin(), e->ids.end());
    else merge_word<false>(piece, out, nullptr);
}

void bpe_merges::tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const {
    if (piece.empty()) return;
    std::vector<uint32_t> own_lens;
    const std::vector<uint32_t> *lens = &own_lens;
    const size_t first = out.size();
    const auto *e = cached_word(id_, piece, true, [&](std::vector<int32_t> &ids, std::vector<uint32_t> *l) {
        merge_word<true>(piece, ids, l);
    });
    if (e) {
        out.insert(out.end(), e->ids.begin(), e->ids.end());
        lens = &e->lens;
    } else {
        merge_word<true>(piece, out, &own_lens);
    }
    size_t pos = 0;
    for (size_t i = first; i < out.size(); ++i) {
        const size_t len = (*lens)[i - first];
        spans.emplace_back(pos, pos + len);
        pos += len;
    }
}

template <bool Lens>
void bpe_merges::merge_word(std::string_view piece, std::vector<int32_t> &out, std::vector<uint32_t> *lens) const {
    if (options_.ignore_merges) {
        const int32_t id = vocab_.id(piece);
        if (id >= 0) {
            out.push_back(id);
            if constexpr (Lens) lens->push_back(uint32_t(piece.size()));
            return;
        }
    }
    thread_local std::vector<std::pair<int32_t, uint32_t>> initial;
    initial.clear();
    initial_symbols(piece, initial);
    const size_t n = initial.size();
    if (n == 0) return;  // every character unknown, and no unk_token: nothing (as HF)
    if (n == 1) {
        out.push_back(initial[0].first);
        if constexpr (Lens) lens->push_back(initial[0].second);
        return;
    }
    // Symbols' byte lengths, merged alongside (only when asked).
    thread_local std::vector<uint32_t> sym_len;
    if constexpr (Lens) {
        sym_len.resize(n);
        for (size_t i = 0; i < n; ++i) sym_len[i] = initial[i].second;
    }
    // HF's Word::merge_all: a heap of candidate merges ordered by (rank, position);
    // stale entries are recognised by the pair no longer mapping to new_id.
    struct symbol {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    struct candidate {
        uint32_t rank;
        uint32_t pos;
        int32_t new_id;
        bool operator<(const candidate &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    thread_local std::vector<symbol> sym;
    thread_local std::vector<candidate> heap_storage;
    sym.resize(n);
    for (size_t i = 0; i < n; ++i) sym[i] = {initial[i].first, int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1, true};
    heap_storage.clear();
    std::priority_queue<candidate, std::vector<candidate>> heap(std::less<candidate>(), std::move(heap_storage));
    auto push_pair = [&](int32_t pos) {
        const int32_t next = sym[size_t(pos)].next;
        if (next < 0) return;
        if (const merge *m = merges_.find(key(sym[size_t(pos)].id, sym[size_t(next)].id)))
            heap.push({m->rank, uint32_t(pos), m->new_id});
    };
    for (size_t i = 0; i + 1 < n; ++i) push_pair(int32_t(i));
    while (!heap.empty()) {
        const candidate top = heap.top();
        heap.pop();
        symbol &s = sym[top.pos];
        if (!s.alive || s.next < 0) continue;
        symbol &right = sym[size_t(s.next)];
        const merge *m = merges_.find(key(s.id, right.id));
        if (!m || m->new_id != top.new_id) continue;
        s.id = top.new_id;
        if constexpr (Lens) sym_len[top.pos] += sym_len[size_t(s.next)];
        right.alive = false;
        s.next = right.next;
        if (s.next >= 0) sym[size_t(s.next)].prev = int32_t(top.pos);
        if (s.prev >= 0) push_pair(s.prev);
        push_pair(int32_t(top.pos));
    }
    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) {
        out.push_back(sym[size_t(i)].id);
        if constexpr (Lens) lens->push_back(sym_len[size_t(i)]);
    }
}

// ---------------------------------------------------------------- WordLevel

word_level::word_level(std::vector<std::pair<std::string, int32_t>> vocab, std::string unk_token,
                       const std::string &source)
    : unk_token_(std::move(unk_token)) {
    vocab_ = vocab_table(std::move(vocab), source);
    unk_id_ = vocab_.id(unk_token_);
}

void word_level::tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const {
    tokenize(piece, out);
    spans.emplace_back(0, piece.size());
}

void word_level::tokenize(std::string_view piece, std::vector<int32_t> &out) const {
    const int32_t id = vocab_.id(piece);
    if (id >= 0) {
        out.push_back(id);
    } else if (unk_id_ >= 0) {
        out.push_back(unk_id_);
    } else {
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "WordLevel: \"", piece.substr(0, 40), "\" is not in the vocab and the unk_token \"",
                   unk_token_, "\" is not either");
    }
}

// ---------------------------------------------------------------- WordPiece

wordpiece::wordpiece(std::vector<std::pair<std::string, int32_t>> vocab, std::string unk_token,
                     std::string continuing_subword_prefix, size_t max_input_chars_per_word, const std::string &source)
    : prefix_(std::move(continuing_subword_prefix)), max_chars_(max_input_chars_per_word) {
    vocab_ = vocab_table(std::move(vocab), source);
    unk_id_ = vocab_.id(unk_token);
    if (unk_id_ < 0) core::fail(LLMKIT_ERROR_FORMAT, source, ": the unk_token \"", unk_token, "\" is not in the vocab");
}

void wordpiece::tokenize(std::string_view piece, std::vector<int32_t> &out) const { run<false>(piece, out, nullptr); }

void wordpiece::tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const {
    run<true>(piece, out, &spans);
}

template <bool Spans>
void wordpiece::run(std::string_view piece, std::vector<int32_t> &out, std::vector<span> *spans) const {
    if (uni::count_chars(piece) > max_chars_) {
        out.push_back(unk_id_);
        if constexpr (Spans) spans->emplace_back(0, piece.size());
        return;
    }
    const size_t mark = out.size();
    const size_t span_mark = Spans ? spans->size() : 0;
    std::string candidate;
    for (size_t start = 0; start < piece.size();) {
        size_t end = piece.size();
        int32_t found = -1;
        while (start < end) {
            std::string_view sub = piece.substr(start, end - start);
            if (start > 0) {
                candidate.assign(prefix_);
                candidate.append(sub);
                sub = candidate;
            }
            found = vocab_.id(sub);
            if (found >= 0) break;
            // Step back one character.
            do --end;
            while (end > start && (static_cast<unsigned char>(piece[end]) & 0xC0) == 0x80);
        }
        if (found < 0) {  // a word with an unmatched part is one unk
            out.resize(mark);
            out.push_back(unk_id_);
            if constexpr (Spans) {
                spans->resize(span_mark);
                spans->emplace_back(0, piece.size());
            }
            return;
        }
        out.push_back(found);
        if constexpr (Spans) spans->emplace_back(start, end);
        start = end;
    }
}

// ---------------------------------------------------------------- Unigram

unigram::unigram(const std::vector<std::pair<std::string, double>> &pieces, std::optional<int32_t> unk_id,
                 bool byte_fallback, const std::string &source)
    : unk_id_(unk_id), byte_fallback_(byte_fallback) {
    if (pieces.size() >= size_t(k_max_id)) core::fail(LLMKIT_ERROR_FORMAT, source, ": too many pieces");
    std::vector<std::pair<std::string, int32_t>> entries;
    entries.reserve(pieces.size());
    double min_score = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < pieces.size(); ++i) {
        if (!(pieces[i].second == pieces[i].second))
            core::fail(LLMKIT_ERROR_FORMAT, source, ": piece ", i, " has a NaN score");
        entries.emplace_back(pieces[i].first, int32_t(i));
        scores_.push_back(pieces[i].second);
        min_score = std::min(min_score, pieces[i].second);
        max_len_ = std::max(max_len_, pieces[i].first.size());
    }
    if (unk_id_ && (pieces.empty() || *unk_id_ < 0 || size_t(*unk_id_) >= pieces.size()))
        core::fail(LLMKIT_ERROR_FORMAT, source, ": unk_id ", *unk_id_, " is not a piece (", pieces.size(), " pieces)");
    vocab_ = vocab_table(std::move(entries), source);
    unk_score_ = min_score - 10.0;  // HF's (and SentencePiece's) kUnkPenalty
    find_byte_tokens(vocab_, byte_ids_);
}

void unigram::tokenize(std::string_view s, std::vector<int32_t> &out) const { run<false>(s, out, nullptr); }

void unigram::tokenize_spans(std::string_view s, std::vector<int32_t> &out, std::vector<span> &spans) const {
    run<true>(s, out, &spans);
}

template <bool Spans>
void unigram::run(std::string_view s, std::vector<int32_t> &out, std::vector<span> *out_spans) const {
    if (s.empty()) return;
    // best[e]: the best segmentation of s[0, e): its score, where its last piece starts, and that piece's id.
    struct node {
        double score;
        int64_t start;  // -1 = unreached
        int32_t id;
    };
    thread_local std::vector<node> best;
    best.assign(s.size() + 1, node{0.0, -1, -1});
    best[0].start = 0;
    for (size_t b = 0; b < s.size();) {
        const size_t mblen = std::min(uni::char_len(static_cast<unsigned char>(s[b])), s.size() - b);
        const double base = best[b].score;
        bool single = false;
        // Every vocab piece that starts here, shortest first (the order of HF's trie search).
        for (size_t e = b + mblen; e <= s.size() && e - b <= max_len_;) {
            const int32_t id = vocab_.id(s.substr(b, e - b));
            if (id >= 0) {
                const double cand = base + scores_[size_t(id)];
                node &t = best[e];
                if (t.start < 0 || cand > t.score) t = node{cand, int64_t(b), id};
                if (e - b == mblen) single = true;
            }
            if (e == s.size()) break;
            e += uni::char_len(static_cast<unsigned char>(s[e]));
        }
        if (!single) {
            if (!unk_id_)
                core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "the Unigram model has no unk_id and the text has a character (at byte ", b,
                           " of a piece) that no piece covers");
            node &t = best[b + mblen];
            const double cand = base + unk_score_;
            if (t.start < 0 || cand > t.score) t = node{cand, int64_t(b), *unk_id_};
        }
        b += mblen;
    }
    // Backtrack; consecutive unknowns fuse into one piece (HF's fuse_unk, always on for Unigram).
    thread_local std::vector<std::pair<size_t, size_t>> spans;  // reversed
    spans.clear();
    size_t fused_end = 0;
    bool in_unk = false;
    for (size_t e = s.size(); e > 0;) {
        const node &n = best[e];
        const size_t b = size_t(n.start);
        const bool unk = unk_id_ && n.id == *unk_id_;
        if (unk) {
            if (!in_unk) fused_end = e;
            in_unk = true;
        } else {
            if (in_unk) spans.emplace_back(e, fused_end);
            in_unk = false;
            spans.emplace_back(b, e);
        }
        e = b;
    }
    if (in_unk) spans.emplace_back(0, fused_end);
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const std::string_view piece = s.substr(it->first, it->second - it->first);
        const int32_t id = vocab_.id(piece);
        const size_t before = out.size();
        if (id >= 0) {
            out.push_back(id);
        } else {
            bool all = byte_fallback_;
            for (char c : piece) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
            if (all)
                for (char c : piece) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
            else
                out.push_back(*unk_id_);
        }
        if constexpr (Spans) out_spans->insert(out_spans->end(), out.size() - before, *it);
    }
}

}  // namespace llmkit::tok
