#include "tokenizer/hf_json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_set>

#include "core/error.hpp"
#include "core/file.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer/hf_unicode.hpp"
#include "tokenizer/sentencepiece.hpp"

namespace llmkit::tok {

using hf::json;

// ============================================================ added tokens

added_token_matcher::added_token_matcher(std::vector<std::string> patterns, std::vector<const added_token *> tokens)
    : patterns_(std::move(patterns)), tokens_(std::move(tokens)) {
    for (size_t i = 0; i < patterns_.size(); ++i) {
        const std::string &p = patterns_[i];
        if (p.empty() || !by_text_.emplace(p, i).second) continue;  // the first of equal patterns wins
        first_byte_[static_cast<unsigned char>(p[0])] = true;
        if (std::find(lengths_.begin(), lengths_.end(), p.size()) == lengths_.end()) lengths_.push_back(p.size());
    }
    std::sort(lengths_.rbegin(), lengths_.rend());
}

bool added_token_matcher::find(std::string_view s, size_t from, size_t &b, size_t &e, const added_token *&tok) const {
    if (by_text_.empty()) return false;
    for (size_t p = from; p < s.size(); ++p) {
        if (!first_byte_[static_cast<unsigned char>(s[p])]) continue;
        for (size_t len : lengths_) {
            if (len > s.size() - p) continue;
            const auto it = by_text_.find(s.substr(p, len));
            if (it != by_text_.end()) {
                b = p;
                e = p + len;
                tok = tokens_[it->second];
                return true;
            }
        }
    }
    return false;
}

namespace {

bool word_char(char32_t c) { return c == '_' || uni::is_alphanumeric(c); }

char32_t last_char(std::string_view s) {
    size_t p = s.size() - 1;
    while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    char32_t c;
    uni::decode(s, p, c);
    return c;
}

// Byte offset where the run of whitespace that ends s begins.
size_t space_leftmost_at_end(std::string_view s) {
    size_t e = s.size();
    while (e > 0) {
        size_t p = e - 1;
        while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
        char32_t c;
        uni::decode(s, p, c);
        if (!uni::is_whitespace(c)) break;
        e = p;
    }
    return e;
}

// Bytes of the run of whitespace that begins s.
size_t space_rightmost_at_start(std::string_view s) {
    size_t b = 0;
    while (b < s.size()) {
        char32_t c;
        const size_t n = uni::decode(s, b, c);
        if (!uni::is_whitespace(c)) break;
        b += n;
    }
    return b;
}

}  // namespace

template <typename Accept>
void added_token_matcher::split(std::string_view s, Accept &&accept, std::vector<span> &out) const {
    out.clear();
    size_t start_offset = 0, from = 0, b = 0, e = 0;
    const added_token *tok = nullptr;
    while (find(s, from, b, e, tok)) {
        from = e;  // the automaton resumes after every match, counted or not
        if (!accept(*tok, b)) continue;
        if (tok->single_word) {
            char32_t c;
            const bool start_space = b == 0 || !word_char(last_char(s.substr(0, b)));
            const bool stop_space = e == s.size() || (uni::decode(s, e, c), !word_char(c));
            if (!start_space || !stop_space) continue;
        }
        if (tok->lstrip) b = std::max(space_leftmost_at_end(s.substr(0, b)), start_offset);
        if (tok->rstrip) e += space_rightmost_at_start(s.substr(e));
        if (start_offset < b) out.push_back({start_offset, b, nullptr});
        out.push_back({b, e, tok});
        start_offset = e;
    }
    if (start_offset < s.size()) out.push_back({start_offset, s.size(), nullptr});
}

// ============================================================ models

namespace {

std::string child(const std::string &path, const std::string &key) { return path + "/" + key; }

int32_t vocab_id(const json &id, const std::string &p, const std::string &key) {
    if (!id.is_number_integer()) hf::bad(child(p, key), std::string("expected an id, got ") + id.type_name());
    const int64_t v = id.get<int64_t>();
    if (v < 0 || v >= (int64_t(1) << 24)) hf::bad(child(p, key), "id " + std::to_string(v) + " is outside [0, 16777216)");
    return int32_t(v);
}

// Which entries of `entries` to keep: of a key given more than once, only
// the last (as nlohmann's object keeps it).
std::vector<bool> last_of_each_key(const std::vector<std::pair<std::string, json>> &entries) {
    std::vector<bool> keep(entries.size(), true);
    size_t cap = 16;
    while (cap < 2 * entries.size()) cap *= 2;
    std::vector<uint32_t> slots(cap, 0);  // index + 1 of the latest entry with that key; 0 = empty
    for (size_t i = 0; i < entries.size(); ++i) {
        size_t k = std::hash<std::string_view>()(entries[i].first) & (cap - 1);
        for (; slots[k] != 0; k = (k + 1) & (cap - 1)) {
            if (entries[slots[k] - 1].first == entries[i].first) {
                keep[slots[k] - 1] = false;
                break;
            }
        }
        slots[k] = uint32_t(i + 1);
    }
    return keep;
}

// The {token: id} object at model/vocab, from `lists` when from_json took it
// out of the document (then in file order, not the object's key order).
std::vector<std::pair<std::string, int32_t>> vocab_object(const json &model, const std::string &path,
                                                          const hf_model_lists *lists) {
    const json &v = hf::member(model, "vocab", path);
    const std::string p = child(path, "vocab");
    if (!v.is_object()) hf::bad(p, std::string("expected an object {token: id}, got ") + v.type_name());
    std::vector<std::pair<std::string, int32_t>> out;
    if (lists && lists->has_vocab && v.empty()) {
        const std::vector<bool> keep = last_of_each_key(lists->vocab);
        out.reserve(lists->vocab.size());
        for (size_t i = 0; i < lists->vocab.size(); ++i)
            if (keep[i]) out.emplace_back(lists->vocab[i].first, vocab_id(lists->vocab[i].second, p, lists->vocab[i].first));
        return out;
    }
    out.reserve(v.size());
    for (auto it = v.begin(); it != v.end(); ++it) out.emplace_back(it.key(), vocab_id(*it, p, it.key()));
    return out;
}

std::optional<std::string> opt_string(const json &j, const char *key, const std::string &path) {
    std::string s;
    if (!hf::opt_str(j, key, path, s)) return std::nullopt;
    return s;
}

std::unique_ptr<subword_model> make_bpe(const json &m, const std::string &path, const hf_model_lists *lists) {
    const auto it = m.find("dropout");
    if (it != m.end() && !it->is_null()) {
        if (!it->is_number()) hf::bad(child(path, "dropout"), "expected a number or null");
        if (it->get<double>() > 0) hf::unsupported(child(path, "dropout"), "BPE dropout is not supported");
    }
    bpe_options o;
    o.unk_token = opt_string(m, "unk_token", path);
    o.fuse_unk = hf::boolean(m, "fuse_unk", path, false);
    o.byte_fallback = hf::boolean(m, "byte_fallback", path, false);
    o.continuing_subword_prefix = opt_string(m, "continuing_subword_prefix", path);
    o.end_of_word_suffix = opt_string(m, "end_of_word_suffix", path);
    o.ignore_merges = hf::boolean(m, "ignore_merges", path, false);
    const json &merges = hf::member(m, "merges", path);
    const std::string mp = child(path, "merges");
    if (!merges.is_array()) hf::bad(mp, std::string("expected an array, got ") + merges.type_name());
    const bool taken = lists && lists->has_merges && merges.empty();
    const size_t n_merges = taken ? lists->merges.size() : merges.size();
    // Views into the document (or `lists`), which outlive the model's construction.
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    pairs.reserve(n_merges);
    for (size_t i = 0; i < n_merges; ++i) {
        const json &x = taken ? lists->merges[i] : merges[i];
        if (x.is_string()) {  // "a b"
            const std::string_view s = x.get_ref<const std::string &>();
            const size_t sp = s.find(' ');
            if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
                hf::bad(child(mp, std::to_string(i)),
                        "a merge is \"left right\" (two tokens, one space), got \"" + std::string(s) + "\"");
            pairs.emplace_back(s.substr(0, sp), s.substr(sp + 1));
        } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {  // ["a", "b"]
            pairs.emplace_back(x[0].get_ref<const std::string &>(), x[1].get_ref<const std::string &>());
        } else {
            hf::bad(child(mp, std::to_string(i)), "a merge is \"left right\" or [left, right]");
        }
    }
    return std::make_unique<bpe_merges>(vocab_object(m, path, lists), pairs, std::move(o), "at " + path);
}

std::unique_ptr<subword_model> make_wordpiece(const json &m, const std::string &path, const hf_model_lists *lists) {
    std::string unk = "[UNK]", prefix = "##";
    hf::opt_str(m, "unk_token", path, unk);
    hf::opt_str(m, "continuing_subword_prefix", path, prefix);
    const uint64_t max_chars = hf::uint(m, "max_input_chars_per_word", path, 100, uint64_t(1) << 40);
    return std::make_unique<wordpiece>(vocab_object(m, path, lists), unk, prefix, size_t(max_chars), "at " + path);
}

std::unique_ptr<subword_model> make_word_level(const json &m, const std::string &path, const hf_model_lists *lists) {
    std::string unk = "<unk>";
    hf::opt_str(m, "unk_token", path, unk);
    return std::make_unique<word_level>(vocab_object(m, path, lists), unk, "at " + path);
}

// tokenizers reads the scores with serde_json's default float parsing, which
// is not correctly rounded: all the digits as one integer, then one
// multiplication or division by a power of ten (f64_from_parts). About one
// score in eleven of a trained vocabulary comes out 1 ulp away from the
// correctly rounded value nlohmann reads, and that is enough for Viterbi to
// break a near tie the other way. The file's digits are the shortest
// round-trip digits of the correctly rounded value (what serde_json and
// Python write), so to_chars recovers them and they are read again serde's way.
double as_serde_json_reads(double v) {
    if (!std::isfinite(v) || v == 0) return v;
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(v), std::chars_format::scientific);
    uint64_t significand = 0;  // d.ddd...e±x: every digit, and the exponent of the last one
    int fraction_digits = 0;
    const char *p = buf;
    for (bool fraction = false; p < r.ptr && *p != 'e'; ++p) {
        if (*p == '.') {
            fraction = true;
            continue;
        }
        significand = significand * 10 + uint64_t(*p - '0');
        fraction_digits += fraction;
    }
    int exponent = 0;  // to_chars writes no NUL: read the exponent within [p + 1, r.ptr)
    const char *e = p + 1 < r.ptr && p[1] == '+' ? p + 2 : p + 1;
    std::from_chars(e, r.ptr, exponent);
    exponent -= fraction_digits;
    static const std::vector<double> pow10 = [] {  // serde's POW10: the correctly rounded 1e0 .. 1e308
        std::vector<double> t(309);
        for (int k = 0; k <= 308; ++k) t[size_t(k)] = std::strtod(("1e" + std::to_string(k)).c_str(), nullptr);
        return t;
    }();
    double f = double(significand);
    while (std::abs(exponent) > 308) {  // only tiny values: serde divides by 1e308 first
        if (f == 0 || exponent > 0) break;
        f /= 1e308;
        exponent += 308;
    }
    if (std::abs(exponent) <= 308) f = exponent >= 0 ? f * pow10[size_t(exponent)] : f / pow10[size_t(-exponent)];
    return v < 0 ? -f : f;
}

std::unique_ptr<subword_model> make_unigram(const json &m, const std::string &path) {
    const json &v = hf::member(m, "vocab", path);
    const std::string vp = child(path, "vocab");
    if (!v.is_array()) hf::bad(vp, std::string("expected an array of [piece, score], got ") + v.type_name());
    std::vector<std::pair<std::string, double>> pieces;
    pieces.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        const json &x = v[i];
        if (!x.is_array() || x.size() != 2 || !x[0].is_string() || !x[1].is_number())
            hf::bad(child(vp, std::to_string(i)), "expected [piece, score]");
        const double score = x[1].get<double>();
        pieces.emplace_back(x[0].get<std::string>(), x[1].is_number_float() ? as_serde_json_reads(score) : score);
    }
    std::optional<int32_t> unk;
    const auto it = m.find("unk_id");
    if (it != m.end() && !it->is_null()) {
        if (!it->is_number_integer()) hf::bad(child(path, "unk_id"), "expected an id or null");
        const int64_t id = it->get<int64_t>();
        if (id < 0 || size_t(id) >= pieces.size())
            hf::bad(child(path, "unk_id"), "unk_id " + std::to_string(id) + " is not a piece of the vocab (" +
                                                std::to_string(pieces.size()) + " pieces)");
        unk = int32_t(id);
    }
    return std::make_unique<unigram>(pieces, unk, hf::boolean(m, "byte_fallback", path, false), "at " + path);
}

}  // namespace

