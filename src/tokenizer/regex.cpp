#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.hpp"

#include <pcre2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "core/error.hpp"

namespace llmkit::tok {

namespace {

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    const int n = pcre2_get_error_message(code, buf, sizeof buf);
    return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<const char *>(buf));
}

// One per thread: the match data (one pair is enough, the patterns capture
// nothing we use) and a JIT stack that can grow to 8 MiB for long pieces.
struct thread_scratch {
    pcre2_match_data *data = nullptr;
    pcre2_match_context *context = nullptr;
    pcre2_jit_stack *stack = nullptr;

    thread_scratch() {
        data = pcre2_match_data_create(1, nullptr);
        context = pcre2_match_context_create(nullptr);
        stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
        if (!data || !context || !stack) {
            release();
            throw std::bad_alloc();
        }
        pcre2_jit_stack_assign(context, nullptr, stack);
    }
    ~thread_scratch() { release(); }
    void release() noexcept {
        if (data) pcre2_match_data_free(data);
        if (context) pcre2_match_context_free(context);
        if (stack) pcre2_jit_stack_free(stack);
        data = nullptr;
        context = nullptr;
        stack = nullptr;
    }
};

thread_scratch &scratch() {
    thread_local thread_scratch s;
    return s;
}

}  // namespace

regex::regex(const std::string &pattern, bool dollar_end_only) : pattern_(pattern) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | (dollar_end_only ? PCRE2_DOLLAR_ENDONLY : 0u), &err,
                                     &offset, nullptr);
    if (!code)
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "pre-tokenizer pattern: ", pcre2_message(err), " at offset ", offset,
                   " of \"", pattern, "\"");
    code_ = code;
    // JIT is an optimisation: where it is unavailable the interpreter gives the same matches.
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

regex::~regex() { pcre2_code_free(static_cast<pcre2_code *>(code_)); }

bool regex::next_match(std::string_view text, size_t start, size_t &begin, size_t &end) const {
    thread_scratch &s = scratch();
    const auto *code = static_cast<const pcre2_code *>(code_);
    const auto *subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    // The whole text was validated once; checking it again on every call would be quadratic.
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, s.data, s.context)
                        : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
        if (rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_JIT_STACKLIMIT)
            core::fail(LLMKIT_ERROR_OUT_OF_MEMORY, "pre-tokenizer: ", pcre2_message(rc), " at byte ", start);
        // A user's pattern with nested quantifiers (`(a+)+$`) backtracks
        // exponentially; PCRE2 stops it at its limits, and the caller hears why.
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
            core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "pre-tokenizer pattern backtracks too much on this text (",
                       pcre2_message(rc), " at byte ", start,
                       "): nested quantifiers such as (a+)+ can take exponential time");
        core::fail(LLMKIT_ERROR_INTERNAL, "pre-tokenizer: ", pcre2_message(rc), " at byte ", start);
    }
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s.data);
    begin = ov[0];
    end = ov[1];
    return true;
}

