// Normalizers, pre-tokenizers, post-processors and decoders of HF tokenizers,
// each following the behaviour of the `tokenizers` crate (checked against the
// `tokenizers` Python package by tests/python/test_tokenizer_json.py).
#include "tokenizer/hf_pipeline.hpp"

#include <algorithm>
#include <array>

#include "core/error.hpp"
#include "tokenizer/base64.hpp"
#include "tokenizer/hf_unicode.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/spm_charsmap.hpp"
#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok::hf {

// ============================================================ JSON access

void bad(const std::string &path, const std::string &what) {
    core::fail(LLMKIT_ERROR_FORMAT, "at ", path.empty() ? "/" : path, ": ", what);
}
void unsupported(const std::string &path, const std::string &what) {
    core::fail(LLMKIT_ERROR_UNSUPPORTED, "at ", path.empty() ? "/" : path, ": ", what);
}

namespace {
const char *kind(const json &j) { return j.type_name(); }
std::string child(const std::string &path, const std::string &key) { return path + "/" + key; }
std::string child(const std::string &path, size_t i) { return path + "/" + std::to_string(i); }

const json &object_at(const json &j, const std::string &path) {
    if (!j.is_object()) bad(path, std::string("expected an object, got ") + kind(j));
    return j;
}
const json &array_member(const json &obj, const char *key, const std::string &path) {
    const json &v = member(obj, key, path);
    if (!v.is_array()) bad(child(path, key), std::string("expected an array, got ") + kind(v));
    return v;
}
}  // namespace

const json &member(const json &obj, const char *key, const std::string &path) {
    object_at(obj, path);
    const auto it = obj.find(key);
    if (it == obj.end()) bad(path, std::string("missing member \"") + key + "\"");
    return *it;
}

std::string str(const json &obj, const char *key, const std::string &path) {
    const json &v = member(obj, key, path);
    if (!v.is_string()) bad(child(path, key), std::string("expected a string, got ") + kind(v));
    return v.get<std::string>();
}

bool opt_str(const json &obj, const char *key, const std::string &path, std::string &out) {
    object_at(obj, path);
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return false;
    if (!it->is_string()) bad(child(path, key), std::string("expected a string or null, got ") + kind(*it));
    out = it->get<std::string>();
    return true;
}

bool boolean(const json &obj, const char *key, const std::string &path, bool fallback) {
    object_at(obj, path);
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) bad(child(path, key), std::string("expected true or false, got ") + kind(*it));
    return it->get<bool>();
}

uint64_t uint(const json &obj, const char *key, const std::string &path, uint64_t fallback, uint64_t max) {
    object_at(obj, path);
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0))
        bad(child(path, key), std::string("expected a non-negative integer, got ") + kind(*it));
    const uint64_t v = it->get<uint64_t>();
    if (v > max) bad(child(path, key), "value " + std::to_string(v) + " is over " + std::to_string(max));
    return v;
}

std::string type_of(const json &obj, const std::string &path) {
    object_at(obj, path);
    const auto it = obj.find("type");
    if (it == obj.end()) return {};
    if (!it->is_string()) bad(child(path, "type"), std::string("expected a string, got ") + kind(*it));
    return it->get<std::string>();
}

std::string pattern_of(const json &obj, const std::string &path, bool &is_regex) {
    const json &p = object_at(obj, path);
    if (p.size() != 1) bad(path, "a pattern is {\"String\": ...} or {\"Regex\": ...}");
    if (p.contains("String")) {
        is_regex = false;
        return str(p, "String", path);
    }
    if (p.contains("Regex")) {
        is_regex = true;
        return str(p, "Regex", path);
    }
    bad(path, "a pattern is {\"String\": ...} or {\"Regex\": ...}, got member \"" + p.begin().key() + "\"");
}

// ============================================================ shared helpers

const std::string &byte_to_char(unsigned char b) {
    static const std::array<std::string, 256> table = [] {
        std::array<std::string, 256> t;
        char32_t next = 256;
        for (unsigned v = 0; v < 256; ++v) {
            const bool printable = (v >= 33 && v <= 126) || (v >= 161 && v <= 172) || (v >= 174 && v <= 255);
            uni::append(t[v], printable ? char32_t(v) : next++);
        }
        return t;
    }();
    return table[b];
}

int char_to_byte(char32_t c) {
    static const std::array<int16_t, 324> table = [] {
        std::array<int16_t, 324> t;
        t.fill(-1);
        for (unsigned v = 0; v < 256; ++v) {
            char32_t cp;
            uni::decode(byte_to_char(static_cast<unsigned char>(v)), 0, cp);
            t[cp] = int16_t(v);
        }
        return t;
    }();
    return c < table.size() ? table[c] : -1;
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    const size_t n = s.size();
    for (size_t i = 0; i < n;) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            out += char(c);
            ++i;
            continue;
        }
        // Expected length and the valid range of the second byte (Unicode Table 3-7).
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) len = 3;
        else if (c == 0xED) len = 3, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF) len = 3;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) len = 4, hi = 0x8F;
        size_t k = 1;
        if (len) {
            if (i + 1 < n && p[i + 1] >= lo && p[i + 1] <= hi) {
                k = 2;
                while (k < len && i + k < n && p[i + k] >= 0x80 && p[i + k] <= 0xBF) ++k;
            }
        }
        if (len && k == len) out.append(s.substr(i, len));
        else out += "\xEF\xBF\xBD";
        i += k;
    }
    return out;
}

// ============================================================ alignment

namespace {
size_t char_at(std::string_view s, size_t i) {
    return std::min(uni::char_len(static_cast<unsigned char>(s[i])), s.size() - i);
}
}  // namespace

aligned_text aligned_text::identity(std::string_view s, size_t base) {
    aligned_text a;
    a.text.assign(s);
    a.align.resize(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t n = char_at(s, i);
        for (size_t k = 0; k < n; ++k) a.align[i + k] = {base + i, base + i + n};
        i += n;
    }
    return a;
}

aligned_text aligned_text::sub(size_t b, size_t e) const {
    aligned_text a;
    a.text = text.substr(b, e - b);
    a.align.assign(align.begin() + std::ptrdiff_t(b), align.begin() + std::ptrdiff_t(e));
    return a;
}

void aligned_text::transform(const std::vector<std::pair<char32_t, int>> &changes, size_t initial_removed) {
    size_t offset = 0;  // byte of the old text where the next consumed character starts
    auto consume = [&] {
        if (offset < text.size()) offset += char_at(text, offset);
    };
    for (size_t k = 0; k < initial_removed; ++k) consume();
    const range none = align.empty() ? range{0, 0} : range{align[0].first, align[0].first};
    std::string out;
    std::vector<range> out_align;
    out.reserve(text.size() + changes.size());
    out_align.reserve(text.size() + changes.size());
    for (const auto &[c, change] : changes) {
        range a;
        if (change > 0) a = offset == 0 ? none : align[offset - 1];  // HF: (0, 0) when nothing precedes
        else a = offset < align.size() ? align[offset] : (align.empty() ? none : align.back());
        if (change <= 0) consume();
        for (int k = 0; k < -change; ++k) consume();
        const size_t before = out.size();
        uni::append(out, c);
        out_align.insert(out_align.end(), out.size() - before, a);
    }
    text.swap(out);
    align.swap(out_align);
}

aligned_text::range aligned_text::original(size_t b, size_t e) const {
    if (b < e && e <= align.size()) return {align[b].first, align[e - 1].second};
    if (align.empty()) return {0, 0};
    const size_t at = b < align.size() ? align[b].first : align.back().second;
    return {at, at};
}