std::unique_ptr<subword_model> make_hf_model(const json &m, const std::string &path, const hf_model_lists *lists) {
    std::string type = hf::type_of(m, path);
    if (type.empty()) {  // older files leave it out
        const auto v = m.find("vocab");
        if (m.contains("merges")) type = "BPE";
        else if (v != m.end() && v->is_array()) type = "Unigram";
        else if (m.contains("continuing_subword_prefix")) type = "WordPiece";
        else if (v != m.end() && v->is_object()) type = "WordLevel";
        else hf::bad(path, "the model has no \"type\" and its fields fit no known model");
    }
    if (type == "BPE") return make_bpe(m, path, lists);
    if (type == "WordPiece") return make_wordpiece(m, path, lists);
    if (type == "Unigram") return make_unigram(m, path);
    if (type == "WordLevel") return make_word_level(m, path, lists);
    hf::unsupported(path, "model type \"" + type + "\" is not supported (BPE, WordPiece, WordLevel and Unigram are)");
}

// ============================================================ the tokenizer

namespace {

// Nesting deeper than this is refused before parsing (it bounds recursion on hostile files).
constexpr size_t k_max_depth = 64;

void check_depth(std::string_view text, const std::string &source) {
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > k_max_depth)
                core::fail(LLMKIT_ERROR_FORMAT, source, ": JSON nested deeper than ", k_max_depth, " levels at byte ", i);
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
}

