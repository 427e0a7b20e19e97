// Two regex dialects spelled for PCRE2, so that a pattern means what it means
// where it came from: tiktoken's (Rust's regex crate under fancy-regex) and
// Hugging Face tokenizers' (Oniguruma, Ruby syntax). See regex.hpp.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/regex.hpp"

namespace llmkit::tok {

namespace {

enum class dialect { rust, oniguruma };

// \s (White_Space, both dialects) and \w as class members; Rust's \w is UTS
// #18's word class.
constexpr std::string_view k_space = R"(\t-\r\x{85}\p{Z})";
constexpr std::string_view k_rust_word = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";
// Oniguruma's \w: Alphabetic, marks, decimal digits and connector punctuation;
// outside a class also Latin-1's superscripts and fractions (No), as measured
// against tokenizers on every code point.
constexpr std::string_view k_onig_word_in_class = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc})";
constexpr std::string_view k_onig_word = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{B2}\x{B3}\x{B9}\x{BC}-\x{BE})";
constexpr std::string_view k_hex = "0-9A-Fa-f";  // fancy-regex's \h

// The longest class expression the translation writes (see class_atom).
constexpr size_t k_max_translated = size_t(1) << 20;

std::string bracket(std::string_view members, bool negated) {
    return std::string(negated ? "[^" : "[") + std::string(members) + "]";
}

// POSIX classes ([[:alpha:]]) as PCRE2 class members: Rust's are ASCII only,
// Oniguruma's Unicode properties (alpha is Alphabetic, lower Lowercase). Names
// not listed for Oniguruma keep PCRE2's meaning; an empty result means that
// the dialect has no class of that name.
std::string_view posix_members(std::string_view name, dialect d) {
    static constexpr struct {
        std::string_view name, members;
    } k_onig[] = {{"alnum", "\\p{Alphabetic}\\p{Nd}"},
                  {"alpha", "\\p{Alphabetic}"},
                  {"ascii", "\\x00-\\x7F"},
                  {"blank", "\\t\\p{Zs}"},
                  {"cntrl", "\\p{Cc}"},
                  {"digit", "\\p{Nd}"},
                  {"graph", "^\\p{Z}\\p{Cc}\\p{Cn}\\p{Cs}"},  // '^': all but these
                  {"lower", "\\p{Lowercase}"},
                  {"print", "^\\p{Zl}\\p{Zp}\\p{Cc}\\p{Cn}\\p{Cs}"},
                  {"punct", "\\p{P}\\p{S}"},
                  {"space", k_space},
                  {"upper", "\\p{Uppercase}"},
                  {"word", k_onig_word_in_class},
                  {"xdigit", k_hex}};
    if (d == dialect::oniguruma) {
        for (const auto &p : k_onig)
            if (name == p.name) return p.members;
        return {};
    }
    static constexpr struct {
        std::string_view name, members;
    } k_posix[] = {{"alnum", "0-9A-Za-z"},     {"alpha", "A-Za-z"},      {"ascii", "\\x00-\\x7F"},
                   {"blank", "\\t "},          {"cntrl", "\\x00-\\x1F\\x7F"}, {"digit", "0-9"},
                   {"graph", "!-~"},           {"lower", "a-z"},         {"print", " -~"},
                   {"punct", "!-/:-@\\[-`{-~"}, {"space", "\\t\\n\\x0B\\f\\r "}, {"upper", "A-Z"},
                   {"word", "0-9A-Za-z_"},     {"xdigit", "0-9A-Fa-f"}};
    for (const auto &p : k_posix)
        if (name == p.name) return p.members;
    return {};
}

