# Sources of the tokenizer block (src/tokenizer and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_TOKENIZER_SOURCES)
# Extra link libraries of the block (e.g. PCRE2), as imported targets or names.
set(LLMKIT_TOKENIZER_LIBS)