// Moves the entries of /model/vocab (an object) and /model/merges out of the
// document while nlohmann parses it (see hf_model_lists). nlohmann passes
// the number of open containers as `depth`: root keys come at 1, the model's
// keys at 2, the entries of its vocab and merges at 3. A repeated "vocab" or
// "merges" key starts its list afresh, as the repeat replaces the value in the
// document (a repeated "model" needs nothing more: what is read is only ever
// read through the last model's own "vocab" and "merges").
class model_list_taker {
public:
    explicit model_list_taker(hf_model_lists &lists) : lists_(lists) {}

    bool operator()(int depth, json::parse_event_t event, json &parsed) {
        using ev = json::parse_event_t;
        if (mode_ == mode::none) {
            if (event == ev::key && depth <= 2) {
                std::string &key = depth == 1 ? root_key_ : model_key_;
                key = parsed.get_ref<const std::string &>();
                if (depth == 1) model_key_.clear();
                if (depth == 2 && root_key_ == "model") {
                    if (key == "vocab") lists_.has_vocab = false, lists_.vocab.clear();
                    if (key == "merges") lists_.has_merges = false, lists_.merges.clear();
                }
            } else if (depth == 2 && root_key_ == "model") {
                if (event == ev::object_start && model_key_ == "vocab") mode_ = mode::vocab, lists_.has_vocab = true;
                if (event == ev::array_start && model_key_ == "merges") mode_ = mode::merges, lists_.has_merges = true;
            }
            return true;
        }
        if (depth == 2 && (event == ev::object_end || event == ev::array_end)) {  // the vocab or merges closes
            mode_ = mode::none;
            return true;
        }
        if (depth != 3) return true;  // inside an entry
        if (mode_ == mode::vocab) {
            switch (event) {
            case ev::key: pending_key_ = std::move(parsed.get_ref<std::string &>()); return false;
            case ev::value: lists_.vocab.emplace_back(std::move(pending_key_), std::move(parsed)); return false;
            // Not an id: its type is enough for the error; its content is dropped.
            case ev::object_start: lists_.vocab.emplace_back(std::move(pending_key_), json::object()); return false;
            case ev::array_start: lists_.vocab.emplace_back(std::move(pending_key_), json::array()); return false;
            default: return true;
            }
        }
        switch (event) {  // merges: a string, or an array or object built in the document, then moved out
        case ev::value:
        case ev::array_end:
        case ev::object_end: lists_.merges.push_back(std::move(parsed)); return false;
        default: return true;
        }
    }

private:
    enum class mode { none, vocab, merges };
    hf_model_lists &lists_;
    mode mode_ = mode::none;
    std::string root_key_, model_key_, pending_key_;
};

}  // namespace

