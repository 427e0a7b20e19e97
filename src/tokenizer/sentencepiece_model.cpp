// Reading a SentencePiece `.model` file: the protobuf ModelProto parsed with
// the code protoc generates from sentencepiece_model.proto (lite runtime).
#include <limits>

#include <google/protobuf/arena.h>

#include "core/error.hpp"
#include "core/file.hpp"
#include "src/tokenizer/sentencepiece_model.pb.h"  // generated in the build tree
#include "tokenizer/sentencepiece.hpp"

namespace llmkit::tok {

namespace {

// Counts the top-level `pieces` fields (field 1) by walking the wire format,
// so that a hostile file announcing millions of pieces is refused before
// protobuf allocates a message for each. Malformed framing is left for the
// real parse to report.
size_t count_pieces(std::string_view data) {
    size_t count = 0, pos = 0;
    auto varint = [&](uint64_t &v) {
        v = 0;
        for (int shift = 0; shift < 64 && pos < data.size(); shift += 7) {
            const auto b = static_cast<unsigned char>(data[pos++]);
            v |= uint64_t(b & 0x7F) << shift;
            if (!(b & 0x80)) return true;
        }
        return false;
    };
    while (pos < data.size()) {
        uint64_t tag = 0, v = 0;
        if (!varint(tag)) break;
        switch (tag & 7) {
        case 0: if (!varint(v)) return count; break;
        case 1: pos += 8; break;
        case 5: pos += 4; break;
        case 2:
            if (!varint(v) || v > data.size() - pos) return count;
            pos += size_t(v);
            if ((tag >> 3) == 1) ++count;
            break;
        default: return count;  // groups or garbage: the parse decides
        }
    }
    return count;
}

}  // namespace

spm_model parse_sentencepiece_model(std::string_view data, const std::string &source) {
    if (data.size() > size_t(std::numeric_limits<int>::max()))
        core::fail(LLMKIT_ERROR_FORMAT, source, ": ", data.size(), " bytes is too large for a SentencePiece model");
    if (const size_t n = count_pieces(data); n > k_spm_max_pieces)
        core::fail(LLMKIT_ERROR_FORMAT, source, ": ", n, " pieces is more than the limit of ", k_spm_max_pieces);
    // On an arena: the model's tens of thousands of piece messages are then
    // carved from a few blocks and freed at once, where one allocation and
    // one free each took half of the load.
    google::protobuf::Arena arena;
    llmkit::spm::ModelProto &proto = *google::protobuf::Arena::CreateMessage<llmkit::spm::ModelProto>(&arena);
    if (!proto.ParseFromArray(data.data(), int(data.size())))
        core::fail(LLMKIT_ERROR_FORMAT, source, ": not a SentencePiece model (the protobuf ModelProto does not parse; "
                   "the file may be truncated or corrupt)");
    if (proto.pieces_size() == 0) core::fail(LLMKIT_ERROR_FORMAT, source, ": the model has no pieces");
    if (size_t(proto.pieces_size()) > k_spm_max_pieces)
        core::fail(LLMKIT_ERROR_FORMAT, source, ": ", proto.pieces_size(), " pieces is more than the limit of ",
                   k_spm_max_pieces);
    const auto &trainer = proto.trainer_spec();
    spm_model m;
    switch (trainer.model_type()) {
    case llmkit::spm::TrainerSpec::BPE: m.algo = spm_model::algorithm::bpe; break;
    case llmkit::spm::TrainerSpec::UNIGRAM: m.algo = spm_model::algorithm::unigram; break;
    default:
        core::fail(LLMKIT_ERROR_UNSUPPORTED, source, ": SentencePiece model type ",
                   llmkit::spm::TrainerSpec::ModelType_Name(trainer.model_type()),
                   " is not supported (BPE and UNIGRAM are)");
    }
    m.pieces.reserve(size_t(proto.pieces_size()));
    for (int i = 0; i < proto.pieces_size(); ++i) {
        auto &p = *proto.mutable_pieces(i);
        spm_piece piece;
        piece.text = std::move(*p.mutable_piece());  // the arena destroys what is left
        piece.score = p.score();
        piece.type = static_cast<spm_type>(p.type());
        m.pieces.push_back(std::move(piece));
    }
    const auto n = int32_t(m.pieces.size());
    // sentencepiece reads BOS/EOS as ids that name control pieces (or -1 for none).
    auto special_id = [&](int32_t id, const char *what) -> int32_t {
        if (id < 0) return -1;
        if (id >= n) core::fail(LLMKIT_ERROR_FORMAT, source, ": ", what, " id ", id, " is not below ", n, " pieces");
        return id;
    };
    m.bos_id = special_id(trainer.bos_id(), "bos");
    m.eos_id = special_id(trainer.eos_id(), "eos");
    // A .model file does not say what to add; Llama and Mistral put BOS first.
    m.add_bos = m.bos_id >= 0;
    m.byte_fallback = trainer.byte_fallback();
    m.treat_whitespace_as_suffix = trainer.treat_whitespace_as_suffix();
    m.unk_surface = trainer.unk_surface();
    const auto &norm = proto.normalizer_spec();
    m.add_dummy_prefix = norm.add_dummy_prefix();
    m.remove_extra_whitespaces = norm.remove_extra_whitespaces();
    m.escape_whitespaces = norm.escape_whitespaces();
    m.precompiled_charsmap = norm.precompiled_charsmap();
    if (m.precompiled_charsmap.empty() && norm.has_name() && norm.name() != "identity")
        core::fail(LLMKIT_ERROR_UNSUPPORTED, source, ": normalizer \"", norm.name(),
                   "\" has no precompiled_charsmap (only compiled rules can be applied)");
    return m;
}

std::unique_ptr<sentencepiece> load_sentencepiece(const std::string &path) {
    const std::string data = core::read_file(path);
    return std::make_unique<sentencepiece>(parse_sentencepiece_model(data, path), path);
}

}  // namespace llmkit::tok