namespace {

using change_list = std::vector<std::pair<char32_t, int>>;

// Appends the changes that replace n_in characters by the characters of rep,
// as HF's precompiled normalizer and to_lowercase write them: one-for-one
// replacements first, extra characters inserted (+1), or the last character
// removing the surplus (-k; with nothing before it, nothing is recorded).
void push_chunk(change_list &ch, size_t n_in, std::string_view rep) {
    const size_t start = ch.size();
    for (size_t i = 0; i < rep.size();) {
        char32_t c;
        i += uni::decode(rep, i, c);
        ch.emplace_back(c, 0);
    }
    const std::ptrdiff_t diff = std::ptrdiff_t(ch.size() - start) - std::ptrdiff_t(n_in);
    if (diff > 0)
        for (size_t k = ch.size() - size_t(diff); k < ch.size(); ++k) ch[k].second = 1;
    else if (diff < 0 && !ch.empty())
        ch.back().second += int(diff);
}

// HF's NormalizedString::filter: characters failing keep are dropped.
template <typename Keep>
void filter_aligned(aligned_text &s, Keep keep) {
    change_list ch;
    ch.reserve(s.text.size());
    int removed = 0;
    size_t removed_start = 0;
    bool have_last = false;
    char32_t last = 0;
    for (size_t i = 0; i < s.text.size();) {
        char32_t c;
        i += uni::decode(s.text, i, c);
        if (keep(c)) {
            if (have_last) ch.emplace_back(last, -removed);
            else removed_start = size_t(removed);
            have_last = true;
            last = c;
            removed = 0;
        } else {
            ++removed;
        }
    }
    if (have_last) ch.emplace_back(last, -removed);
    s.transform(ch, have_last ? removed_start : 0);
}

// Each character c becomes f(c) (one or more characters, the first replacing c).
template <typename F>
void map_aligned(aligned_text &s, F f) {
    change_list ch;
    ch.reserve(s.text.size());
    std::string rep;
    for (size_t i = 0; i < s.text.size();) {
        char32_t c;
        const size_t n = uni::decode(s.text, i, c);
        rep.clear();
        f(c, std::string_view(s.text).substr(i, n), rep);
        push_chunk(ch, 1, rep);
        i += n;
    }
    s.transform(ch, 0);
}

// HF's NormalizedString::prepend: the prefix and the first character all take
// the alignment HF's transform gives them (the first character's).
void prepend_aligned(aligned_text &s, std::string_view prefix) {
    if (s.text.empty() || prefix.empty()) return;
    change_list ch;
    bool first = true;
    for (size_t i = 0; i < prefix.size();) {
        char32_t c;
        i += uni::decode(prefix, i, c);
        ch.emplace_back(c, first ? 0 : 1);
        first = false;
    }
    for (size_t i = 0; i < s.text.size();) {
        char32_t c;
        const size_t n = uni::decode(s.text, i, c);
        ch.emplace_back(c, i == 0 ? 1 : 0);
        i += n;
    }
    s.transform(ch, 0);
}

// GPT-2's byte-to-character map on aligned text: each byte of a character
// becomes one character; all of them take that character's alignment.
void byte_level_aligned(aligned_text &s) {
    change_list ch;
    ch.reserve(s.text.size());
    for (size_t i = 0; i < s.text.size();) {
        const size_t n = char_at(s.text, i);
        for (size_t k = 0; k < n; ++k) {
            char32_t c;
            uni::decode(byte_to_char(static_cast<unsigned char>(s.text[i + k])), 0, c);
            ch.emplace_back(c, k > 0 ? 1 : 0);
        }
        i += n;
    }
    s.transform(ch, 0);
}

// A Unicode normalization form on aligned text, with the changes HF's
// alignment-keeping normalization (unicode-normalization-alignments) reports.
// Decomposition is per character (its first character replaces it, the rest
// are insertions), then each run of non-starters is put in canonical order
// (stable by combining class), each character with its change. Composition
// then joins a starter and the characters it absorbs into one character
// that consumes all their input (its change: the starter's plus, for each
// absorbed character, its change - 1), so an accent that composes is part
// of its letter's span and one that does not keeps its own. If this ever
// disagrees with the form of the whole text, the whole text is one chunk.
void normalize_form_aligned(aligned_text &s, uni::form f) {
    const std::string whole = uni::normalize(s.text, f);
    const bool compose = f == uni::form::nfc || f == uni::form::nfkc;
    const uni::form decompose = f == uni::form::nfc ? uni::form::nfd : f == uni::form::nfkc ? uni::form::nfkd : f;
    change_list ch;
    ch.reserve(whole.size());
    for (size_t i = 0; i < s.text.size();) {
        const size_t n = char_at(s.text, i);
        push_chunk(ch, 1, uni::normalize(std::string_view(s.text).substr(i, n), decompose));
        i += n;
    }
    for (size_t i = 0; i < ch.size();) {
        if (uni::combining_class(ch[i].first) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < ch.size() && uni::combining_class(ch[j].first) != 0) ++j;
        std::stable_sort(ch.begin() + std::ptrdiff_t(i), ch.begin() + std::ptrdiff_t(j),
                         [](const auto &a, const auto &b) {
                             return uni::combining_class(a.first) < uni::combining_class(b.first);
                         });
        i = j;
    }
    bool ok = true;
    if (compose) {
        // Each output character takes the first unused decomposed character
        // and, for the rest of its canonical decomposition, the next unused
        // equal characters (absorbed ones follow their starter closely).
        constexpr size_t k_window = 64;
        change_list out;
        out.reserve(ch.size());
        std::vector<char> used(ch.size(), 0);
        size_t p = 0;
        std::vector<char32_t> parts;
        for (size_t i = 0; i < whole.size() && ok;) {
            char32_t o;
            const size_t n = uni::decode(whole, i, o);
            const std::string d = uni::normalize(std::string_view(whole).substr(i, n), uni::form::nfd);
            i += n;
            parts.clear();
            for (size_t k = 0; k < d.size();) {
                char32_t c;
                k += uni::decode(d, k, c);
                parts.push_back(c);
            }
            while (p < ch.size() && used[p]) ++p;
            if (p == ch.size() || parts.empty() || ch[p].first != parts[0]) {
                ok = false;
                break;
            }
            used[p] = 1;
            int change = ch[p].second;
            for (size_t k = 1; k < parts.size() && ok; ++k) {
                size_t q = p + 1;
                while (q < ch.size() && q < p + k_window && (used[q] || ch[q].first != parts[k])) ++q;
                if (q >= ch.size() || q >= p + k_window) ok = false;
                else used[q] = 1, change += ch[q].second - 1;
            }
            out.emplace_back(o, change);
        }
        ok = ok && std::find(used.begin(), used.end(), 0) == used.end();
        ch.swap(out);
    } else {
        std::string joined;
        for (const auto &c : ch) uni::append(joined, c.first);
        ok = joined == whole;
    }
    if (!ok) {
        ch.clear();
        push_chunk(ch, uni::count_chars(s.text), whole);
    }
    s.transform(ch, 0);
}

}  // namespace