std::unique_ptr<hf_tokenizer> hf_tokenizer::from_json(std::string_view text, const std::string &source) {
    check_depth(text, source);
    json root;
    hf_model_lists lists;
    try {
        model_list_taker taker(lists);
        root = json::parse(text.begin(), text.end(), std::ref(taker));
    } catch (const json::exception &e) {
        core::fail(LLMKIT_ERROR_FORMAT, source, ": invalid JSON: ", e.what());
    }
    return from_document(root, source, nullptr, &lists);
}

std::unique_ptr<hf_tokenizer> hf_tokenizer::from_document(const json &root, const std::string &source,
                                                         std::unique_ptr<subword_model> model,
                                                         const hf_model_lists *lists) {
    std::unique_ptr<hf_tokenizer> t(new hf_tokenizer());
    try {
        if (!root.is_object()) hf::bad("", std::string("expected a tokenizer.json object, got ") + root.type_name());
        auto get = [&](const char *key) -> const json & {
            static const json null_value;
            const auto it = root.find(key);
            return it == root.end() ? null_value : *it;
        };
        t->model_ = model ? std::move(model) : make_hf_model(hf::member(root, "model", ""), "/model", lists);
        t->normalizer_ = hf::make_normalizer(get("normalizer"), "/normalizer");
        t->pre_tokenizer_ = hf::make_pre_tokenizer(get("pre_tokenizer"), "/pre_tokenizer");
        t->post_processor_ = hf::make_post_processor(get("post_processor"), "/post_processor");
        t->decoder_ = hf::make_decoder(get("decoder"), "/decoder");

        const json &added = get("added_tokens");
        if (!added.is_null() && !added.is_array())
            hf::bad("/added_tokens", std::string("expected an array, got ") + added.type_name());
        std::vector<std::pair<int64_t, added_token>> parsed;  // (id in the file, token)
        for (size_t i = 0; i < added.size(); ++i) {
            const std::string p = "/added_tokens/" + std::to_string(i);
            const json &a = added[i];
            added_token tok;
            tok.content = hf::str(a, "content", p);
            const json &id = hf::member(a, "id", p);
            if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t(1) << 24))
                hf::bad(p + "/id", "expected an id in [0, 16777216)");
            tok.special = hf::boolean(a, "special", p, false);
            tok.lstrip = hf::boolean(a, "lstrip", p, false);
            tok.rstrip = hf::boolean(a, "rstrip", p, false);
            tok.normalized = hf::boolean(a, "normalized", p, !tok.special);
            tok.single_word = hf::boolean(a, "single_word", p, false);
            parsed.emplace_back(id.get<int64_t>(), std::move(tok));
        }
        // Ids as HF's AddedVocabulary gives them, which is not always the id in
        // the file: tokens are added in the order of those ids; one that is in
        // the model's vocab takes the model's id, any other the next free id.
        std::stable_sort(parsed.begin(), parsed.end(),
                         [](const auto &a, const auto &b) { return a.first < b.first; });
        const int64_t model_size = int64_t(t->model_->vocab().size());
        std::unordered_map<std::string, int32_t> id_of;      // content -> id
        std::map<int32_t, added_token> by_id;                 // id -> the token last given it
        std::unordered_set<std::string> special_set;
        std::vector<added_token> specials, plain;             // the matching order: special tokens first
        for (const auto &[file_id, tok] : parsed)
            if (tok.special && !tok.content.empty() && special_set.insert(tok.content).second) specials.push_back(tok);
        std::unordered_set<std::string> given;  // a token given again with the same flags is ignored
        for (auto &[file_id, tok] : parsed) {
            if (tok.content.empty()) continue;
            const std::string key = tok.content + char('0' + tok.special) + char('0' + tok.lstrip) +
                                    char('0' + tok.rstrip) + char('0' + tok.normalized) + char('0' + tok.single_word);
            if (!given.insert(key).second) continue;
            int32_t id;
            const auto known = id_of.find(tok.content);
            if (known != id_of.end()) {
                id = known->second;
            } else if ((id = t->model_->vocab().id(tok.content)) < 0) {
                int64_t next = model_size;
                if (!by_id.empty()) {
                    int32_t max_id = -1;
                    for (const auto &kv : id_of) max_id = std::max(max_id, kv.second);
                    if (max_id >= model_size || model_size == 0) next = int64_t(max_id) + 1;
                }
                if (next >= (int64_t(1) << 24)) hf::bad("/added_tokens", "too many added tokens");
                id = int32_t(next);
            }
            tok.id = id;
            id_of[tok.content] = id;
            by_id[id] = tok;
            if (!special_set.count(tok.content)) plain.push_back(tok);
        }
        int32_t end = t->model_->vocab().end_id();
        for (auto *list : {&specials, &plain})
            for (added_token &a : *list) {
                a.id = id_of.at(a.content);
                a.special = special_set.count(a.content) != 0;
                end = std::max(end, a.id + 1);
                t->added_.push_back(a);
            }
        for (size_t i = 0; i < t->added_.size(); ++i) t->added_by_text_.emplace(t->added_[i].content, i);
        for (const auto &[id, tok] : by_id) t->added_by_id_.emplace(id, t->added_by_text_.at(tok.content));
        // The tries of HF's AddedVocabulary: normalized tokens are matched in
        // the normalized text, by their normalized form.
        std::vector<std::string> raw_p, norm_p;
        std::vector<const added_token *> raw_t, norm_t;
        for (const added_token &a : t->added_) {
            if (a.normalized) {
                std::string s = a.content;
                if (t->normalizer_) t->normalizer_->normalize(s);
                norm_p.push_back(std::move(s));
                norm_t.push_back(&a);
            } else {
                raw_p.push_back(a.content);
                raw_t.push_back(&a);
            }
        }
        t->raw_matcher_ = added_token_matcher(std::move(raw_p), std::move(raw_t));
        t->normalized_matcher_ = added_token_matcher(std::move(norm_p), std::move(norm_t));
        t->vocab_size_ = end;
        if (t->post_processor_ && t->post_processor_->max_id() >= end)
            hf::bad("/post_processor", "it adds id " + std::to_string(t->post_processor_->max_id()) +
                                           ", outside the vocabulary (size " + std::to_string(end) + ")");
    } catch (const core::error &e) {
        core::fail(e.status(), source, ": ", e.what());
    } catch (const json::exception &e) {
        core::fail(LLMKIT_ERROR_FORMAT, source, ": ", e.what());
    }
    return t;
}