// Rust's loose matching of property names: case, spaces, '_' and '-' do not
// count, and an "is" prefix may be dropped.
std::string loose(std::string_view name) {
    std::string out;
    for (char c : name)
        if (c != ' ' && c != '_' && c != '-') out += char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The short General_Category name of a Rust category name (short or long), or nullptr.
const char *general_category(std::string_view name) {
    static const struct {
        const char *loose_long, *alias, *pcre2;
    } k_gc[] = {{"letter", "l", "L"},
                {"casedletter", "lc", "L&"},
                {"uppercaseletter", "lu", "Lu"},
                {"lowercaseletter", "ll", "Ll"},
                {"titlecaseletter", "lt", "Lt"},
                {"modifierletter", "lm", "Lm"},
                {"otherletter", "lo", "Lo"},
                {"mark", "m", "M"},
                {"combiningmark", "m", "M"},
                {"nonspacingmark", "mn", "Mn"},
                {"spacingmark", "mc", "Mc"},
                {"enclosingmark", "me", "Me"},
                {"number", "n", "N"},
                {"decimalnumber", "nd", "Nd"},
                {"digit", "nd", "Nd"},
                {"letternumber", "nl", "Nl"},
                {"othernumber", "no", "No"},
                {"punctuation", "p", "P"},
                {"punct", "p", "P"},
                {"connectorpunctuation", "pc", "Pc"},
                {"dashpunctuation", "pd", "Pd"},
                {"openpunctuation", "ps", "Ps"},
                {"closepunctuation", "pe", "Pe"},
                {"initialpunctuation", "pi", "Pi"},
                {"finalpunctuation", "pf", "Pf"},
                {"otherpunctuation", "po", "Po"},
                {"symbol", "s", "S"},
                {"mathsymbol", "sm", "Sm"},
                {"currencysymbol", "sc", "Sc"},
                {"modifiersymbol", "sk", "Sk"},
                {"othersymbol", "so", "So"},
                {"separator", "z", "Z"},
                {"spaceseparator", "zs", "Zs"},
                {"lineseparator", "zl", "Zl"},
                {"paragraphseparator", "zp", "Zp"},
                {"other", "c", "C"},
                {"control", "cc", "Cc"},
                {"cntrl", "cc", "Cc"},
                {"format", "cf", "Cf"},
                {"surrogate", "cs", "Cs"},
                {"privateuse", "co", "Co"},
                {"unassigned", "cn", "Cn"}};
    std::string n = loose(name);
    for (int pass = 0; pass < 2; ++pass) {
        for (const auto &g : k_gc)
            if (n == g.loose_long || n == g.alias) return g.pcre2;
        if (n.size() > 2 && n.compare(0, 2, "is") == 0) n.erase(0, 2);
        else break;
    }
    return nullptr;
}

// Whether PCRE2 knows `name` as a script (\p{sc:name}).
bool is_script(std::string_view name) {
    const std::string probe = "\\p{sc:" + std::string(name) + "}";
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(probe.data()), probe.size(), PCRE2_UTF | PCRE2_UCP,
                                     &err, &offset, nullptr);
    if (!code) return false;
    pcre2_code_free(code);
    return true;
}

// The body of a Rust \p{...} (or the letter of \pL) as PCRE2 reads it with
// Rust's meaning: category names long or short, gc= / sc= / scx= forms, and a
// bare script name as Script (PCRE2 would take Script_Extensions: U+3002, the
// ideographic full stop, is Han there and not in Rust).
std::string property_body(std::string_view body) {
    const size_t eq = body.find_first_of("=:");
    if (eq != std::string_view::npos) {
        const std::string key = loose(body.substr(0, eq));
        const std::string_view value = body.substr(eq + 1);
        if (key == "gc" || key == "generalcategory") {
            if (const char *gc = general_category(value)) return gc;
        } else if (key == "sc" || key == "script") {
            return "sc:" + std::string(value);
        } else if (key == "scx" || key == "scriptextensions") {
            return "scx:" + std::string(value);
        }
        return std::string(body);
    }
    if (const char *gc = general_category(body)) return gc;
    std::string name(body);
    const std::string l = loose(body);
    if (l.size() > 2 && l.compare(0, 2, "is") == 0 && !is_script(name) && is_script(l.substr(2))) name = l.substr(2);
    if (is_script(name)) return "sc:" + name;
    return name;  // a binary property (Alphabetic, White_Space, ...) or ASCII / Any, as PCRE2 names them
}

