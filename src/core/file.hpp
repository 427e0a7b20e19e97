// Reading a whole file into memory, for the loaders of small files
// (tokenizer.json, .tiktoken, .model). Large files (GGUF) are mapped instead.
#pragma once

#include <cstdio>
#include <string>

namespace llmkit::core {

// The rest of an open file from its current position, read in place into a
// string sized from the file's length where it has one (no regrowing copies);
// `path` names it in the LLMKIT_ERROR_IO error.
std::string read_rest(std::FILE *f, const std::string &path);

// The whole file; LLMKIT_ERROR_IO when it cannot be opened or read.
std::string read_file(const std::string &path);

}  // namespace llmkit::core