void hf_tokenizer::encode_text(std::string_view raw, bool at_origin, const std::vector<char> &allowed,
                               bool special_as_text, std::vector<int32_t> &out) const {
    std::string s(raw);
    if (normalizer_) normalizer_->normalize(s);
    std::vector<added_token_matcher::span> spans;
    split_at_added_tokens(normalized_matcher_, s, allowed, special_as_text, spans);
    std::vector<hf::piece> pieces;
    for (const auto &sp : spans) {
        if (sp.token) {
            out.push_back(sp.token->id);
            continue;
        }
        if (sp.e <= sp.b) continue;
        pieces.clear();
        pieces.push_back({s.substr(sp.b, sp.e - sp.b), at_origin && sp.b == 0});
        if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
        for (const auto &p : pieces)
            if (!p.text.empty()) model_->tokenize(p.text, out);
    }
}

std::vector<char> hf_tokenizer::allowed_mask(const encode_options &options) const {
    std::vector<char> allowed(added_.size(), options.allow_all_special ? 1 : 0);
    for (std::string_view name : options.allowed_special) {
        const auto it = added_by_text_.find(name);
        if (it == added_by_text_.end() || !added_[it->second].special)
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "allowed special token \"", name,
                       "\" is not a special token of this tokenizer");
        for (size_t i = 0; i < added_.size(); ++i)
            if (added_[i].content == name) allowed[i] = 1;
    }
    return allowed;
}