namespace {

// ============================================================ splitting

struct segment {
    size_t b, e;
    bool is_match;
};

enum class behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

behavior behavior_of(const json &obj, const char *key, const std::string &path, behavior fallback) {
    std::string s;
    if (!opt_str(obj, key, path, s)) return fallback;
    if (s == "Removed") return behavior::removed;
    if (s == "Isolated") return behavior::isolated;
    if (s == "MergedWithPrevious") return behavior::merged_with_previous;
    if (s == "MergedWithNext") return behavior::merged_with_next;
    if (s == "Contiguous") return behavior::contiguous;
    bad(child(path, key), "unknown split behavior \"" + s +
                              "\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

// HF's NormalizedString::split: the spans kept, in order.
void apply_behavior(const std::vector<segment> &m, behavior how, std::vector<std::pair<size_t, size_t>> &kept) {
    kept.clear();
    switch (how) {
        case behavior::isolated:
            for (const auto &s : m) kept.emplace_back(s.b, s.e);
            return;
        case behavior::removed:
            for (const auto &s : m)
                if (!s.is_match) kept.emplace_back(s.b, s.e);
            return;
        case behavior::contiguous: {
            bool prev = false;
            for (const auto &s : m) {
                if (s.is_match == prev && !kept.empty()) kept.back().second = s.e;
                else kept.emplace_back(s.b, s.e);
                prev = s.is_match;
            }
            return;
        }
        case behavior::merged_with_previous: {
            bool prev = false;
            for (const auto &s : m) {
                if (s.is_match && !prev && !kept.empty()) kept.back().second = s.e;
                else kept.emplace_back(s.b, s.e);
                prev = s.is_match;
            }
            return;
        }
        case behavior::merged_with_next: {
            bool prev = false;
            for (auto it = m.rbegin(); it != m.rend(); ++it) {
                if (it->is_match && !prev && !kept.empty()) kept.back().first = it->b;
                else kept.emplace_back(it->b, it->e);
                prev = it->is_match;
            }
            std::reverse(kept.begin(), kept.end());
            return;
        }
    }
}

// Each character for which pred holds is a match of its own.
template <typename Pred>
void char_matches(std::string_view s, Pred pred, std::vector<segment> &out) {
    out.clear();
    size_t last = 0;
    for (size_t i = 0; i < s.size();) {
        char32_t c;
        const size_t n = uni::decode(s, i, c);
        if (pred(c)) {
            if (last < i) out.push_back({last, i, false});
            out.push_back({i, i + n, true});
            last = i + n;
        }
        i += n;
    }
    if (last < s.size()) out.push_back({last, s.size(), false});
}

void literal_matches(std::string_view s, std::string_view lit, std::vector<segment> &out) {
    out.clear();
    if (lit.empty()) {
        out.push_back({0, s.size(), false});
        return;
    }
    size_t last = 0;
    for (size_t p = s.find(lit); p != std::string_view::npos; p = s.find(lit, p + lit.size())) {
        if (last < p) out.push_back({last, p, false});
        out.push_back({p, p + lit.size(), true});
        last = p + lit.size();
    }
    if (last < s.size()) out.push_back({last, s.size(), false});
}

void regex_matches(std::string_view s, const regex &re, std::vector<segment> &out) {
    out.clear();
    size_t last = 0;
    re.for_each_match(s, [&](size_t b, size_t e) {
        if (last < b) out.push_back({last, b, false});
        out.push_back({b, e, true});
        last = e;
    });
    if (last < s.size()) out.push_back({last, s.size(), false});
}

// Bytes [b, e) of a piece, as a piece (with its alignment on the offsets path).
const std::string &text_of(const piece &p) { return p.text; }
const std::string &text_of(const aligned_piece &p) { return p.text.text; }
piece slice(const piece &p, size_t b, size_t e) { return {p.text.substr(b, e - b), p.at_origin && b == 0}; }
aligned_piece slice(const aligned_piece &p, size_t b, size_t e) { return {p.text.sub(b, e), p.at_origin && b == 0}; }

// Replaces each piece by its kept spans (empty ones dropped).
template <typename Piece, typename Find>
void split_pieces(std::vector<Piece> &pieces, behavior how, bool invert, Find find) {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    std::vector<segment> m;
    std::vector<std::pair<size_t, size_t>> kept;
    for (auto &p : pieces) {
        find(std::string_view(text_of(p)), m);
        if (invert)
            for (auto &s : m) s.is_match = !s.is_match;
        apply_behavior(m, how, kept);
        for (const auto &[b, e] : kept)
            if (e > b) out.push_back(slice(p, b, e));
    }
    pieces.swap(out);
}

// PCRE2 pattern for an Oniguruma one from a tokenizer.json (oniguruma_to_pcre2).
std::unique_ptr<regex> compile(const std::string &pattern, const std::string &path) {
    try {
        return std::make_unique<regex>(oniguruma_to_pcre2(pattern));
    } catch (const core::error &e) {
        bad(path, std::string("invalid regex: ") + e.what());
    }
}

// Replace (normalizer and decoder): every match of a String or Regex pattern by content.
struct replacer {
    bool is_regex = false;
    std::string literal;
    std::unique_ptr<regex> re;
    std::string content;

    replacer(const json &j, const std::string &path) {
        literal = pattern_of(member(j, "pattern", path), child(path, "pattern"), is_regex);
        if (is_regex) re = compile(literal, child(path, "pattern"));
        content = str(j, "content", path);
    }
    void apply(std::string &s) const {
        std::vector<segment> m;
        if (is_regex) regex_matches(s, *re, m);
        else literal_matches(s, literal, m);
        std::string out;
        out.reserve(s.size());
        for (const auto &seg : m) {
            if (seg.is_match) out += content;
            else out.append(s, seg.b, seg.e - seg.b);
        }
        s.swap(out);
    }
    // HF's NormalizedString::replace: the content of a match is aligned like
    // the match's last byte (its characters are insertions after the match).
    void apply_aligned(aligned_text &s) const {
        std::vector<segment> m;
        if (is_regex) regex_matches(s.text, *re, m);
        else literal_matches(s.text, literal, m);
        aligned_text out;
        out.text.reserve(s.text.size());
        out.align.reserve(s.text.size());
        for (const auto &seg : m) {
            if (seg.is_match) {
                // An empty match (a regex that can match nothing) aligns like the byte before it.
                aligned_text::range a{0, 0};
                if (seg.e > 0) a = s.align[seg.e - 1];
                else if (!s.align.empty()) a = {s.align[0].first, s.align[0].first};
                out.text += content;
                out.align.insert(out.align.end(), content.size(), a);
            } else {
                out.text.append(s.text, seg.b, seg.e - seg.b);
                out.align.insert(out.align.end(), s.align.begin() + std::ptrdiff_t(seg.b),
                                 s.align.begin() + std::ptrdiff_t(seg.e));
            }
        }
        s = std::move(out);
    }
};

// ============================================================ normalizers

bool is_chinese_char(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

template <typename F>
void map_chars(std::string &s, F f) {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    for (size_t i = 0; i < s.size();) {
        char32_t c;
        const size_t n = uni::decode(s, i, c);
        f(c, std::string_view(s).substr(i, n), out);
        i += n;
    }
    s.swap(out);
}

void lowercase(std::string &s) {
    map_chars(s, [](char32_t c, std::string_view, std::string &out) { uni::append_lowercase(out, c); });
}
void lowercase_aligned(aligned_text &s) {
    map_aligned(s, [](char32_t c, std::string_view, std::string &out) { uni::append_lowercase(out, c); });
}

class bert_normalizer final : public normalizer {
public:
    bert_normalizer(bool clean, bool chinese, bool strip, bool lower)
        : clean_(clean), chinese_(chinese), strip_(strip), lower_(lower) {}
    void normalize(std::string &s) const override {
        if (clean_)
            map_chars(s, [](char32_t c, std::string_view raw, std::string &out) {
                if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && uni::is_other(c))) return;
                if (c == '\t' || c == '\n' || c == '\r' || uni::is_whitespace(c)) out += ' ';
                else out += raw;
            });
        if (chinese_)
            map_chars(s, [](char32_t c, std::string_view raw, std::string &out) {
                if (is_chinese_char(c)) {
                    out += ' ';
                    out += raw;
                    out += ' ';
                } else {
                    out += raw;
                }
            });
        if (strip_) {
            s = uni::normalize(s, uni::form::nfd);
            map_chars(s, [](char32_t c, std::string_view raw, std::string &out) {
                if (!uni::is_mark_nonspacing(c)) out += raw;
            });
        }
        if (lower_) lowercase(s);
    }
    void normalize_aligned(aligned_text &s) const override {
        if (clean_) {
            filter_aligned(s, [](char32_t c) { return !(c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && uni::is_other(c))); });
            map_aligned(s, [](char32_t c, std::string_view raw, std::string &out) {
                if (c == '\t' || c == '\n' || c == '\r' || uni::is_whitespace(c)) out += ' ';
                else out += raw;
            });
        }
        if (chinese_)
            map_aligned(s, [](char32_t c, std::string_view raw, std::string &out) {
                if (is_chinese_char(c)) out += ' ';
                out += raw;
                if (is_chinese_char(c)) out += ' ';
            });
        if (strip_) {
            normalize_form_aligned(s, uni::form::nfd);
            filter_aligned(s, [](char32_t c) { return !uni::is_mark_nonspacing(c); });
        }
        if (lower_) lowercase_aligned(s);
    }

private:
    bool clean_, chinese_, strip_, lower_;
};

class form_normalizer final : public normalizer {
public:
    explicit form_normalizer(uni::form f) : form_(f) {}
    void normalize(std::string &s) const override { s = uni::normalize(s, form_); }
    void normalize_aligned(aligned_text &s) const override { normalize_form_aligned(s, form_); }

private:
    uni::form form_;
};

// SentencePiece's normalization rules carried into tokenizer.json (T5, ALBERT,
// XLM-R, mT5...), applied as tokenizers does, which is not SentencePiece's own
// longest match: per extended grapheme cluster, one of under 6 bytes that
// starts with a rule source becomes that rule's replacement (the shortest
// source's, whatever follows it in the cluster); otherwise each character is
// replaced by its own rule or kept. A NUL byte ends a rule search.
class precompiled_normalizer final : public normalizer {
public:
    explicit precompiled_normalizer(spm_charsmap map) : map_(std::move(map)) {}
    void normalize(std::string &s) const override {
        std::string out;
        out.reserve(s.size() + s.size() / 8);
        std::string_view rep;
        for (size_t i = 0; i < s.size();) {
            const size_t g = uni::grapheme_length(s, i);
            const std::string_view cluster = std::string_view(s).substr(i, g);
            i += g;
            if (g < 6 && rule(cluster, rep)) {
                out += rep;
                continue;
            }
            for (size_t k = 0; k < cluster.size();) {
                char32_t c;
                const std::string_view ch = cluster.substr(k, uni::decode(cluster, k, c));
                k += ch.size();
                out += rule(ch, rep) ? rep : ch;
            }
        }
        s.swap(out);
    }
    // HF's Precompiled::normalize: the same walk, as changes.
    void normalize_aligned(aligned_text &s) const override {
        change_list ch;
        ch.reserve(s.text.size());
        std::string_view rep;
        for (size_t i = 0; i < s.text.size();) {
            const size_t g = uni::grapheme_length(s.text, i);
            const std::string_view cluster = std::string_view(s.text).substr(i, g);
            i += g;
            if (g < 6 && rule(cluster, rep)) {
                push_chunk(ch, uni::count_chars(cluster), rep);
                continue;
            }
            for (size_t k = 0; k < cluster.size();) {
                char32_t c;
                const std::string_view chr = cluster.substr(k, uni::decode(cluster, k, c));
                k += chr.size();
                if (rule(chr, rep)) push_chunk(ch, 1, rep);
                else ch.emplace_back(c, 0);
            }
        }
        s.transform(ch, 0);
    }

private:
    bool rule(std::string_view text, std::string_view &rep) const {
        return map_.shortest_prefix(text.substr(0, text.find('\0')), rep) != 0;
    }

