// Standard base64 (RFC 4648 alphabet, '=' padding): tiktoken rank files hold
// their tokens this way, and tokenizer.json its SentencePiece charsmaps.
#pragma once

#include <string>
#include <string_view>

namespace llmkit::tok {

std::string base64_encode(std::string_view bytes);
// False (out unspecified) unless `in` is well-formed padded base64.
bool base64_decode(std::string_view in, std::string &out);

}  // namespace llmkit::tok