void hf_tokenizer::split_at_added_tokens(const added_token_matcher &matcher, std::string_view text,
                                         const std::vector<char> &allowed, bool special_as_text,
                                         std::vector<added_token_matcher::span> &parts) const {
    const char *where = &matcher == &raw_matcher_ ? "" : " of the normalized text";
    matcher.split(
        text,
        [&](const added_token &tok, size_t at) {
            if (!tok.special || allowed[size_t(&tok - added_.data())]) return true;
            if (special_as_text) return false;
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "text contains the special token ", tok.content, " at byte ", at,
                       where, ", which is not allowed: allow it to encode it as its id, or encode special tokens as text");
        },
        parts);
}

void hf_tokenizer::encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const {
    const size_t mark = out.size();
    encode_ids(text, options, out);
    if (options.add_special_tokens && post_processor_) {
        std::vector<encoding> encs{encoding::of_sequence({out.begin() + std::ptrdiff_t(mark), out.end()}, 0)};
        post_process(encs, true, &text);
        out.resize(mark);
        out.insert(out.end(), encs[0].ids.begin(), encs[0].ids.end());
    }
}

void hf_tokenizer::encode_ids(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const {
    check_utf8(text, "text");
    const std::vector<char> allowed = allowed_mask(options);
    std::vector<added_token_matcher::span> spans;
    split_at_added_tokens(raw_matcher_, text, allowed, options.special_as_text, spans);
    for (const auto &sp : spans) {
        if (sp.token) out.push_back(sp.token->id);
        else if (sp.e > sp.b) encode_text(text.substr(sp.b, sp.e - sp.b), sp.b == 0, allowed, options.special_as_text, out);
    }
}

void hf_tokenizer::post_process(std::vector<encoding> &encs, bool add_special, const std::string_view *inputs) const {
    post_processor_->process(encs, add_special, [this](int32_t id) {
        std::string_view t;
        return id_to_token(id, t) ? t : std::string_view();
    }, inputs);
    for (size_t k = 1; k < encs.size(); ++k) encs[0].append(encs[k]);  // HF's default_process merges what is left
    encs.resize(1);
}

// The offsets path: encode() with an alignment carried along (HF's
// NormalizedString). Each stage keeps, for every byte of its text, the input
// range it came from; a token's span is the range of its first byte's start
// to its last byte's end.
void hf_tokenizer::encode_text_aligned(std::string_view input, size_t b, size_t e, const std::vector<char> &allowed,
                                       bool special_as_text, std::vector<int32_t> &out,
                                       std::vector<std::pair<size_t, size_t>> &spans) const {
    hf::aligned_text s = hf::aligned_text::identity(input.substr(b, e - b), b);
    if (normalizer_) normalizer_->normalize_aligned(s);
    std::vector<added_token_matcher::span> parts;
    split_at_added_tokens(normalized_matcher_, s.text, allowed, special_as_text, parts);
    std::vector<hf::aligned_piece> pieces;
    std::vector<subword_model::span> local;
    for (const auto &sp : parts) {
        if (sp.token) {
            out.push_back(sp.token->id);
            spans.push_back(s.original(sp.b, sp.e));
            continue;
        }
        if (sp.e <= sp.b) continue;
        pieces.clear();
        pieces.push_back({s.sub(sp.b, sp.e), b == 0 && sp.b == 0});
        if (pre_tokenizer_) pre_tokenizer_->pre_tokenize_aligned(pieces);
        for (const auto &p : pieces) {
            if (p.text.text.empty()) continue;
            local.clear();
            model_->tokenize_spans(p.text.text, out, local);
            for (const auto &[lb, le] : local) spans.push_back(p.text.original(lb, le));
        }
    }
}

// The ids of one text with their spans, before the post-processor.
void hf_tokenizer::encode_spans(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                                std::vector<std::pair<size_t, size_t>> &spans) const {
    check_utf8(text, "text");
    const std::vector<char> allowed = allowed_mask(options);
    std::vector<added_token_matcher::span> parts;
    split_at_added_tokens(raw_matcher_, text, allowed, options.special_as_text, parts);
    for (const auto &sp : parts) {
        if (sp.token) {
            ids.push_back(sp.token->id);
            spans.emplace_back(sp.b, sp.e);
        } else if (sp.e > sp.b) {
            encode_text_aligned(text, sp.b, sp.e, allowed, options.special_as_text, ids, spans);
        }
    }
    if (ids.size() != spans.size())
        core::fail(LLMKIT_ERROR_INTERNAL, "offsets: ", ids.size(), " ids but ", spans.size(), " spans");
}

void hf_tokenizer::encode_with_offsets(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                                       std::vector<std::pair<size_t, size_t>> &spans) const {
    std::vector<int32_t> out;
    std::vector<std::pair<size_t, size_t>> out_spans;
    encode_spans(text, options, out, out_spans);
    if (post_processor_) {
        std::vector<encoding> encs{encoding::of_sequence(std::move(out), 0, std::move(out_spans))};
        post_process(encs, options.add_special_tokens, &text);
        out = std::move(encs[0].ids);
        out_spans = std::move(encs[0].spans);
    }
    ids.insert(ids.end(), out.begin(), out.end());
    spans.insert(spans.end(), out_spans.begin(), out_spans.end());
}

// HF's encode(a, b): each text typed 0 / 1, then the post-processor (its pair
// template with add_special_tokens; trim_offsets either way).
void hf_tokenizer::encode_pair(std::string_view a, std::string_view b, const encode_options &options, bool with_spans,
                               encoding &out) const {
    const std::string_view inputs[2] = {a, b};
    std::vector<encoding> encs;
    for (int32_t s = 0; s < 2; ++s)
        encs.push_back(encode_pair_text(s, with_spans, [&](auto &ids, auto &spans) {
            if (with_spans) encode_spans(inputs[s], options, ids, spans);
            else encode_ids(inputs[s], options, ids);
        }));
    if (post_processor_) {
        post_process(encs, options.add_special_tokens, inputs);
    } else {
        encs[0].append(encs[1]);
        encs.resize(1);
    }
    out = std::move(encs[0]);
}

void hf_tokenizer::decode(const int32_t *ids, size_t n, std::string &out) const {
    std::vector<std::string> tokens;
    tokens.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        std::string_view t;
        if (!id_to_token(ids[i], t))
            core::fail(LLMKIT_ERROR_OUT_OF_RANGE, "ids[", i, "] = ", ids[i], " is not a token id (vocabulary size ",
                       vocab_size_, ")");
        tokens.emplace_back(t);
    }
    if (decoder_) {
        decoder_->decode_chain(tokens);
        for (const auto &t : tokens) out += t;
        return;
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (i) out += ' ';
        out += tokens[i];
    }
}