    spm_charsmap map_;
};

// Marian/NMT clean-up: C0/C1 controls dropped, other spaces and separators made ' '.
class nmt_normalizer final : public normalizer {
public:
    void normalize(std::string &s) const override {
        map_chars(s, [](char32_t c, std::string_view raw, std::string &out) {
            if ((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F ||
                c == 0x9F)
                return;
            const bool space = c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 ||
                               (c >= 0x200B && c <= 0x200F) || c == 0x2028 || c == 0x2029 || c == 0x2581 ||
                               c == 0xFEFF || c == 0xFFFD;
            if (space) out += ' ';
            else out += raw;
        });
    }
    void normalize_aligned(aligned_text &s) const override {
        filter_aligned(s, [](char32_t c) {
            return !((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F ||
                     c == 0x9F);
        });
        map_aligned(s, [](char32_t c, std::string_view raw, std::string &out) {
            const bool space = c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 ||
                               (c >= 0x200B && c <= 0x200F) || c == 0x2028 || c == 0x2029 || c == 0x2581 ||
                               c == 0xFEFF || c == 0xFFFD;
            if (space) out += ' ';
            else out += raw;
        });
    }
};

class lowercase_normalizer final : public normalizer {
public:
    void normalize(std::string &s) const override { lowercase(s); }
    void normalize_aligned(aligned_text &s) const override { lowercase_aligned(s); }
};

class strip_accents_normalizer final : public normalizer {
public:
    void normalize(std::string &s) const override {
        map_chars(s, [](char32_t c, std::string_view raw, std::string &out) {
            if (!uni::is_mark(c)) out += raw;
        });
    }
    void normalize_aligned(aligned_text &s) const override {
        filter_aligned(s, [](char32_t c) { return !uni::is_mark(c); });
    }
};

class strip_normalizer final : public normalizer {
public:
    strip_normalizer(bool left, bool right) : left_(left), right_(right) {}
    void normalize(std::string &s) const override {
        const auto [b, e] = kept(s);
        s = s.substr(b, e - b);
    }
    void normalize_aligned(aligned_text &s) const override {
        const auto [b, e] = kept(s.text);
        s = s.sub(b, e);
    }

private:
    // The bytes left once the whitespace at the ends is stripped.
    std::pair<size_t, size_t> kept(std::string_view s) const {
        size_t b = 0, e = s.size();
        char32_t c;
        if (left_)
            while (b < e) {
                const size_t n = uni::decode(s, b, c);
                if (!uni::is_whitespace(c)) break;
                b += n;
            }
        if (right_)
            while (e > b) {
                size_t p = e - 1;
                while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
                uni::decode(s, p, c);
                if (!uni::is_whitespace(c)) break;
                e = p;
            }
        return {b, e};
    }

    bool left_, right_;
};

class prepend_normalizer final : public normalizer {
public:
    explicit prepend_normalizer(std::string p) : prefix_(std::move(p)) {}
    void normalize(std::string &s) const override {
        if (!s.empty()) s.insert(0, prefix_);
    }
    void normalize_aligned(aligned_text &s) const override { prepend_aligned(s, prefix_); }

private:
    std::string prefix_;
};

class replace_normalizer final : public normalizer {
public:
    replace_normalizer(const json &j, const std::string &path) : r_(j, path) {}
    void normalize(std::string &s) const override { r_.apply(s); }
    void normalize_aligned(aligned_text &s) const override { r_.apply_aligned(s); }

private:
    replacer r_;
};

class byte_level_normalizer final : public normalizer {
public:
    void normalize(std::string &s) const override {
        std::string out;
        for (char c : s) out += byte_to_char(static_cast<unsigned char>(c));
        s.swap(out);
    }
    void normalize_aligned(aligned_text &s) const override { byte_level_aligned(s); }
};

class sequence_normalizer final : public normalizer {
public:
    explicit sequence_normalizer(std::vector<std::unique_ptr<normalizer>> parts) : parts_(std::move(parts)) {}
    void normalize(std::string &s) const override {
        for (const auto &p : parts_) p->normalize(s);
    }
    void normalize_aligned(aligned_text &s) const override {
        for (const auto &p : parts_) p->normalize_aligned(s);
    }

private:
    std::vector<std::unique_ptr<normalizer>> parts_;
};

// ============================================================ pre-tokenizers

const char *const k_gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class byte_level_pre final : public pre_tokenizer {
public:
    byte_level_pre(bool add_prefix_space, bool use_regex) : prefix_(add_prefix_space) {
        if (use_regex) re_ = std::make_unique<regex>(oniguruma_to_pcre2(k_gpt2_regex));
    }
    void pre_tokenize(std::vector<piece> &pieces) const override {
        if (prefix_)
            for (auto &p : pieces)
                if (!p.text.empty() && p.text[0] != ' ') p.text.insert(0, 1, ' ');
        if (re_)
            split_pieces(pieces, behavior::isolated, false,
                         [&](std::string_view s, std::vector<segment> &m) { regex_matches(s, *re_, m); });
        for (auto &p : pieces) {
            std::string out;
            out.reserve(p.text.size() * 2);
            for (char c : p.text) out += byte_to_char(static_cast<unsigned char>(c));
            p.text.swap(out);
        }
    }
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override {
        if (prefix_)
            for (auto &p : pieces)
                if (!p.text.text.empty() && p.text.text[0] != ' ') prepend_aligned(p.text, " ");
        if (re_)
            split_pieces(pieces, behavior::isolated, false,
                         [&](std::string_view s, std::vector<segment> &m) { regex_matches(s, *re_, m); });
        for (auto &p : pieces) byte_level_aligned(p.text);
    }

private:
    bool prefix_;
    std::unique_ptr<regex> re_;
};

template <typename Pred>
class char_split_pre final : public pre_tokenizer {
public:
    char_split_pre(Pred pred, behavior how) : pred_(pred), how_(how) {}
    void pre_tokenize(std::vector<piece> &pieces) const override {
        split_pieces(pieces, how_, false, [&](std::string_view s, std::vector<segment> &m) { char_matches(s, pred_, m); });
    }
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override {
        split_pieces(pieces, how_, false, [&](std::string_view s, std::vector<segment> &m) { char_matches(s, pred_, m); });
    }

private:
    Pred pred_;
    behavior how_;
};
template <typename Pred>
std::unique_ptr<pre_tokenizer> char_split(Pred pred, behavior how) {
    return std::make_unique<char_split_pre<Pred>>(pred, how);
}

class regex_split_pre final : public pre_tokenizer {
public:
    regex_split_pre(std::unique_ptr<regex> re, std::string literal, behavior how, bool invert)
        : re_(std::move(re)), literal_(std::move(literal)), how_(how), invert_(invert) {}
    void pre_tokenize(std::vector<piece> &pieces) const override { run(pieces); }
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override { run(pieces); }

private:
    template <typename Piece>
    void run(std::vector<Piece> &pieces) const {
        split_pieces(pieces, how_, invert_, [&](std::string_view s, std::vector<segment> &m) {
            if (re_) regex_matches(s, *re_, m);
            else literal_matches(s, literal_, m);
        });
    }

    std::unique_ptr<regex> re_;  // null: split on literal_
    std::string literal_;
    behavior how_;
    bool invert_;
};

// FixedLength: each piece cut into pieces of `length` characters (the last
// may be shorter).
class fixed_length_pre final : public pre_tokenizer {
public:
    explicit fixed_length_pre(size_t length) : length_(length) {}
    void pre_tokenize(std::vector<piece> &pieces) const override { run(pieces); }
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override { run(pieces); }

private:
    template <typename Piece>
    void run(std::vector<Piece> &pieces) const {
        split_pieces(pieces, behavior::isolated, false, [this](std::string_view s, std::vector<segment> &m) {
            m.clear();
            size_t begin = 0, chars = 0;
            for (size_t i = 0; i < s.size();) {
                i += char_at(s, i);
                if (++chars == length_) {
                    m.push_back({begin, i, true});
                    begin = i;
                    chars = 0;
                }
            }
            if (begin < s.size()) m.push_back({begin, s.size(), true});
        });
    }

    size_t length_;
};

// UnicodeScripts: a cut wherever the script changes. Spaces (script "any")
// belong to the piece before them and never cut; spaces that start the text
// belong to no piece at all and are dropped, as tokenizers does.
class unicode_scripts_pre final : public pre_tokenizer {
public:
    void pre_tokenize(std::vector<piece> &pieces) const override { run(pieces); }
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override { run(pieces); }

private:
    template <typename Piece>
    static void run(std::vector<Piece> &pieces) {
        split_pieces(pieces, behavior::isolated, false, [](std::string_view s, std::vector<segment> &m) {
            m.clear();
            bool seen_script = false;  // a character other than a space came before
            int last = uni::script_any;
            for (size_t i = 0; i < s.size();) {
                char32_t c;
                const size_t n = uni::decode(s, i, c);
                const int script = uni::script_of(c);
                if (script != uni::script_any) {
                    if (!seen_script || script != last) {
                        if (!m.empty()) m.back().e = i;
                        m.push_back({i, s.size(), true});
                    }
                    seen_script = true;
                    last = script;
                }
                i += n;
            }
        });
    }
};

enum class prepend_scheme { always, never, first };

prepend_scheme scheme_of(const json &j, const std::string &path) {
    std::string s;
    if (opt_str(j, "prepend_scheme", path, s)) {
        if (s == "always") return prepend_scheme::always;
        if (s == "never") return prepend_scheme::never;
        if (s == "first") return prepend_scheme::first;
        bad(child(path, "prepend_scheme"), "unknown prepend_scheme \"" + s + "\" (expected always, never or first)");
    }
    // Older files: add_prefix_space.
    return boolean(j, "add_prefix_space", path, true) ? prepend_scheme::always : prepend_scheme::never;
}

std::string replacement_of(const json &j, const std::string &path) {
    std::string r;
    if (!opt_str(j, "replacement", path, r)) r = "\xE2\x96\x81";
    if (r.empty() || uni::count_chars(r) != 1) bad(child(path, "replacement"), "must be one character");
    return r;
}

class metaspace_pre final : public pre_tokenizer {
public:
    metaspace_pre(std::string replacement, prepend_scheme scheme, bool split)
        : rep_(std::move(replacement)), scheme_(scheme), split_(split) {
        uni::decode(rep_, 0, rep_char_);
    }
    void pre_tokenize(std::vector<piece> &pieces) const override {
        for (auto &p : pieces) {
            std::string out;
            out.reserve(p.text.size() + 8);
            for (char c : p.text) {
                if (c == ' ') out += rep_;
                else out += c;
            }
            const bool starts = out.compare(0, rep_.size(), rep_) == 0;
            if (!starts && (scheme_ == prepend_scheme::always || (scheme_ == prepend_scheme::first && p.at_origin)))
                out.insert(0, rep_);
            p.text.swap(out);
        }
        split(pieces);
    }
    // HF's Metaspace: each space replaced (the replacement aligned to it),
    // then the replacement prepended (aligned to the first character).
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override {
        for (auto &p : pieces) {
            aligned_text out;
            out.text.reserve(p.text.text.size() + 8);
            out.align.reserve(p.text.text.size() + 8);
            for (size_t i = 0; i < p.text.text.size(); ++i) {
                if (p.text.text[i] == ' ') {
                    out.text += rep_;
                    out.align.insert(out.align.end(), rep_.size(), p.text.align[i]);
                } else {
                    out.text += p.text.text[i];
                    out.align.push_back(p.text.align[i]);
                }
            }
            const bool starts = out.text.compare(0, rep_.size(), rep_) == 0;
            if (!starts && (scheme_ == prepend_scheme::always || (scheme_ == prepend_scheme::first && p.at_origin)))
                prepend_aligned(out, rep_);
            p.text = std::move(out);
        }
        split(pieces);
    }

private:
    template <typename Piece>
    void split(std::vector<Piece> &pieces) const {
        if (!split_) return;
        const char32_t r = rep_char_;
        split_pieces(pieces, behavior::merged_with_next, false, [r](std::string_view s, std::vector<segment> &m) {
            char_matches(s, [r](char32_t c) { return c == r; }, m);
        });
    }

    std::string rep_;
    char32_t rep_char_ = 0;
    prepend_scheme scheme_;
    bool split_;
};

class sequence_pre final : public pre_tokenizer {
public:
    explicit sequence_pre(std::vector<std::unique_ptr<pre_tokenizer>> parts) : parts_(std::move(parts)) {}
    void pre_tokenize(std::vector<piece> &pieces) const override {
        for (const auto &p : parts_) p->pre_tokenize(pieces);
    }
    void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const override {
        for (const auto &p : parts_) p->pre_tokenize_aligned(pieces);
    }

private:
    std::vector<std::unique_ptr<pre_tokenizer>> parts_;
};

// ============================================================ post-processors

}  // namespace

namespace {

// TemplateProcessing (and BertProcessing / RobertaProcessing, which are fixed
// templates): the single or pair template's special tokens around the texts'
// ids, each id typed as the template says. Without add_special the texts are
// still typed and laid out by the template, only without its special tokens
// (as HF's apply_template does).
class template_processor final : public post_processor {
public:
    // An id sequence to insert (sequence < 0), or the ids of text `sequence`
    // (0 = $A, 1 = $B), all typed `type_id`.
    struct item {
        std::vector<int32_t> ids;
        int sequence;
        int32_t type_id;
    };
    // has_pair false: the file gives no pair template; a pair is then left
    // as it is without special tokens, and is an error with them.
    template_processor(std::vector<item> single, std::vector<item> pair, bool has_pair)
        : single_(std::move(single)), pair_(std::move(pair)), has_pair_(has_pair) {}

