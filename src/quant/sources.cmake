# Sources of the quantization block (src/quant and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_QUANT_SOURCES)
