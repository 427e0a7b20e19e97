#include "tokenizer/train.hpp"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "core/threads.hpp"
#include "tokenizer/base64.hpp"

namespace llmkit::tok {

namespace {

using pair_key = uint64_t;  // left id << 32 | right id
pair_key key_of(uint32_t a, uint32_t b) { return uint64_t(a) << 32 | b; }

// The unique chunks of the corpus, numbered by first appearance, with counts.
struct word_table {
    std::vector<std::string_view> bytes;
    std::vector<uint64_t> count;
};

// One text's unique chunks in order of first appearance, with counts.
void split_text(const regex &re, std::string_view text, std::vector<std::pair<std::string_view, uint64_t>> &out) {
    std::unordered_map<std::string_view, size_t> index;
    re.for_each_match(text, [&](size_t b, size_t e) {
        const std::string_view piece = text.substr(b, e - b);
        const auto [it, fresh] = index.emplace(piece, out.size());
        if (fresh) out.emplace_back(piece, 0);
        ++out[it->second].second;
    });
}

word_table count_words(const std::vector<std::string_view> &texts, const regex &re, int n_threads) {
    for (size_t i = 0; i < texts.size(); ++i) {
        try {
            check_utf8(texts[i], "training text");
        } catch (const core::error &e) {
            core::fail(e.status(), "texts[", i, "]: ", e.what());
        }
    }
    // Texts split in parallel; merged in text order, so word numbers follow
    // first appearance in the whole corpus.
    std::vector<std::vector<std::pair<std::string_view, uint64_t>>> per_text(texts.size());
    core::parallel_for(int64_t(texts.size()), n_threads,
                       [&](int64_t i) { split_text(re, texts[size_t(i)], per_text[size_t(i)]); });
    word_table words;
    std::unordered_map<std::string_view, size_t> index;
    for (const auto &chunks : per_text) {
        for (const auto &[piece, n] : chunks) {
            const auto [it, fresh] = index.emplace(piece, words.bytes.size());
            if (fresh) {
                words.bytes.push_back(piece);
                words.count.push_back(0);
            }
            words.count[it->second] += n;
        }
    }
    return words;
}

struct pair_info {
    int64_t count = 0;                 // occurrences (overlapping) times word counts
    std::vector<uint32_t> words;       // ascending; may hold words that lost the pair
    size_t front = 0;                  // words before this one no longer hold the pair
};

// A heap entry: the pair's count and first occurrence when it was pushed.
// Counts of a pair only fall and its first occurrence only moves later (a
// merge makes a new id, so it never creates an occurrence of an existing
// pair), so an entry never ranks a pair lower than it is: popping, checking
// and re-pushing stale entries finds the true best pair.
struct candidate {
    int64_t count;
    uint32_t word, pos;  // first occurrence: word number, token index in it
    pair_key pair;
    bool operator<(const candidate &o) const {  // std::priority_queue pops the greatest
        if (count != o.count) return count < o.count;
        if (word != o.word) return word > o.word;
        return pos > o.pos;
    }
};

class trainer {
public:
    trainer(const word_table &words) : words_(words) {
        // Every word starts as its bytes.
        start_.reserve(words.bytes.size() + 1);
        for (std::string_view w : words.bytes) {
            start_.push_back(uint32_t(tokens_.size()));
            len_.push_back(uint32_t(w.size()));
            for (unsigned char c : w) tokens_.push_back(c);
        }
        for (uint32_t w = 0; w < words.bytes.size(); ++w) {
            const uint32_t *t = tokens_.data() + start_[w];
            for (uint32_t i = 0; i + 1 < len_[w]; ++i) {
                pair_info &p = pairs_[key_of(t[i], t[i + 1])];
                p.count += int64_t(words.count[w]);
                if (p.words.empty() || p.words.back() != w) p.words.push_back(w);
            }
        }
        for (auto &[k, p] : pairs_) push(k, p);
    }