    void process(std::vector<encoding> &encs, bool add_special, const token_text_fn &,
                 const std::string_view *) const override {
        if (encs.size() == 2 && !has_pair_) {
            if (!add_special) return;
            core::fail(LLMKIT_ERROR_UNSUPPORTED, "the post_processor's template has no \"pair\": special tokens "
                                                 "cannot be added to a pair of texts");
        }
        encoding out;
        out.has_spans = encs[0].has_spans;
        for (const auto &it : encs.size() == 2 ? pair_ : single_) {
            if (it.sequence < 0) {
                if (!add_special) continue;
                out.ids.insert(out.ids.end(), it.ids.begin(), it.ids.end());
                out.type_ids.insert(out.type_ids.end(), it.ids.size(), it.type_id);
                out.sequence_ids.insert(out.sequence_ids.end(), it.ids.size(), -1);
                if (out.has_spans) out.spans.insert(out.spans.end(), it.ids.size(), std::pair<size_t, size_t>(0, 0));
                continue;
            }
            if (size_t(it.sequence) >= encs.size()) continue;  // $B of the pair template does not occur for one text
            const encoding &e = encs[size_t(it.sequence)];
            out.ids.insert(out.ids.end(), e.ids.begin(), e.ids.end());
            out.type_ids.insert(out.type_ids.end(), e.ids.size(), it.type_id);
            out.sequence_ids.insert(out.sequence_ids.end(), e.sequence_ids.begin(), e.sequence_ids.end());
            out.spans.insert(out.spans.end(), e.spans.begin(), e.spans.end());
        }
        encs.assign(1, std::move(out));
    }
    int32_t max_id() const override {
        int32_t m = -1;
        for (const auto *items : {&single_, &pair_})
            for (const auto &it : *items)
                for (int32_t id : it.ids) m = std::max(m, id);
        return m;
    }

private:
    std::vector<item> single_, pair_;
    bool has_pair_;
};

// ByteLevel's post-processor, and the first step of RobertaProcessing: adds
// nothing, and with trim_offsets moves each span past the spaces ("Ġ" or
// whitespace) at the ends of its token's string (HF's process_offsets; the
// one space add_prefix_space put before the first token stays).
class trim_offsets_processor final : public post_processor {
public:
    trim_offsets_processor(bool trim, bool add_prefix_space) : trim_(trim), prefix_(add_prefix_space) {}
    void process(std::vector<encoding> &encs, bool, const token_text_fn &token_text,
                 const std::string_view *inputs) const override {
        if (!trim_) return;
        for (auto &enc : encs)
            for (size_t i = 0; enc.has_spans && i < enc.spans.size(); ++i)
                if (enc.sequence_ids[i] >= 0)  // tokens a template added have no text to trim
                    trim(token_text(enc.ids[i]), i == 0, inputs[enc.sequence_ids[i]], enc.spans[i]);
    }
    int32_t max_id() const override { return -1; }

private:
    void trim(std::string_view t, bool first_token, std::string_view input, std::pair<size_t, size_t> &span) const {
        auto space = [](char32_t c) { return c == 0x120 || uni::is_whitespace(c); };
        size_t leading = 0, trailing = 0;
        bool in_lead = true;
        for (size_t k = 0; k < t.size();) {
            char32_t c;
            k += uni::decode(t, k, c);
            const bool sp = space(c);
            if (in_lead && sp) ++leading;
            else in_lead = false;
            trailing = sp ? trailing + 1 : 0;
        }
        auto &[b, e] = span;
        if (leading > 0) {
            const bool first = first_token || b == 0;
            if (first && prefix_ && leading == 1) leading = 0;
            size_t nb = b;  // b + leading characters
            for (size_t k = 0; k < leading && nb < input.size(); ++k) nb += char_at(input, nb);
            b = std::min(nb, e);
        }
        if (trailing > 0) {
            size_t ne = e, k = 0;  // e - trailing characters, when there are that many
            for (; k < trailing && ne > 0; ++k) {
                --ne;
                while (ne > 0 && (static_cast<unsigned char>(input[ne]) & 0xC0) == 0x80) --ne;
            }
            if (k == trailing) e = std::max(ne, b);
        }
    }

