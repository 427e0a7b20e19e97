# Sources of the attention block (src/attention and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_ATTENTION_SOURCES)
