# Sources of the file-format block (src/formats: GGUF, and the tokenizer file
# formats) and its C layer, appended to the library by the top-level
# CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_FORMATS_SOURCES
  src/formats/gguf.cpp
  bindings/c/gguf.cpp)