    bool trim_, prefix_;
};

class sequence_processor final : public post_processor {
public:
    explicit sequence_processor(std::vector<std::unique_ptr<post_processor>> parts) : parts_(std::move(parts)) {}
    void process(std::vector<encoding> &encs, bool add_special, const token_text_fn &token_text,
                 const std::string_view *inputs) const override {
        for (const auto &p : parts_) p->process(encs, add_special, token_text, inputs);
    }
    int32_t max_id() const override {
        int32_t m = -1;
        for (const auto &p : parts_) m = std::max(m, p->max_id());
        return m;
    }

private:
    std::vector<std::unique_ptr<post_processor>> parts_;
};

int32_t token_id(const json &j, const std::string &path) {
    if (!j.is_number_integer()) bad(path, std::string("expected a token id, got ") + kind(j));
    const int64_t v = j.get<int64_t>();
    if (v < 0 || v >= (int64_t(1) << 24)) bad(path, "token id " + std::to_string(v) + " is outside [0, 16777216)");
    return int32_t(v);
}

// ["[SEP]", 102] of BertProcessing / RobertaProcessing.
int32_t pair_id(const json &obj, const char *key, const std::string &path) {
    const json &v = member(obj, key, path);
    const std::string p = child(path, key);
    if (!v.is_array() || v.size() != 2 || !v[0].is_string()) bad(p, "expected [token, id]");
    return token_id(v[1], child(p, 1));
}

// ============================================================ decoders

class byte_level_decoder final : public decoder {
public:
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::string bytes;
        for (const auto &t : tokens) {
            const size_t mark = bytes.size();
            bool ok = true;
            for (size_t i = 0; i < t.size() && ok;) {
                char32_t c;
                i += uni::decode(t, i, c);
                const int b = char_to_byte(c);
                if (b < 0) ok = false;
                else bytes += char(b);
            }
            if (!ok) {  // a token with characters outside the map passes as it is
                bytes.resize(mark);
                bytes += t;
            }
        }
        tokens.assign(1, utf8_lossy(bytes));
    }
};

// Rust's str::replace: every occurrence of `from` (an empty one matches
// before every character and at the end) replaced by `to`.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    if (from.empty()) {
        for (size_t i = 0; i < s.size(); i += char_at(s, i)) {
            out += to;
            out.append(s.substr(i, char_at(s, i)));
        }
        out += to;
        return out;
    }
    size_t last = 0;
    for (size_t p = s.find(from); p != std::string_view::npos; p = s.find(from, p + from.size())) {
        out.append(s.substr(last, p - last));
        out += to;
        last = p + from.size();
    }
    out.append(s.substr(last));
    return out;
}

// WordPiece's cleanup: the spaces English detokenization removes.
void cleanup(std::string &s) {
    static const std::pair<const char *, const char *> rules[] = {
        {" .", "."},     {" ?", "?"},         {" !", "!"},      {" ,", ","},    {" ' ", "'"},  {" n't", "n't"},
        {" 'm", "'m"},   {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto &[from, to] : rules)
        if (s.find(from) != std::string::npos) s = replace_all(s, from, to);
}

class wordpiece_decoder final : public decoder {
public:
    wordpiece_decoder(std::string prefix, bool clean) : prefix_(std::move(prefix)), cleanup_(clean) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string &t = tokens[i];
            if (i != 0) {
                if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
                else t.insert(0, 1, ' ');
            }
            if (cleanup_) cleanup(t);
        }
    }

private:
    std::string prefix_;
    bool cleanup_;
};

// CTC (wav2vec2-style speech models): repeated tokens collapse into one, the
// pad (blank) token disappears, and with cleanup the word delimiter becomes a
// space after WordPiece's cleanup; tokens left empty are dropped.
class ctc_decoder final : public decoder {
public:
    ctc_decoder(std::string pad, std::string delimiter, bool clean)
        : pad_(std::move(pad)), delimiter_(std::move(delimiter)), cleanup_(clean) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::vector<std::string> out;
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (i > 0 && tokens[i] == tokens[i - 1]) continue;  // dedup compares the tokens as they came
            std::string t = replace_all(tokens[i], pad_, "");
            if (cleanup_) {
                cleanup(t);
                t = replace_all(t, delimiter_, " ");
            }
            if (!t.empty()) out.push_back(std::move(t));
        }
        tokens.swap(out);
    }

