// Incremental (streaming) decoding: token ids arrive one or a few at a time,
// as from a sampler, and only whole UTF-8 characters are handed out; the
// bytes of a character cut between tokens are held back until its last byte
// arrives. Bytes that can never become valid UTF-8 are replaced by U+FFFD as
// Python's bytes.decode("utf-8", "replace") does (one U+FFFD per maximal
// subpart, Unicode's "substitution of maximal subparts"), so the chunks
// joined equal tiktoken's decode(ids) (which uses errors="replace") for any
// way the ids are split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

// Appends to `out` the UTF-8 of bytes[0, n) with every maximal invalid
// subpart replaced by U+FFFD (EF BF BD). When `final` is false, a valid but
// incomplete sequence at the end is not consumed: the return value is the
// number of bytes consumed (n, or n minus that tail of 1..3 bytes). When
// `final` is true the tail also becomes one U+FFFD and n is returned.
size_t utf8_replace_invalid(std::string_view bytes, bool final, std::string &out);

class stream_decoder {
public:
    // The tokenizer must outlive the decoder; it is only read, so many
    // decoders (one per stream, each used by one thread at a time) may share it.
    explicit stream_decoder(const tokenizer &tok) : tok_(tok) {}

    // Decodes ids and appends to `out` the text that is now complete. Fails
    // with LLMKIT_ERROR_OUT_OF_RANGE for an id that is no token, leaving the
    // state as it was (nothing of this call is kept).
    void feed(const int32_t *ids, size_t n, std::string &out);
    // Appends the held-back bytes (an incomplete character: one U+FFFD) and
    // resets the decoder for a new stream.
    void flush(std::string &out);
    // Bytes held back (0..3).
    size_t pending() const noexcept { return pending_.size(); }
    // The held-back bytes, to undo a feed whose output the caller could not
    // take (the C layer's buffer-too-small path): save, feed, restore.
    const std::string &state() const noexcept { return pending_; }
    void restore(std::string state) { pending_ = std::move(state); }

private:
    const tokenizer &tok_;
    std::string pending_;  // a valid but incomplete UTF-8 sequence
};

}  // namespace llmkit::tok