    // The next pair to merge; false when none is left.
    bool best(pair_key &out) {
        while (!heap_.empty()) {
            const candidate c = heap_.top();
            heap_.pop();
            const auto it = pairs_.find(c.pair);
            if (it == pairs_.end() || it->second.count <= 0) continue;
            uint32_t w = 0, pos = 0;
            first_occurrence(c.pair, it->second, w, pos);
            if (it->second.count == c.count && w == c.word && pos == c.pos) {
                out = c.pair;
                return true;
            }
            heap_.push(candidate{it->second.count, w, pos, c.pair});
        }
        return false;
    }

    // Replaces the pair by `id` in every word that holds it, left to right
    // without overlap (minbpe's merge), and updates the counts.
    void merge(pair_key pair, uint32_t id) {
        const uint32_t a = uint32_t(pair >> 32), b = uint32_t(pair);
        std::vector<uint32_t> holders;  // the words that held the pair when it was counted
        size_t front = 0;
        {
            pair_info &info = pairs_[pair];
            holders.swap(info.words);
            front = info.front;
        }
        std::vector<pair_key> touched;
        for (size_t k = front; k < holders.size(); ++k) {
            const uint32_t w = holders[k];
            uint32_t *t = tokens_.data() + start_[w];
            const uint32_t n = len_[w];
            const auto freq = int64_t(words_.count[w]);
            bool found = false;
            for (uint32_t i = 0; i + 1 < n && !found; ++i) found = t[i] == a && t[i + 1] == b;
            if (!found) continue;
            for (uint32_t i = 0; i + 1 < n; ++i) add(key_of(t[i], t[i + 1]), -freq);
            uint32_t out = 0;
            for (uint32_t i = 0; i < n;) {
                if (i + 1 < n && t[i] == a && t[i + 1] == b) {
                    t[out++] = id;
                    i += 2;
                } else {
                    t[out++] = t[i++];
                }
            }
            len_[w] = out;
            for (uint32_t i = 0; i + 1 < out; ++i) {
                const pair_key q = key_of(t[i], t[i + 1]);
                pair_info &p = add(q, freq);
                if (t[i] == id || t[i + 1] == id) {
                    if (p.words.empty()) touched.push_back(q);
                    if (p.words.empty() || p.words.back() != w) p.words.push_back(w);
                }
            }
        }
        pairs_.erase(pair);  // its count is now zero
        for (pair_key q : touched) push(q, pairs_[q]);
    }

private:
    pair_info &add(pair_key q, int64_t delta) {
        pair_info &p = pairs_[q];
        p.count += delta;
        return p;
    }

    // The first word (in number order) that still holds the pair and the
    // pair's first token index there; drops the words before it.
    void first_occurrence(pair_key q, pair_info &p, uint32_t &word, uint32_t &pos) {
        const uint32_t a = uint32_t(q >> 32), b = uint32_t(q);
        for (; p.front < p.words.size(); ++p.front) {
            const uint32_t w = p.words[p.front];
            const uint32_t *t = tokens_.data() + start_[w];
            for (uint32_t i = 0; i + 1 < len_[w]; ++i) {
                if (t[i] == a && t[i + 1] == b) {
                    word = w;
                    pos = i;
                    return;
                }
            }
        }
        core::fail(LLMKIT_ERROR_INTERNAL, "BPE training: a pair with a positive count occurs nowhere");
    }

    void push(pair_key q, pair_info &p) {
        if (p.count <= 0) return;
        uint32_t w = 0, pos = 0;
        first_occurrence(q, p, w, pos);
        heap_.push(candidate{p.count, w, pos, q});
    }

