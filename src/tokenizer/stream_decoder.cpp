#include "tokenizer/stream_decoder.hpp"

namespace llmkit::tok {

namespace {

constexpr char k_replacement[] = "\xEF\xBF\xBD";  // U+FFFD

// The bytes a sequence starting with lead byte c has in all (1..4), or 0 when
// c can start none. The second byte's allowed range is narrower for E0, ED,
// F0 and F4 (no overlong forms, surrogates or code points above U+10FFFF).
int sequence_length(unsigned c, unsigned &lo, unsigned &hi) {
    lo = 0x80;
    hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        return 4;
    }
    return 0;  // 80..C1 (continuation or overlong lead), F5..FF
}

}  // namespace

size_t utf8_replace_invalid(std::string_view bytes, bool final, std::string &out) {
    const auto *p = reinterpret_cast<const unsigned char *>(bytes.data());
    const size_t n = bytes.size();
    size_t i = 0;
    size_t run = 0;  // start of the valid bytes not yet copied
    while (i < n) {
        if (p[i] < 0x80) {  // ASCII: the common case, copied in runs
            ++i;
            continue;
        }
        unsigned lo, hi;
        const int len = sequence_length(p[i], lo, hi);
        // How many bytes, lead included, form a valid prefix of a sequence.
        int good = len == 0 ? 0 : 1;
        while (good > 0 && good < len && i + size_t(good) < n) {
            const unsigned b = p[i + size_t(good)];
            if (b < lo || b > hi) break;
            lo = 0x80;
            hi = 0xBF;
            ++good;
        }
        if (len > 0 && good == len) {  // a whole character
            i += size_t(len);
            continue;
        }
        if (good > 0 && i + size_t(good) == n && !final) {  // cut short by the end: wait for more
            out.append(bytes.data() + run, i - run);
            return i;
        }
        // A maximal subpart that cannot be completed (or the end of the stream): one U+FFFD.
        out.append(bytes.data() + run, i - run);
        out.append(k_replacement, 3);
        i += size_t(good > 0 ? good : 1);
        run = i;
    }
    out.append(bytes.data() + run, n - run);
    return n;
}

void stream_decoder::feed(const int32_t *ids, size_t n, std::string &out) {
    std::string bytes = pending_;
    tok_.decode(ids, n, bytes);  // may throw: the state is still untouched
    const size_t used = utf8_replace_invalid(bytes, false, out);
    pending_.assign(bytes, used, std::string::npos);
}

void stream_decoder::flush(std::string &out) {
    utf8_replace_invalid(pending_, true, out);
    pending_.clear();
}

}  // namespace llmkit::tok
