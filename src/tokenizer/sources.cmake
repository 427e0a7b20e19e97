# Sources of the tokenizer block (src/tokenizer and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_TOKENIZER_SOURCES
  src/tokenizer/regex.cpp
  src/tokenizer/bpe.cpp
  src/tokenizer/tokenizer.cpp
  src/tokenizer/tiktoken.cpp
  bindings/c/tokenizer.cpp)
# Extra link libraries of the block (e.g. PCRE2), as imported targets or names.
# Pre-tokenizer regexes: PCRE2 with Unicode properties and JIT (Debian libpcre2-dev).
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# The installed package names the plain library, so that consumers of the
# exported static target need no pkg-config module of their own.
set(LLMKIT_TOKENIZER_LIBS "$<BUILD_INTERFACE:PkgConfig::PCRE2>" "$<INSTALL_INTERFACE:pcre2-8>")
