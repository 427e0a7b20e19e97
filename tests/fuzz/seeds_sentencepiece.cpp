// Writes small SentencePiece models into the directory given as argv[1]:
// seeds for fuzz_sentencepiece. The data folder's Llama 2 model (500 KB,
// 32000 pieces) is cut to its first 600 pieces (the specials, the 256 byte
// pieces and the first merges) and written in several settings, so the
// mutations start from files that load and reach every code path: BPE and
// Unigram, with and without byte fallback, dummy prefix and whitespace rules.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "src/tokenizer/sentencepiece_model.pb.h"  // generated in the build tree

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const std::string source = std::string(LLMKIT_FUZZ_DATA_DIR) + "/sentencepiece/llama2/tokenizer.model";
    std::ifstream in(source, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    llmkit::spm::ModelProto full;
    if (!in || !full.ParseFromString(bytes.str())) {
        std::fprintf(stderr, "seeds_sentencepiece: cannot read %s\n", source.c_str());
        return 1;
    }
    llmkit::spm::ModelProto small = full;
    small.mutable_pieces()->DeleteSubrange(600, small.pieces_size() - 600);
    small.mutable_trainer_spec()->set_vocab_size(600);

    int written = 0;
    auto write = [&](const llmkit::spm::ModelProto &m, const char *name) {
        std::ofstream out(dir + "/" + name, std::ios::binary);
        if (!m.SerializeToOstream(&out)) {
            std::fprintf(stderr, "seeds_sentencepiece: cannot write %s/%s\n", dir.c_str(), name);
            std::exit(1);
        }
        ++written;
    };
    write(small, "llama2-600.model");

    llmkit::spm::ModelProto m = small;
    m.mutable_trainer_spec()->set_byte_fallback(false);  // and "<0x41>" a piece like any other (byte pieces need the flag)
    for (auto &piece : *m.mutable_pieces())
        if (piece.type() == llmkit::spm::ModelProto::SentencePiece::BYTE)
            piece.set_type(llmkit::spm::ModelProto::SentencePiece::NORMAL);
    write(m, "no-byte-fallback.model");

    m = small;
    m.mutable_normalizer_spec()->set_add_dummy_prefix(false);
    m.mutable_normalizer_spec()->set_remove_extra_whitespaces(true);
    write(m, "no-dummy-prefix.model");

    m = small;
    m.mutable_trainer_spec()->set_treat_whitespace_as_suffix(true);
    write(m, "whitespace-suffix.model");

    m = small;  // the same pieces scored as a Unigram model (Viterbi)
    m.mutable_trainer_spec()->set_model_type(llmkit::spm::TrainerSpec::UNIGRAM);
    write(m, "unigram.model");

    m = small;  // no unknown piece: unk_id names a normal one
    m.mutable_trainer_spec()->set_unk_id(5);
    m.mutable_trainer_spec()->set_pad_id(3);
    write(m, "unk-moved.model");

    std::printf("seeds_sentencepiece: %d seeds in %s\n", written, dir.c_str());
    return 0;
}
