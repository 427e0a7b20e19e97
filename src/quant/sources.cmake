# Sources of the quantization block (src/quant and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_QUANT_SOURCES
  src/quant/gguf_blocks.cpp
  src/quant/quantize.cpp
  bindings/c/quant.cpp)
# Byte-exact agreement with ggml's reference quantizers needs every float
# operation rounded on its own: no FMA contraction (and never -ffast-math).
set_source_files_properties(src/quant/gguf_blocks.cpp PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
