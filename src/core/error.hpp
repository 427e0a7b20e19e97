// Errors inside the C++ core: throw llmkit::error, and the C layer turns it into
// a status code plus this thread's last-error message. Nothing here is exported.
#pragma once

#include <string>
#include <stdexcept>

#include "llmkit/llmkit.h"

namespace llmkit::core {

class error : public std::runtime_error {
public:
    error(llmkit_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    llmkit_status status() const noexcept { return status_; }

private:
    llmkit_status status_;
};

// printf-style message building would drag in formatting libraries; plain
// concatenation of any streamable values is enough for error text.
template <typename... Args>
[[noreturn]] void fail(llmkit_status status, const Args &...parts);

void set_last_error(llmkit_status status, const std::string &message) noexcept;
const char *last_error_message() noexcept;
void clear_last_error() noexcept;
const char *status_name(llmkit_status status) noexcept;

}  // namespace llmkit::core

#include <sstream>

namespace llmkit::core {
template <typename... Args>
[[noreturn]] void fail(llmkit_status status, const Args &...parts) {
    std::ostringstream os;
    (os << ... << parts);
    throw error(status, os.str());
}
}  // namespace llmkit::core