int32_t hf_tokenizer::token_to_id(std::string_view token) const {
    const auto it = added_by_text_.find(token);
    if (it != added_by_text_.end()) return added_[it->second].id;
    return model_->vocab().id(token);
}

bool hf_tokenizer::id_to_token(int32_t id, std::string_view &out) const {
    const auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) {
        out = added_[it->second].content;
        return true;
    }
    return model_->vocab().token(id, out);
}

bool hf_tokenizer::is_special(int32_t id) const {
    const auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && added_[it->second].special;
}

// ============================================================ file formats

namespace {

// A first line of the form "base64 digits".
bool looks_like_tiktoken(std::string_view head) {
    const size_t sp = head.find(' ');
    if (sp == 0 || sp == std::string_view::npos) return false;
    for (size_t i = 0; i < sp; ++i) {
        const char c = head[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              c == '='))
            return false;
    }
    size_t i = sp + 1;
    if (i >= head.size() || head[i] < '0' || head[i] > '9') return false;
    while (i < head.size() && head[i] >= '0' && head[i] <= '9') ++i;
    return i == head.size() || head[i] == '\n' || head[i] == '\r';
}

}  // namespace

namespace {

enum class file_format { gguf, tokenizer_json, sentencepiece, tiktoken };

// The format of a tokenizer file from its first bytes (up to 256 of them);
// for a tokenizer.json, *json_start receives where its object begins (after
// a byte order mark and white space). Fails naming `source` when the format
// is unknown or the tiktoken encoding option does not fit the format.
file_format detect_format(std::string_view head, const std::string &source, const file_load_options &options,
                          size_t *json_start) {
    if (head.substr(0, 4) == "GGUF") return file_format::gguf;
    size_t p = head.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;  // UTF-8 byte order mark
    while (p < head.size() && (head[p] == ' ' || head[p] == '\t' || head[p] == '\n' || head[p] == '\r')) ++p;
    if (p < head.size() && head[p] == '{') {
        if (!options.tiktoken_encoding.empty())
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, source,
                       " is a tokenizer.json, but a tiktoken encoding was given (leave it empty for this format)");
        *json_start = p;
        return file_format::tokenizer_json;
    }
    if (!head.empty() && head[0] == '\x0A') return file_format::sentencepiece;
    if (looks_like_tiktoken(head.substr(0, head.find('\n')))) {
        if (options.tiktoken_encoding.empty())
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, source,
                       " is a tiktoken rank file, which holds no pre-tokenizer pattern or special tokens: give the "
                       "encoding preset (",
                       tiktoken_encoding_names(), ")");
        return file_format::tiktoken;
    }
    core::fail(LLMKIT_ERROR_FORMAT, source,
               ": not a tokenizer file llmkit knows (tokenizer.json, tiktoken rank file, SentencePiece .model, GGUF)");
}

}  // namespace

