"""Tokenization, measured by llmkit: BPE merging one word step by step with
cl100k_base's real ranks, the first merges BPE training learns from a corpus,
a streaming decode of an emoji split over tokens, and a comparison of real
tokenizers (vocabulary size, compression in UTF-8 bytes per token on two
corpora). The data folder comes from the LLMKIT_DATA_DIR environment variable
or the first argument. Run by the snippet_py_tokenization test; its output is
checked against tokenization.expected."""
import os
import sys
from pathlib import Path

import llmkit

data = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["LLMKIT_DATA_DIR"])
tik = data / "tiktoken"
cl100k = llmkit.Tokenizer.from_tiktoken(tik / "cl100k_base.tiktoken", "cl100k_base")

# 1. BPE step by step: start from bytes, merge the adjacent pair whose
#    concatenation has the lowest rank (= id), until no pair is a token.
word = " tokenization"
parts = [bytes([b]) for b in word.encode()]
print("start:", parts)
while True:
    ranks = [cl100k.token_to_id(a + b) for a, b in zip(parts, parts[1:])]
    candidates = [(r, i) for i, r in enumerate(ranks) if r is not None]
    if not candidates:
        break
    rank, i = min(candidates)
    parts[i:i + 2] = [parts[i] + parts[i + 1]]
    print(f"merge rank {rank:6d}:", parts)
ids = [cl100k.token_to_id(p) for p in parts]
assert ids == cl100k.encode(word)
print("ids:", ids)

# 2. Training learns the merges: the first ten from Shakespeare (cl100k's regex).
text = (data / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8")
trained = llmkit.train_bpe([text[:200_000]], 256 + 10)
print("first merges:", [trained.id_to_token(i).decode() for i in range(256, 266)])

# 3. Streaming decode: an emoji is several byte tokens; nothing is printed
#    until its last byte arrives.
dec = cl100k.decoder()
pieces = [dec.feed(i) for i in cl100k.encode("ok 🦙!")]
print("stream:", pieces + [dec.flush()])

# 4. Real tokenizers side by side: bytes per token (higher = fewer tokens).
corpora = {name: (data / "corpus" / f).read_text(encoding="utf-8")
           for name, f in (("mixed", "mixed-slice.txt"), ("udhr", "udhr-60lang.txt"))}
presets = [("r50k_base", "r50k_base.tiktoken", "GPT-2"), ("p50k_base", "p50k_base.tiktoken", "GPT-2"),
           ("cl100k_base", "cl100k_base.tiktoken", "cl100k"), ("o200k_base", "o200k_base.tiktoken", "o200k"),
           ("llama3", "llama3/tokenizer.model", "Llama 3"), ("qwen2", "qwen/qwen.tiktoken", "Qwen2")]
print()
print("| tokenizer | vocab | regex family | normalizer | bytes/token mixed | bytes/token udhr |")
print("|---|---:|---|---|---:|---:|")
for name, file, family in presets:
    tok = llmkit.Tokenizer.from_tiktoken(tik / file, name)
    cells = []
    for text in corpora.values():
        n = len(tok.encode_ordinary(text))
        cells.append(f"{len(text.encode()) / n:.3f}")
    print(f"| {name} | {tok.vocab_size} | {family} | none | {cells[0]} | {cells[1]} |")

# 5. A pair of texts (a cross-encoder's query and passage): BERT's post-processor
#    template lays them out as [CLS] a [SEP] b [SEP] and types the second text 1.
bert = llmkit.Tokenizer.from_file(data / "hf-tokenizers" / "bert-base-uncased" / "tokenizer.json")
pair = bert.encode_pair("Who wrote it?", "Shakespeare did.", add_special_tokens=True)
print()
print("pair tokens:", [bert.id_to_token(i) for i in pair.ids])
print("type ids:   ", pair.type_ids)
print("sequences:  ", pair.sequence_ids)