private:
    std::string pad_, delimiter_;
    bool cleanup_;
};

class metaspace_decoder final : public decoder {
public:
    metaspace_decoder(std::string replacement, prepend_scheme scheme) : rep_(std::move(replacement)), scheme_(scheme) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string out;
            const std::string &t = tokens[i];
            for (size_t p = 0; p < t.size();) {
                if (t.compare(p, rep_.size(), rep_) == 0) {
                    if (!(i == 0 && scheme_ != prepend_scheme::never)) out += ' ';
                    p += rep_.size();
                } else {
                    out += t[p++];
                }
            }
            tokens[i].swap(out);
        }
    }

private:
    std::string rep_;
    prepend_scheme scheme_;
};

class byte_fallback_decoder final : public decoder {
public:
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::vector<std::string> out;
        std::string bytes;
        size_t n_bytes = 0;
        auto flush = [&] {
            if (!n_bytes) return;
            if (utf8_lossy(bytes) == bytes) out.push_back(bytes);
            else
                for (size_t k = 0; k < n_bytes; ++k) out.emplace_back("\xEF\xBF\xBD");
            bytes.clear();
            n_bytes = 0;
        };
        for (auto &t : tokens) {
            int v = -1;
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') v = hex_byte(t[3], t[4]);
            if (v >= 0) {
                bytes += char(v);
                ++n_bytes;
            } else {
                flush();
                out.push_back(std::move(t));
            }
        }
        flush();
        tokens.swap(out);
    }

private:
    static int hex_digit(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    static int hex_byte(char a, char b) {
        const int h = hex_digit(a), l = hex_digit(b);
        return h < 0 || l < 0 ? -1 : h * 16 + l;
    }
};

class fuse_decoder final : public decoder {
public:
    void decode_chain(std::vector<std::string> &tokens) const override {
        std::string all;
        for (const auto &t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
};

class strip_decoder final : public decoder {
public:
    strip_decoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (auto &t : tokens) {
            size_t b = 0, e = t.size();
            for (size_t k = 0; k < start_ && b < e && t.compare(b, content_.size(), content_) == 0; ++k)
                b += content_.size();
            for (size_t k = 0; k < stop_ && e >= b + content_.size() &&
                               t.compare(e - content_.size(), content_.size(), content_) == 0;
                 ++k)
                e -= content_.size();
            t = t.substr(b, e - b);
        }
    }

private:
    std::string content_;
    size_t start_, stop_;
};

class replace_decoder final : public decoder {
public:
    replace_decoder(const json &j, const std::string &path) : r_(j, path) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (auto &t : tokens) r_.apply(t);
    }

private:
    replacer r_;
};

class bpe_suffix_decoder final : public decoder {
public:
    explicit bpe_suffix_decoder(std::string suffix) : suffix_(std::move(suffix)) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        if (suffix_.empty()) return;
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string &t = tokens[i];
            const std::string rep = i + 1 == tokens.size() ? "" : " ";
            std::string out;
            size_t last = 0;
            for (size_t p = t.find(suffix_); p != std::string::npos; p = t.find(suffix_, p + suffix_.size())) {
                out.append(t, last, p - last);
                out += rep;
                last = p + suffix_.size();
            }
            out.append(t, last, std::string::npos);
            t.swap(out);
        }
    }

private:
    std::string suffix_;
};

class sequence_decoder final : public decoder {
public:
    explicit sequence_decoder(std::vector<std::unique_ptr<decoder>> parts) : parts_(std::move(parts)) {}
    void decode_chain(std::vector<std::string> &tokens) const override {
        for (const auto &p : parts_) p->decode_chain(tokens);
    }

private:
    std::vector<std::unique_ptr<decoder>> parts_;
};

template <typename T, typename Make>
std::vector<std::unique_ptr<T>> sequence_of(const json &j, const char *key, const std::string &path, Make make) {
    const json &arr = array_member(j, key, path);
    std::vector<std::unique_ptr<T>> parts;
    for (size_t i = 0; i < arr.size(); ++i) {
        const std::string p = child(child(path, key), i);
        if (arr[i].is_null()) bad(p, "expected an object, got null");
        parts.push_back(make(arr[i], p));
    }
    return parts;
}

}  // namespace

// ============================================================ factories

std::unique_ptr<normalizer> make_normalizer(const json &j, const std::string &path) {
    if (j.is_null()) return nullptr;
    const std::string t = type_of(j, path);
    if (t == "BertNormalizer") {
        const bool lower = boolean(j, "lowercase", path, true);
        return std::make_unique<bert_normalizer>(boolean(j, "clean_text", path, true),
                                                 boolean(j, "handle_chinese_chars", path, true),
                                                 boolean(j, "strip_accents", path, lower), lower);
    }
    if (t == "NFC") return std::make_unique<form_normalizer>(uni::form::nfc);
    if (t == "NFD") return std::make_unique<form_normalizer>(uni::form::nfd);
    if (t == "NFKC") return std::make_unique<form_normalizer>(uni::form::nfkc);
    if (t == "NFKD") return std::make_unique<form_normalizer>(uni::form::nfkd);
    if (t == "Lowercase") return std::make_unique<lowercase_normalizer>();
    if (t == "StripAccents") return std::make_unique<strip_accents_normalizer>();
    if (t == "Strip")
        return std::make_unique<strip_normalizer>(boolean(j, "strip_left", path, true),
                                                  boolean(j, "strip_right", path, true));
    if (t == "Prepend") return std::make_unique<prepend_normalizer>(str(j, "prepend", path));
    if (t == "Replace") return std::make_unique<replace_normalizer>(j, path);
    if (t == "ByteLevel") return std::make_unique<byte_level_normalizer>();
    if (t == "Precompiled") {
        const std::string p = child(path, "precompiled_charsmap");
        std::string blob;
        if (!base64_decode(str(j, "precompiled_charsmap", path), blob)) bad(p, "expected base64 of a SentencePiece charsmap");
        return std::make_unique<precompiled_normalizer>(spm_charsmap(blob, "at " + p));
    }
    if (t == "Nmt") return std::make_unique<nmt_normalizer>();
    if (t == "Sequence")
        return std::make_unique<sequence_normalizer>(sequence_of<normalizer>(j, "normalizers", path, make_normalizer));
    if (t.empty()) bad(path, "normalizer without a \"type\"");
    unsupported(path, "normalizer type \"" + t + "\" is not supported");
}

std::unique_ptr<pre_tokenizer> make_pre_tokenizer(const json &j, const std::string &path) {
    if (j.is_null()) return nullptr;
    const std::string t = type_of(j, path);
    if (t == "ByteLevel")
        return std::make_unique<byte_level_pre>(boolean(j, "add_prefix_space", path, true),
                                                boolean(j, "use_regex", path, true));
    if (t == "BertPreTokenizer") {
        std::vector<std::unique_ptr<pre_tokenizer>> parts;
        parts.push_back(char_split([](char32_t c) { return uni::is_whitespace(c); }, behavior::removed));
        parts.push_back(char_split(
            [](char32_t c) { return uni::is_ascii_punctuation(c) || uni::is_punctuation(c); }, behavior::isolated));
        return std::make_unique<sequence_pre>(std::move(parts));
    }
    if (t == "Whitespace") {
        // Rust regex's \w (Alphabetic, M, Nd, Pc, Join_Control) and \s (White_Space).
        const std::string cls = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";
        return std::make_unique<regex_split_pre>(
            compile("[" + cls + "]+|[^" + cls + R"(\s]+)", path), "", behavior::removed, true);
    }
    if (t == "WhitespaceSplit")
        return char_split([](char32_t c) { return uni::is_whitespace(c); }, behavior::removed);
    if (t == "Metaspace")
        return std::make_unique<metaspace_pre>(replacement_of(j, path), scheme_of(j, path),
                                               boolean(j, "split", path, true));
    if (t == "Split") {
        bool is_regex = false;
        const std::string p = pattern_of(member(j, "pattern", path), child(path, "pattern"), is_regex);
        const behavior how = behavior_of(j, "behavior", path, behavior::isolated);
        const bool invert = boolean(j, "invert", path, false);
        return std::make_unique<regex_split_pre>(is_regex ? compile(p, child(path, "pattern")) : nullptr, p, how, invert);
    }
    if (t == "Digits") {
        const bool individual = boolean(j, "individual_digits", path, false);
        return char_split([](char32_t c) { return uni::is_numeric(c); },
                          individual ? behavior::isolated : behavior::contiguous);
    }
    if (t == "Punctuation")
        return char_split([](char32_t c) { return uni::is_ascii_punctuation(c) || uni::is_punctuation(c); },
                          behavior_of(j, "behavior", path, behavior::isolated));
    if (t == "UnicodeScripts") return std::make_unique<unicode_scripts_pre>();
    if (t == "FixedLength") {
        const uint64_t length = uint(j, "length", path, 5, 1u << 30);
        if (length == 0) bad(child(path, "length"), "must be at least 1");
        return std::make_unique<fixed_length_pre>(size_t(length));
    }
    if (t == "CharDelimiterSplit") {
        const std::string d = str(j, "delimiter", path);
        if (d.empty() || uni::count_chars(d) != 1) bad(child(path, "delimiter"), "must be one character");
        char32_t dc;
        uni::decode(d, 0, dc);
        return char_split([dc](char32_t c) { return c == dc; }, behavior::removed);
    }
    if (t == "Sequence")
        return std::make_unique<sequence_pre>(
            sequence_of<pre_tokenizer>(j, "pretokenizers", path, make_pre_tokenizer));
    if (t.empty()) bad(path, "pre_tokenizer without a \"type\"");
    unsupported(path, "pre_tokenizer type \"" + t + "\" is not supported");
}