namespace {

// UTF-8 validation as a table-driven automaton whose state is a bit offset:
// the next state is (row[byte] >> state) & 63, one shift and one mask per
// byte with no branch, where decoding each character branches on its length
// (multilingual text mixes lengths, so those branches mispredict). States:
// a character may start (ok), 1/2/3 continuation bytes wanted, the second
// byte's narrower range after E0 (A0-BF: no overlong), ED (80-9F: no
// surrogate), F0 (90-BF: no overlong) and F4 (80-8F: at most U+10FFFF), and
// bad, which never leaves.
enum : unsigned { s_ok = 0, s_cont1 = 6, s_cont2 = 12, s_cont3 = 18, s_e0 = 24, s_ed = 30, s_f0 = 36, s_f4 = 42, s_bad = 48 };

struct utf8_automaton {
    uint64_t row[256];
};

constexpr utf8_automaton make_utf8_automaton() {
    utf8_automaton a{};
    for (unsigned b = 0; b < 256; ++b) {
        uint64_t r = 0;
        unsigned next[9] = {s_bad, s_bad, s_bad, s_bad, s_bad, s_bad, s_bad, s_bad, s_bad};  // by state / 6
        if (b < 0x80) next[s_ok / 6] = s_ok;
        else if (b < 0xC0) {  // a continuation byte
            next[s_cont1 / 6] = s_ok;
            next[s_cont2 / 6] = s_cont1;
            next[s_cont3 / 6] = s_cont2;
            if (b >= 0xA0) next[s_e0 / 6] = s_cont1;
            if (b < 0xA0) next[s_ed / 6] = s_cont1;
            if (b >= 0x90) next[s_f0 / 6] = s_cont2;
            if (b < 0x90) next[s_f4 / 6] = s_cont2;
        } else if (b >= 0xC2 && b <= 0xDF) next[s_ok / 6] = s_cont1;
        else if (b == 0xE0) next[s_ok / 6] = s_e0;
        else if (b == 0xED) next[s_ok / 6] = s_ed;
        else if (b >= 0xE1 && b <= 0xEF) next[s_ok / 6] = s_cont2;
        else if (b == 0xF0) next[s_ok / 6] = s_f0;
        else if (b >= 0xF1 && b <= 0xF3) next[s_ok / 6] = s_cont3;
        else if (b == 0xF4) next[s_ok / 6] = s_f4;
        for (unsigned k = 0; k < 9; ++k) r |= uint64_t(next[k]) << (6 * k);
        a.row[b] = r;
    }
    return a;
}

constexpr utf8_automaton k_utf8 = make_utf8_automaton();

// The automaton's state after p[0, n) from `state`. Blocks of 16 ASCII bytes
// are skipped whole (English text); blocks of 16 rather than 8, so that text
// of other scripts, where few blocks are all ASCII, rarely mispredicts the test.
uint64_t utf8_state_after(const unsigned char *p, size_t n, uint64_t state) noexcept {
    size_t i = 0;
    while (i + 16 <= n) {
        uint64_t w[2];
        std::memcpy(w, p + i, 16);
        if (state == s_ok && !((w[0] | w[1]) & 0x8080808080808080ull)) {
            i += 16;
            continue;
        }
        for (size_t end = i + 16; i < end; ++i) state = (k_utf8.row[p[i]] >> state) & 63;
        if (state == s_bad) return s_bad;
    }
    for (; i < n; ++i) state = (k_utf8.row[p[i]] >> state) & 63;
    return state;
}

inline bool is_continuation_byte(unsigned char b) { return (b & 0xC0) == 0x80; }

// Whether p[0, n) is valid UTF-8. Each step of the automaton waits on the one
// before (a load, a shift and a mask: several cycles per byte of non-ASCII
// text), so long text is cut into four quarters whose automata run side by
// side, four independent chains instead of one. A quarter starts at a byte
// that is no continuation byte, where valid text starts a character, so the
// text is valid exactly when every quarter is valid on its own.
bool valid_utf8_fast(const unsigned char *p, size_t n) noexcept {
    constexpr size_t k_streams = 4;
    if (n < 64 * k_streams) return utf8_state_after(p, n, s_ok) == s_ok;
    size_t cut[k_streams + 1];
    cut[0] = 0;
    cut[k_streams] = n;
    for (size_t k = 1; k < k_streams; ++k) {
        size_t c = k * (n / k_streams);
        for (int back = 0; back < 3 && is_continuation_byte(p[c]); ++back) --c;
        if (is_continuation_byte(p[c])) return false;  // four continuation bytes in a row
        cut[k] = c;
    }
    size_t shortest = n;
    for (size_t k = 0; k < k_streams; ++k) shortest = std::min(shortest, cut[k + 1] - cut[k]);
    const unsigned char *q[k_streams] = {p + cut[0], p + cut[1], p + cut[2], p + cut[3]};
    uint64_t st[k_streams] = {s_ok, s_ok, s_ok, s_ok};
    size_t i = 0;
    for (; i + 16 <= shortest; i += 16) {
        uint64_t high = 0;
        for (size_t k = 0; k < k_streams; ++k) {
            uint64_t w[2];
            std::memcpy(w, q[k] + i, 16);
            high |= (w[0] | w[1]) & 0x8080808080808080ull;
        }
        if ((st[0] | st[1] | st[2] | st[3]) == s_ok && !high) continue;  // s_ok is 0
        for (size_t j = i; j < i + 16; ++j) {
            st[0] = (k_utf8.row[q[0][j]] >> st[0]) & 63;
            st[1] = (k_utf8.row[q[1][j]] >> st[1]) & 63;
            st[2] = (k_utf8.row[q[2][j]] >> st[2]) & 63;
            st[3] = (k_utf8.row[q[3][j]] >> st[3]) & 63;
        }
        if (st[0] == s_bad || st[1] == s_bad || st[2] == s_bad || st[3] == s_bad) return false;
    }
    for (size_t k = 0; k < k_streams; ++k)
        if (utf8_state_after(q[k] + i, cut[k + 1] - cut[k] - i, st[k]) != s_ok) return false;
    return true;
}

// The offset of the first invalid sequence at or after `from`, or text.size().
size_t first_invalid_utf8(std::string_view text, size_t from) noexcept {
    // Valid text (nearly all of it) is confirmed by the automaton; only
    // invalid text is walked again below to find where it goes wrong.
    if (from <= text.size() &&
        valid_utf8_fast(reinterpret_cast<const unsigned char *>(text.data()) + from, text.size() - from))
        return text.size();
    const auto *p = reinterpret_cast<const unsigned char *>(text.data());
    const size_t n = text.size();
    size_t i = from;
    while (i < n) {
        const unsigned c = p[i];
        if (c < 0x80) {
            ++i;
            // Eight ASCII bytes at a time.
            while (i + 8 <= n) {
                uint64_t w;
                std::memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            continue;
        }
        size_t len = 0;
        uint32_t cp = 0, min = 0;
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
        bool ok = len != 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) ok = false;
            else cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
        if (!ok) return i;
        i += len;
    }
    return n;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept { return first_invalid_utf8(text, 0) == text.size(); }

void check_utf8(std::string_view text, const char *what) {
    const size_t bad = first_invalid_utf8(text, 0);
    if (bad != text.size()) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, what, " is not valid UTF-8 at byte ", bad);
}

}  // namespace llmkit::tok
