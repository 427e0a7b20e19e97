#include "core/file.hpp"

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/error.hpp"

namespace llmkit::core {

std::string read_rest(std::FILE *f, const std::string &path) {
    std::string data;
    // The remaining length, when the stream can seek (a regular file); a pipe
    // or a file that grows meanwhile is read on in chunks below.
    const long at = std::ftell(f);
    if (at >= 0 && std::fseek(f, 0, SEEK_END) == 0) {
        const long end = std::ftell(f);
        std::fseek(f, at, SEEK_SET);
        if (end > at) {
            data.resize(size_t(end - at));
            data.resize(std::fread(data.data(), 1, data.size(), f));
        }
    }
    char buf[1 << 16];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) data.append(buf, n);
    if (std::ferror(f)) fail(LLMKIT_ERROR_IO, "cannot read ", path, ": ", std::strerror(errno));
    return data;
}

std::string read_file(const std::string &path) {
    struct closer {
        void operator()(std::FILE *f) const { std::fclose(f); }
    };
    std::unique_ptr<std::FILE, closer> f(std::fopen(path.c_str(), "rb"));
    if (!f) fail(LLMKIT_ERROR_IO, "cannot open ", path, ": ", std::strerror(errno));
    return read_rest(f.get(), path);
}

}  // namespace llmkit::core