namespace {

// The "single" or "pair" template of a TemplateProcessing: {"SpecialToken":
// {"id", "type_id"}} items, looked up in its special_tokens, and {"Sequence":
// {"id": "A" | "B", "type_id"}} items ("B" only in the pair template).
std::vector<template_processor::item> template_items(const json &j, const char *key, bool pair,
                                                     const std::string &path) {
    const json &specials = member(j, "special_tokens", path);
    const std::string sp = child(path, "special_tokens");
    object_at(specials, sp);
    const json &items_json = array_member(j, key, path);
    std::vector<template_processor::item> items;
    for (size_t i = 0; i < items_json.size(); ++i) {
        const std::string p = child(child(path, key), i);
        const json &it = object_at(items_json[i], p);
        const char *kind = it.contains("SpecialToken") ? "SpecialToken" : it.contains("Sequence") ? "Sequence" : nullptr;
        if (!kind) bad(p, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
        const std::string kp = child(p, kind);
        const json &body = object_at(it[kind], kp);
        const std::string id = str(body, "id", kp);
        const int32_t type_id = int32_t(uint(body, "type_id", kp, 0, 1u << 30));
        if (std::string(kind) == "Sequence") {
            if (id != "A" && !(pair && id == "B"))
                bad(child(kp, "id"), std::string("a ") + (pair ? "pair" : "single-sequence") +
                                         " template refers to sequence \"" + id + "\"");
            items.push_back({{}, id == "A" ? 0 : 1, type_id});
            continue;
        }
        const auto s = specials.find(id);
        if (s == specials.end()) bad(p, "special token \"" + id + "\" is not in special_tokens");
        const std::string spn = child(sp, id);
        const json &ids = array_member(*s, "ids", spn);
        template_processor::item item{{}, -1, type_id};
        for (size_t k = 0; k < ids.size(); ++k) item.ids.push_back(token_id(ids[k], child(child(spn, "ids"), k)));
        items.push_back(std::move(item));
    }
    return items;
}

}  // namespace

std::unique_ptr<post_processor> make_post_processor(const json &j, const std::string &path) {
    if (j.is_null()) return nullptr;
    const std::string t = type_of(j, path);
    if (t == "TemplateProcessing") {
        const bool has_pair = j.contains("pair") && !j["pair"].is_null();
        return std::make_unique<template_processor>(template_items(j, "single", false, path),
                                                    has_pair ? template_items(j, "pair", true, path)
                                                             : std::vector<template_processor::item>{},
                                                    has_pair);
    }
    if (t == "BertProcessing" || t == "RobertaProcessing") {
        const int32_t cls = pair_id(j, "cls", path), sep = pair_id(j, "sep", path);
        if (t == "BertProcessing")  // [CLS] A [SEP] B:1 [SEP]:1
            return std::make_unique<template_processor>(
                std::vector<template_processor::item>{{{cls}, -1, 0}, {{}, 0, 0}, {{sep}, -1, 0}},
                std::vector<template_processor::item>{
                    {{cls}, -1, 0}, {{}, 0, 0}, {{sep}, -1, 0}, {{}, 1, 1}, {{sep}, -1, 1}},
                true);
        // RobertaProcessing trims offsets (as ByteLevel does), then adds
        // <s> A </s> </s> B </s>, every id typed 0 (with or without them).
        std::vector<std::unique_ptr<post_processor>> parts;
        parts.push_back(std::make_unique<trim_offsets_processor>(boolean(j, "trim_offsets", path, true),
                                                                 boolean(j, "add_prefix_space", path, true)));
        parts.push_back(std::make_unique<template_processor>(
            std::vector<template_processor::item>{{{cls}, -1, 0}, {{}, 0, 0}, {{sep}, -1, 0}},
            std::vector<template_processor::item>{
                {{cls}, -1, 0}, {{}, 0, 0}, {{sep, sep}, -1, 0}, {{}, 1, 0}, {{sep}, -1, 0}},
            true));
        return std::make_unique<sequence_processor>(std::move(parts));
    }
    if (t == "ByteLevel")  // it only trims offsets
        return std::make_unique<trim_offsets_processor>(boolean(j, "trim_offsets", path, true),
                                                        boolean(j, "add_prefix_space", path, true));
    if (t == "Sequence")
        return std::make_unique<sequence_processor>(
            sequence_of<post_processor>(j, "processors", path, make_post_processor));
    if (t.empty()) bad(path, "post_processor without a \"type\"");
    unsupported(path, "post_processor type \"" + t + "\" is not supported");
}

std::unique_ptr<decoder> make_decoder(const json &j, const std::string &path) {
    if (j.is_null()) return nullptr;
    const std::string t = type_of(j, path);
    if (t == "ByteLevel") return std::make_unique<byte_level_decoder>();
    if (t == "WordPiece") {
        std::string prefix = "##";
        opt_str(j, "prefix", path, prefix);
        return std::make_unique<wordpiece_decoder>(prefix, boolean(j, "cleanup", path, true));
    }
    if (t == "Metaspace") return std::make_unique<metaspace_decoder>(replacement_of(j, path), scheme_of(j, path));
    if (t == "ByteFallback") return std::make_unique<byte_fallback_decoder>();
    if (t == "Fuse") return std::make_unique<fuse_decoder>();
    if (t == "Strip") {
        const std::string c = str(j, "content", path);
        if (uni::count_chars(c) != 1) bad(child(path, "content"), "must be one character");
        return std::make_unique<strip_decoder>(c, size_t(uint(j, "start", path, 0, 1u << 30)),
                                               size_t(uint(j, "stop", path, 0, 1u << 30)));
    }
    if (t == "Replace") return std::make_unique<replace_decoder>(j, path);
    if (t == "CTC") {
        std::string pad = "<pad>", delimiter = "|";
        opt_str(j, "pad_token", path, pad);
        opt_str(j, "word_delimiter_token", path, delimiter);
        return std::make_unique<ctc_decoder>(pad, delimiter, boolean(j, "cleanup", path, true));
    }
    if (t == "BPEDecoder") {
        std::string suffix = "</w>";
        opt_str(j, "suffix", path, suffix);
        return std::make_unique<bpe_suffix_decoder>(suffix);
    }
    if (t == "Sequence")
        return std::make_unique<sequence_decoder>(sequence_of<decoder>(j, "decoders", path, make_decoder));
    if (t.empty()) bad(path, "decoder without a \"type\"");
    unsupported(path, "decoder type \"" + t + "\" is not supported");
}

}  // namespace llmkit::tok::hf
