# Sources of the tokenizer block (src/tokenizer and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_TOKENIZER_SOURCES
  src/tokenizer/regex.cpp
  src/tokenizer/regex_dialects.cpp
  src/tokenizer/pretokenize.cpp
  src/tokenizer/bpe.cpp
  src/tokenizer/pair_table.cpp
  src/tokenizer/tokenizer.cpp
  src/tokenizer/tiktoken.cpp
  src/tokenizer/base64.cpp
  src/tokenizer/hf_unicode.cpp
  src/tokenizer/hf_models.cpp
  src/tokenizer/hf_pipeline.cpp
  src/tokenizer/hf_json.cpp
  src/tokenizer/sentencepiece.cpp
  src/tokenizer/sentencepiece_model.cpp
  src/tokenizer/spm_charsmap.cpp
  src/tokenizer/gguf_vocab.cpp
  src/tokenizer/stream_decoder.cpp
  src/tokenizer/offsets.cpp
  src/tokenizer/pair.cpp
  src/tokenizer/train.cpp
  src/tokenizer/train_save.cpp
  bindings/c/tokenizer.cpp)
# Extra link libraries of the block (e.g. PCRE2), as imported targets or names.
# Pre-tokenizer regexes: PCRE2 with Unicode properties and JIT (Debian libpcre2-dev).
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# The installed package names the plain library, so that consumers of the
# exported static target need no pkg-config module of their own.
set(LLMKIT_TOKENIZER_LIBS "$<BUILD_INTERFACE:PkgConfig::PCRE2>" "$<INSTALL_INTERFACE:pcre2-8>")

# SentencePiece .model files: protobuf (Debian libprotobuf-dev, protobuf-compiler).
# The C++ code for our own minimal sentencepiece_model.proto is generated at
# build time (as generated/src/tokenizer/sentencepiece_model.pb.h); it needs only the lite runtime (no reflection). Its symbols stay
# inside libllmkit (hidden visibility plus cmake/llmkit.map).
find_package(Protobuf REQUIRED)
set(_llmkit_proto_out ${PROJECT_BINARY_DIR}/generated)
file(MAKE_DIRECTORY ${_llmkit_proto_out})
protobuf_generate(LANGUAGE cpp OUT_VAR _llmkit_proto_sources
  PROTOS ${PROJECT_SOURCE_DIR}/src/tokenizer/sentencepiece_model.proto
  IMPORT_DIRS ${PROJECT_SOURCE_DIR}
  PROTOC_OUT_DIR ${_llmkit_proto_out})
list(FILTER _llmkit_proto_sources INCLUDE REGEX "\\.cc$")
list(APPEND LLMKIT_TOKENIZER_SOURCES ${_llmkit_proto_sources})
set_source_files_properties(src/tokenizer/sentencepiece_model.cpp ${_llmkit_proto_sources}
  PROPERTIES INCLUDE_DIRECTORIES "${_llmkit_proto_out}")
list(APPEND LLMKIT_TOKENIZER_LIBS "$<BUILD_INTERFACE:protobuf::libprotobuf-lite>" "$<INSTALL_INTERFACE:protobuf-lite>")

# HF tokenizer.json (tokjson): nlohmann-json (header-only, Debian nlohmann-json3-dev),
# utf8proc for normalization forms and Unicode categories (libutf8proc-dev) and
# ICU's common library for the Script property (UnicodeScripts; libicu-dev).
find_package(nlohmann_json 3 REQUIRED)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(ICU_UC REQUIRED IMPORTED_TARGET icu-uc)
list(APPEND LLMKIT_TOKENIZER_LIBS "$<BUILD_INTERFACE:nlohmann_json::nlohmann_json>"
     "$<BUILD_INTERFACE:PkgConfig::UTF8PROC>" "$<INSTALL_INTERFACE:utf8proc>"
     "$<BUILD_INTERFACE:PkgConfig::ICU_UC>" "$<INSTALL_INTERFACE:icuuc>")
