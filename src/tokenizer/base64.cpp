#include "tokenizer/base64.hpp"

#include <cstdint>

namespace llmkit::tok {

namespace {

// The value of one base64 character; -1 for anything else ('=' included).
int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

}  // namespace

std::string base64_encode(std::string_view s) {
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((s.size() + 2) / 3 * 4);
    for (size_t i = 0; i < s.size(); i += 3) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16;
        if (i + 1 < s.size()) v |= uint32_t(uint8_t(s[i + 1])) << 8;
        if (i + 2 < s.size()) v |= uint8_t(s[i + 2]);
        out += a[v >> 18];
        out += a[(v >> 12) & 63];
        out += i + 1 < s.size() ? a[(v >> 6) & 63] : '=';
        out += i + 2 < s.size() ? a[v & 63] : '=';
    }
    return out;
}

bool base64_decode(std::string_view in, std::string &out) {
    out.clear();
    if (in.empty() || in.size() % 4 != 0) return false;
    out.reserve(in.size() / 4 * 3);
    size_t pad = 0;
    if (in.back() == '=') ++pad;
    if (in.size() >= 2 && in[in.size() - 2] == '=') ++pad;
    for (size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        uint32_t v = 0;
        for (size_t k = 0; k < 4; ++k) {
            const unsigned char c = static_cast<unsigned char>(in[i + k]);
            int d = b64_value(c);
            if (d < 0) {
                if (!(last && c == '=' && k >= 4 - pad)) return false;
                d = 0;
            }
            v = (v << 6) | uint32_t(d);
        }
        out += char(v >> 16);
        if (!last || pad < 2) out += char((v >> 8) & 0xFF);
        if (!last || pad < 1) out += char(v & 0xFF);
    }
    return true;
}

}  // namespace llmkit::tok