    const word_table &words_;
    std::vector<uint32_t> tokens_;  // every word's current tokens, back to back (they only shrink)
    std::vector<uint32_t> start_, len_;
    std::unordered_map<pair_key, pair_info> pairs_;
    std::priority_queue<candidate> heap_;
};

}  // namespace

bpe_train_result train_bpe(const std::vector<std::string_view> &texts, const bpe_train_options &o) {
    if (o.vocab_size < 256)
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "vocab_size must be at least 256 (the single bytes), got ",
                   o.vocab_size);
    if (o.vocab_size + o.special_tokens.size() > size_t(INT32_MAX))
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "vocab_size ", o.vocab_size, " plus ", o.special_tokens.size(),
                   " special tokens does not fit int32 ids");
    if (o.n_threads < 0) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "n_threads must be >= 0, got ", o.n_threads);
    const regex re(rust_regex_to_pcre2(o.pattern), /*dollar_end_only=*/true);
    const word_table words = count_words(texts, re, o.n_threads);

    bpe_train_result r;
    std::vector<std::string> bytes_of(256);  // internal id -> bytes
    std::unordered_map<std::string, uint32_t> rank_of;
    for (int b = 0; b < 256; ++b) {
        bytes_of[size_t(b)] = std::string(1, char(b));
        rank_of.emplace(bytes_of[size_t(b)], uint32_t(b));
        r.ranks.emplace_back(bytes_of[size_t(b)], uint32_t(b));
    }
    trainer t(words);
    const size_t wanted = o.vocab_size - 256;
    pair_key pair = 0;
    while (r.ranks.size() < o.vocab_size && t.best(pair)) {
        const uint32_t id = uint32_t(bytes_of.size());
        const uint32_t a = uint32_t(pair >> 32), b = uint32_t(pair);
        t.merge(pair, id);
        bytes_of.push_back(bytes_of[a] + bytes_of[b]);
        const auto [it, fresh] = rank_of.emplace(bytes_of.back(), uint32_t(r.ranks.size()));
        if (fresh) r.ranks.emplace_back(bytes_of.back(), it->second);
        r.merges.emplace_back(a, b);
        r.merge_rank.push_back(it->second);
        if (o.progress && !o.progress(r.ranks.size() - 256, wanted))
            core::fail(LLMKIT_ERROR_CANCELLED, "BPE training cancelled by the progress callback after ",
                       r.merges.size(), " merges");
    }
    return r;
}

std::unique_ptr<byte_level_bpe> train_bpe_tokenizer(const std::vector<std::string_view> &texts,
                                                    const bpe_train_options &o) {
    // Special tokens are checked before the (long) training.
    std::unordered_set<std::string> seen;
    for (size_t i = 0; i < o.special_tokens.size(); ++i) {
        if (o.special_tokens[i].empty())
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "special_tokens[", i, "] is empty");
        if (!seen.insert(o.special_tokens[i]).second)
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "special token ", o.special_tokens[i], " is given twice");
    }
    bpe_train_result r = train_bpe(texts, o);
    std::vector<special_token> specials;
    const auto first = int32_t(r.ranks.size());
    for (size_t i = 0; i < o.special_tokens.size(); ++i)
        specials.push_back({o.special_tokens[i], first + int32_t(i)});
    return std::make_unique<byte_level_bpe>(std::move(r.ranks), rust_regex_to_pcre2(o.pattern), std::move(specials),
                                            "trained BPE");
}

// ---------------------------------------------------------------------------
// Saving.

namespace {

std::ofstream open_for_writing(const std::string &path) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) core::fail(LLMKIT_ERROR_IO, "cannot open ", path, " for writing");
    return f;
}

void finish(std::ofstream &f, const std::string &path) {
    f.flush();
    if (!f) core::fail(LLMKIT_ERROR_IO, "writing ", path, " failed");
}

}  // namespace

std::string tiktoken_text(const byte_level_bpe &tok) {
    const rank_table &ranks = tok.ranks();
    std::string out;
    std::string_view bytes;
    for (uint32_t r = 0; r < ranks.end_rank(); ++r) {
        if (!ranks.bytes(r, bytes)) continue;
        out += base64_encode(bytes);
        out += ' ';
        out += std::to_string(r);
        out += '\n';
    }
    return out;
}

void save_tiktoken(const byte_level_bpe &tok, const std::string &path) {
    std::ofstream f = open_for_writing(path);
    f << tiktoken_text(tok);
    finish(f, path);
}

}  // namespace llmkit::tok