class translator {
public:
    translator(std::string_view p, dialect d)
        : p_(p),
          d_(d),
          word_(d == dialect::rust ? k_rust_word : k_onig_word),
          class_word_(d == dialect::rust ? k_rust_word : k_onig_word_in_class) {}

    std::string run() {
        while (i_ < p_.size()) {
            const char c = p_[i_];
            if (c == '\\') {
                outside_escape();
            } else if (c == '[') {
                out_ += class_atom();
            } else if (d_ == dialect::oniguruma && (c == '^' || c == '$')) {
                // Ruby's anchors are per line: at the ends of the text and next to any \n.
                out_ += c == '^' ? "(?<![^\\n])" : "(?![^\\n])";
                ++i_;
            } else if (d_ == dialect::oniguruma && at("(?") && i_ + 2 < p_.size() && p_[i_ + 2] != '<' &&
                       p_[i_ + 2] != '=' && p_[i_ + 2] != '!' && p_[i_ + 2] != '>' && p_[i_ + 2] != '#') {
                // Ruby's (?m) is PCRE2's (?s): '.' matches \n too.
                out_ += "(?";
                for (i_ += 2; i_ < p_.size() && std::string_view("imx-").find(p_[i_]) != std::string_view::npos; ++i_)
                    out_ += p_[i_] == 'm' ? 's' : p_[i_];
            } else {
                out_ += c;
                ++i_;
            }
        }
        return out_;
    }

private:
    [[noreturn]] void bad(const std::string &why) const {
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "pre-tokenizer pattern: ", why, " at offset ", i_, " of \"",
                   std::string(p_), "\"");
    }

    bool at(std::string_view s) const { return p_.substr(i_, s.size()) == s; }

    // The length of the UTF-8 character at i (1 for a stray byte; PCRE2 checks).
    size_t char_len(size_t i) const {
        const auto b = static_cast<unsigned char>(p_[i]);
        const size_t n = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        return i + n <= p_.size() ? n : 1;
    }

    // \u0041 and \U00000041 (Rust) as \x{...} (PCRE2); i_ at the u/U.
    std::string unicode_escape() {
        const size_t digits = p_[i_] == 'u' ? 4 : 8;
        ++i_;
        std::string hex;
        if (i_ < p_.size() && p_[i_] == '{') {  // \u{41}
            const size_t close = p_.find('}', i_);
            if (close == std::string_view::npos) bad("unterminated \\u{...}");
            hex = std::string(p_.substr(i_ + 1, close - i_ - 1));
            i_ = close + 1;
        } else {
            hex = std::string(p_.substr(i_, digits));
            i_ += hex.size();
        }
        return "\\x{" + hex + "}";
    }

    // A \p / \P escape (i_ at the p or P) with its name as PCRE2 reads it (property_body).
    std::string property() {
        const std::string head = "\\" + std::string(1, p_[i_]);
        ++i_;
        if (i_ < p_.size() && p_[i_] == '{') {
            const size_t close = p_.find('}', i_);
            if (close == std::string_view::npos) bad("unterminated \\p{...}");
            const std::string_view body = p_.substr(i_ + 1, close - i_ - 1);
            i_ = close + 1;
            const bool negated = !body.empty() && body[0] == '^';  // \p{^Greek} is \P{Greek}
            const std::string h = negated ? (head == "\\p" ? "\\P" : "\\p") : head;
            return h + "{" + property_body(negated ? body.substr(1) : body) + "}";
        }
        if (i_ >= p_.size()) bad("\\p without a name");
        const size_t n = char_len(i_);
        const std::string_view letter = p_.substr(i_, n);
        i_ += n;
        return head + "{" + property_body(letter) + "}";
    }

    void outside_escape() {
        ++i_;  // past the backslash
        if (i_ >= p_.size()) bad("trailing backslash");
        const char d = p_[i_];
        const std::string word(word_);
        switch (d) {
        case 's': out_ += bracket(k_space, false); ++i_; return;
        case 'S': out_ += bracket(k_space, true); ++i_; return;
        case 'w': out_ += bracket(word_, false); ++i_; return;
        case 'W': out_ += bracket(word_, true); ++i_; return;
        case 'h': out_ += bracket(k_hex, false); ++i_; return;
        case 'H': out_ += bracket(k_hex, true); ++i_; return;
        case 'b': out_ += "(?:(?<=[" + word + "])(?![" + word + "])|(?<![" + word + "])(?=[" + word + "]))"; ++i_; return;
        case 'B': out_ += "(?:(?<=[" + word + "])(?=[" + word + "])|(?<![" + word + "])(?![" + word + "]))"; ++i_; return;
        case '<': out_ += "(?:(?<![" + word + "])(?=[" + word + "]))"; ++i_; return;
        case '>': out_ += "(?:(?<=[" + word + "])(?![" + word + "]))"; ++i_; return;
        case 'u':
        case 'U': out_ += unicode_escape(); return;
        case 'p':
        case 'P': out_ += property(); return;
        default: {
            const size_t n = char_len(i_);
            out_ += '\\';
            out_ += p_.substr(i_, n);
            i_ += n;
        }
        }
    }

    // One member of a class: plain members go to `members` (inside one PCRE2
    // bracket), others become one-character expressions in `atoms`.
    struct class_set {
        std::string members;
        std::vector<std::string> atoms;

        std::string expression() const {
            if (atoms.empty()) return bracket(members, false);
            std::string e = "(?:";
            bool first = true;
            if (!members.empty()) {
                e += bracket(members, false);
                first = false;
            }
            for (const std::string &a : atoms) {
                if (!first) e += '|';
                e += a;
                first = false;
            }
            return e + ")";
        }
    };

    // A literal character (or a single-character escape) as a class member; i_ at it.
    std::string class_char() {
        if (p_[i_] == '\\') {
            ++i_;
            if (i_ >= p_.size()) bad("trailing backslash");
            if (p_[i_] == 'u' || p_[i_] == 'U') return unicode_escape();
            if (p_[i_] == 'x') {  // \xHH or \x{...}
                const size_t start = i_ - 1;
                ++i_;
                if (i_ < p_.size() && p_[i_] == '{') {
                    const size_t close = p_.find('}', i_);
                    if (close == std::string_view::npos) bad("unterminated \\x{...}");
                    i_ = close + 1;
                } else {
                    i_ = std::min(i_ + 2, p_.size());
                }
                return std::string(p_.substr(start, i_ - start));
            }
            const size_t n = char_len(i_);
            std::string s = "\\" + std::string(p_.substr(i_, n));
            i_ += n;
            return s;
        }
        const size_t n = char_len(i_);
        std::string s(p_.substr(i_, n));
        i_ += n;
        if (n == 1 && (s == "]" || s == "\\" || s == "^" || s == "-" || s == "[")) s = "\\" + s;
        return s;
    }

    // Whether the escape at i_ (a backslash) names a class of characters, not one character.
    bool class_escape_ahead() const {
        if (i_ + 1 >= p_.size()) return false;
        const char d = p_[i_ + 1];
        return d == 's' || d == 'S' || d == 'w' || d == 'W' || d == 'h' || d == 'H' || d == 'd' || d == 'D' ||
               d == 'p' || d == 'P';
    }

    // Reads one union of class items (up to an operator or the closing bracket) into s.
    void class_union(class_set &s, bool first_item) {
        for (bool first = first_item;; first = false) {
            if (i_ >= p_.size()) bad("unterminated character class");
            if (p_[i_] == ']' && !first) return;
            // Oniguruma has && but neither -- nor ~~.
            if (at("&&") || (d_ == dialect::rust && (at("~~") || (at("--") && !first)))) return;
            if (at("[:")) {
                const size_t close = p_.find(":]", i_ + 2);
                if (close != std::string_view::npos) {
                    std::string_view name = p_.substr(i_ + 2, close - i_ - 2);
                    bool negated = !name.empty() && name[0] == '^';
                    if (negated) name.remove_prefix(1);
                    if (std::string_view members = posix_members(name, d_); !members.empty()) {
                        i_ = close + 2;
                        if (members[0] == '^') {  // the complement of the rest
                            members.remove_prefix(1);
                            negated = !negated;
                        }
                        if (negated) s.atoms.push_back(bracket(members, true));
                        else s.members += members;
                        continue;
                    }
                }
            }
            if (p_[i_] == '[') {
                s.atoms.push_back(class_atom());
                continue;
            }
            if (p_[i_] == '\\' && class_escape_ahead()) {
                const char d = p_[i_ + 1];
                i_ += 2;
                switch (d) {
                case 's': s.members += k_space; break;
                case 'S': s.atoms.push_back(bracket(k_space, true)); break;
                case 'w': s.members += class_word_; break;
                case 'W': s.atoms.push_back(bracket(class_word_, true)); break;
                case 'h': s.members += k_hex; break;
                case 'H': s.atoms.push_back(bracket(k_hex, true)); break;
                case 'd': s.members += "\\d"; break;
                case 'D': s.members += "\\D"; break;
                default: --i_; s.members += property(); break;  // p / P
                }
                continue;
            }
            std::string lo = class_char();
            // A range a-z; a '-' before ']' or another '-' is a literal or the difference operator.
            if (at("-") && i_ + 1 < p_.size() && p_[i_ + 1] != ']' && p_[i_ + 1] != '-') {
                ++i_;
                if (p_[i_] == '[' || (p_[i_] == '\\' && class_escape_ahead())) bad("a range must end in a character");
                s.members += lo + "-" + class_char();
            } else {
                s.members += lo;
            }
        }
    }

    // A Rust class from its '[' to its ']' as a PCRE2 expression that matches one character.
    std::string class_atom() {
        ++i_;  // past '['
        bool negated = false;
        if (i_ < p_.size() && p_[i_] == '^') {
            negated = true;
            ++i_;
        }
        class_set first;
        class_union(first, true);
        std::string expr = first.expression();
        bool simple = first.atoms.empty();
        for (;;) {
            if (i_ >= p_.size()) bad("unterminated character class");
            if (p_[i_] == ']') {
                ++i_;
                break;
            }
            const std::string op(p_.substr(i_, 2));
            i_ += 2;
            class_set right;
            class_union(right, false);
            const std::string r = right.expression();
            // ~~ writes both sides twice, so a chain of them doubles the size
            // at each step; a pattern that grows past this is refused.
            if (expr.size() + r.size() > k_max_translated)
                bad("the class grows past " + std::to_string(k_max_translated) + " bytes when spelled for PCRE2");
            if (op == "&&") expr = "(?:(?=" + r + ")" + expr + ")";
            else if (op == "--") expr = "(?:(?!" + r + ")" + expr + ")";
            else expr = "(?:(?!" + r + ")" + expr + "|(?!" + expr + ")" + r + ")";  // ~~
            simple = false;
        }
        if (!negated) return expr;
        if (simple) return bracket(first.members, true);
        return "(?:(?!" + expr + ")(?s:.))";
    }

    std::string_view p_;
    dialect d_;
    std::string_view word_, class_word_;  // \w outside and inside a class
    size_t i_ = 0;
    std::string out_;
};

}  // namespace

std::string rust_regex_to_pcre2(std::string_view pattern) { return translator(pattern, dialect::rust).run(); }

std::string oniguruma_to_pcre2(std::string_view pattern) { return translator(pattern, dialect::oniguruma).run(); }

}  // namespace llmkit::tok
