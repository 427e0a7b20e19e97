#include "core/cpu_features.hpp"

#include <cctype>
#include <cstdlib>
#include <string>

namespace llmkit::core {

isa_level max_cpu_isa() noexcept {
    static const isa_level cap = [] {
        const char *v = std::getenv("LLMKIT_MAX_CPU_ISA");
        std::string s = v ? v : "";
        for (char &c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
        if (s == "generic") return isa_level::generic;
        if (s == "avx2") return isa_level::avx2;
        return isa_level::avx512;
    }();
    return cap;
}

}  // namespace llmkit::core