std::unique_ptr<tokenizer> load_tokenizer_file(const std::string &path, const file_load_options &options) {
    struct closer {
        void operator()(std::FILE *f) const { std::fclose(f); }
    };
    std::unique_ptr<std::FILE, closer> f(std::fopen(path.c_str(), "rb"));
    if (!f) core::fail(LLMKIT_ERROR_IO, "cannot open ", path, ": ", std::strerror(errno));
    char head_buf[256];
    const size_t got = std::fread(head_buf, 1, sizeof head_buf, f.get());
    if (std::ferror(f.get())) core::fail(LLMKIT_ERROR_IO, "cannot read ", path, ": ", std::strerror(errno));
    if (std::string_view(head_buf, got).substr(0, 4) == "GGUF") {
        // Mapped, not read: the vocabulary usually sits in front of a whole model.
        f.reset();
        gguf_vocab_options go;
        go.allow_duplicate_keys = options.gguf_allow_duplicate_keys;
        return load_gguf_vocab(path, go);
    }
    std::fseek(f.get(), 0, SEEK_SET);
    return load_tokenizer_memory(core::read_rest(f.get(), path), path, options);
}

std::unique_ptr<tokenizer> load_tokenizer_memory(std::string_view data, const std::string &source,
                                                 const file_load_options &options) {
    size_t json_start = 0;
    switch (detect_format(data.substr(0, 256), source, options, &json_start)) {
    case file_format::gguf: {
        gguf::open_options o;
        o.allow_duplicate_keys = options.gguf_allow_duplicate_keys;
        // Not copied: the tokenizer keeps nothing of the file once built.
        const gguf::file f = gguf::file::parse(data.data(), data.size(), source, o, false);
        return tokenizer_from_gguf(f);
    }
    case file_format::tokenizer_json: return hf_tokenizer::from_json(data.substr(json_start), source);
    case file_format::sentencepiece:
        return std::make_unique<sentencepiece>(parse_sentencepiece_model(data, source), source);
    case file_format::tiktoken: return tiktoken_from_ranks(data, source, options.tiktoken_encoding);
    }
    core::fail(LLMKIT_ERROR_INTERNAL, source, ": unhandled tokenizer format");
}

}  // namespace llmkit::tok
