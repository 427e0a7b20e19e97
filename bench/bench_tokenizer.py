#!/usr/bin/env python3
"""Tokenizer throughput: llmkit against tiktoken and Hugging Face tokenizers, on the CPU,
with id agreement checked on every measured input.

    pip install tiktoken tokenizers
    PYTHONPATH=build-tokpy/python LLMKIT_DATA_DIR=/work/shared/data python3 bench/bench_tokenizer.py

All three load the same vocabularies from local files (no network): tiktoken gets
the rank file through tiktoken.load.load_tiktoken_bpe and tiktoken.Encoding with
tiktoken's own pattern and special tokens; HF tokenizers gets
hf-tokenizers/gpt2/tokenizer.json (same vocabulary and merges as r50k_base).
See bench/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

# HF tokenizers sizes its Rayon pool from this when it is first used.
BATCH_THREADS = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(BATCH_THREADS))

import llmkit  # noqa: E402
from benchlib import best_time_and_result  # noqa: E402

CORPORA = {
    "tinyshakespeare": "tinyshakespeare.txt",
    "state-of-the-union": "sotu.txt",
    "udhr-60lang": "udhr-60lang.txt",
    "mixed-slice": "mixed-slice.txt",
}
RANK_FILES = {"r50k_base": "r50k_base.tiktoken", "cl100k_base": "cl100k_base.tiktoken",
              "o200k_base": "o200k_base.tiktoken"}
DOC_BYTES = 4096  # batch mode: the corpus cut at line ends into documents of about this size


# ---------------------------------------------------------------------------
# Loading the three tokenizers from local files.

def tiktoken_encoding(data: Path, name: str):
    import tiktoken
    import tiktoken_ext.openai_public as openai_public
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(data / "tiktoken" / RANK_FILES[name]))
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: ranks  # take pattern and specials, skip the download
    try:
        spec = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(name, pat_str=spec["pat_str"], mergeable_ranks=ranks,
                             special_tokens=spec["special_tokens"])


def hf_gpt2(data: Path):
    import tokenizers
    return tokenizers.Tokenizer.from_file(str(data / "hf-tokenizers" / "gpt2" / "tokenizer.json"))


def llmkit_tokenizer(data: Path, name: str):
    return llmkit.Tokenizer.from_tiktoken(data / "tiktoken" / RANK_FILES[name], name)


def split_docs(text: str, size: int = DOC_BYTES) -> List[str]:
    docs, cur, n = [], [], 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        n += len(line)
        if n >= size:
            docs.append("".join(cur))
            cur, n = [], 0
    if cur:
        docs.append("".join(cur))
    return docs


# ---------------------------------------------------------------------------
# Timing: the best of `reps` runs (the machine is shared; the minimum is the
# least disturbed run), after one warm-up run whose result is returned for checks.

# A call of a few milliseconds (the 0.13 MB mixed slice) is disturbed by
# the machine far more often than a whole one is long, so three repetitions
# may all be hit: short calls are repeated until each peer has had about
# this many seconds (and at most MAX_REPS calls), long ones `reps` times.
MIN_SECONDS = 0.3
MAX_REPS = 40


def reps_for(seconds_per_call: float, reps: int, cap: int = MAX_REPS) -> int:
    return max(reps, 1, min(cap, int(MIN_SECONDS / max(seconds_per_call, 1e-9))))


def cold_time(data: Path, enc_name: str, text: str, reps: int) -> float:
    """llmkit's single-call time on text it has not seen: each repetition encodes
    with a freshly loaded tokenizer, whose memo of merged words and pairs starts
    empty (the warm cell repeats one text, so from the second call on its words
    are remembered; tiktoken remembers nothing). Each repetition also loads the
    vocabulary (untimed), so short texts get at most 10."""
    best = float("inf")
    lk = llmkit_tokenizer(data, enc_name)
    t0 = time.perf_counter()
    lk.encode_ordinary(text)
    first = time.perf_counter() - t0
    for _ in range(reps_for(first, reps, cap=10)):
        lk = llmkit_tokenizer(data, enc_name)
        t0 = time.perf_counter()
        lk.encode_ordinary(text)
        best = min(best, time.perf_counter() - t0)
    return best


def interleaved_best_times(fns, reps: int):
    """best_time_and_result for several peers at once, their calls taking turns
    within each repetition: on a shared machine the load changes from second to
    second, and timing one peer's repetitions after the other's would let that
    change into their ratio. Short calls get more repetitions (reps_for, by
    the slowest peer's warm-up). Returns ([best seconds], [warm-up results])."""
    results, slowest = [], 0.0
    for fn in fns:  # warm-up of each
        t0 = time.perf_counter()
        results.append(fn())
        slowest = max(slowest, time.perf_counter() - t0)
    best = [float("inf")] * len(fns)
    for _ in range(reps_for(slowest, reps)):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best, results


def throughput_table(data: Path, reps: int, corpora: List[str],
                     encodings: Sequence[str] = tuple(RANK_FILES)) -> List[Dict]:
    rows = []
    hf = hf_gpt2(data)
    hf_batch = getattr(hf, "encode_batch_fast", hf.encode_batch)
    for enc_name in encodings:
        tk = tiktoken_encoding(data, enc_name)
        lk = llmkit_tokenizer(data, enc_name)
        for corpus in corpora:
            text = (data / "corpus" / CORPORA[corpus]).read_text(encoding="utf-8")
            nbytes = len(text.encode("utf-8"))
            docs = split_docs(text)
            row = {"encoding": enc_name, "corpus": corpus, "bytes": nbytes, "docs": len(docs)}

            t_c = cold_time(data, enc_name, text, reps)
            (t_l, t_t), (ids_l, ids_t) = interleaved_best_times(
                [lambda: lk.encode_ordinary(text), lambda: tk.encode_ordinary(text)], reps)
            (tb_l, tb_t), (b_l, b_t) = interleaved_best_times(
                [lambda: lk.encode_batch(docs, num_threads=BATCH_THREADS, disallowed_special=()),
                 lambda: tk.encode_ordinary_batch(docs, num_threads=BATCH_THREADS)], reps)
            if ids_l != ids_t or b_l != b_t:
                raise SystemExit(f"ids differ: llmkit vs tiktoken, {enc_name} on {corpus}")
            assert sum(b_l, []) != [] and len(b_l) == len(docs)
            row.update(tokens=len(ids_l), ids_agree=True,
                       llmkit=nbytes / t_l / 1e6, tiktoken=nbytes / t_t / 1e6, llmkit_cold=nbytes / t_c / 1e6,
                       llmkit_batch=nbytes / tb_l / 1e6, tiktoken_batch=nbytes / tb_t / 1e6)
            if enc_name == "r50k_base":
                t_h, enc_h = best_time_and_result(lambda: hf.encode(text, add_special_tokens=False), reps)
                tb_h, benc_h = best_time_and_result(lambda: hf_batch(docs, add_special_tokens=False), reps)
                ids_h = enc_h.ids
                same = sum(a == b for a, b in zip(ids_h, ids_t)) if len(ids_h) == len(ids_t) else None
                docs_same = sum(e.ids == b for e, b in zip(benc_h, b_t))
                row.update(hf=nbytes / t_h / 1e6, hf_batch=nbytes / tb_h / 1e6,
                           hf_identical=ids_h == ids_t, hf_tokens=len(ids_h),
                           hf_docs_identical=f"{docs_same}/{len(docs)}",
                           hf_first_diff=next((i for i, (a, b) in enumerate(zip(ids_h, ids_t)) if a != b), None),
                           hf_same_positions=same)
            rows.append(row)
            print(f"  {enc_name:12s} {corpus:20s} llmkit {row['llmkit']:6.2f} MB/s (cold {row['llmkit_cold']:6.2f})"
                  f"  tiktoken {row['tiktoken']:6.2f}  ratio {row['llmkit'] / row['tiktoken']:5.2f}x"
                  f" (cold {row['llmkit_cold'] / row['tiktoken']:5.2f}x)"
                  f"  batch {row['llmkit_batch']:6.2f} / {row['tiktoken_batch']:6.2f}", file=sys.stderr)
    return rows


# ---------------------------------------------------------------------------
# Patterns given in full (Tokenizer.from_ranks): a pattern that is not spelled
# as a preset's runs through PCRE2 (JIT) instead of the preset's hand-written
# scanner. Both against tiktoken with the same pattern, ranks and specials.

# Regexes no preset has: Llama 3's with digit runs of up to 4 and no
# possessives; and Kimi K2's, whose letter classes exclude Han by intersection
# ([...&&[^\p{Han}]], Rust syntax that llmkit spells as lookaheads for PCRE2).
OTHER_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,4}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
KIMI_PATTERN = (r"""[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*"""
                r"""[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
                r"""|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"""
                r"""[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
                r"""|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def patterns_section(data: Path, reps: int, corpora: List[str],
                     encodings: Sequence[str] = ("cl100k_base", "o200k_base")) -> List[Dict]:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    rows = []
    print("\nPatterns given in full (from_ranks), each against tiktoken with the same pattern, ranks and specials;"
          " single call, MB/s", file=sys.stderr)
    for enc_name in encodings:
        tk = tiktoken_encoding(data, enc_name)
        path = data / "tiktoken" / RANK_FILES[enc_name]
        ranks = load_tiktoken_bpe(str(path))
        cases = [("preset (scanner)", llmkit_tokenizer(data, enc_name), tk),
                 # The preset's regex with a branch that never matches: the same splits, but not
                 # a preset's spelling, so PCRE2 runs it instead of the scanner.
                 ("preset regex on PCRE2", llmkit.Tokenizer.from_ranks(path, tk._pat_str + "|(?!)", tk._special_tokens),
                  tk)]
        for label, pat in (("Llama 3 with \\p{N}{1,4}", OTHER_PATTERN), ("Kimi K2 (&& classes)", KIMI_PATTERN)):
            cases.append((label, llmkit.Tokenizer.from_ranks(path, pat),
                          tiktoken.Encoding("other", pat_str=pat, mergeable_ranks=ranks, special_tokens={})))
        for corpus in corpora:
            text = (data / "corpus" / CORPORA[corpus]).read_text(encoding="utf-8")
            nbytes = len(text.encode("utf-8"))
            fns = []
            for _, lk, ref in cases:
                fns += [lambda lk=lk: lk.encode_ordinary(text), lambda ref=ref: ref.encode_ordinary(text)]
            times, ids = interleaved_best_times(fns, reps)
            for k, (label, _, _) in enumerate(cases):
                if ids[2 * k] != ids[2 * k + 1]:
                    raise SystemExit(f"ids differ: from_ranks vs tiktoken, {enc_name} {label} on {corpus}")
                row = {"encoding": enc_name, "corpus": corpus, "pattern": label, "bytes": nbytes, "ids_agree": True,
                       "llmkit": nbytes / times[2 * k] / 1e6, "tiktoken": nbytes / times[2 * k + 1] / 1e6}
                rows.append(row)
                print(f"  {enc_name:12s} {corpus:20s} {label:26s} llmkit {row['llmkit']:6.2f}"
                      f"  tiktoken {row['tiktoken']:6.2f}  {row['llmkit'] / row['tiktoken']:5.2f}x", file=sys.stderr)
    print("\n| encoding | corpus | pattern | llmkit MB/s | tiktoken MB/s | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['encoding']} | {r['corpus']} | {r['pattern']} | {r['llmkit']:.2f} | {r['tiktoken']:.2f} "
              f"| {r['llmkit'] / r['tiktoken']:.2f}x |")
    return rows


# ---------------------------------------------------------------------------
# Adversarial inputs, each peer in a child process with a time limit (a
# quadratic merge in native code cannot be interrupted from Python).

CHILD = r"""
import json, os, random, sys, time
sys.path[:0] = json.loads(os.environ["BENCH_PATH"])
lib, enc_name, kind, size, data = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
from pathlib import Path
import bench_tokenizer as b
text = b.adversarial_text(kind, size)
if lib == "llmkit":
    tok = b.llmkit_tokenizer(Path(data), enc_name); fn = lambda: tok.encode_ordinary(text)
elif lib == "tiktoken":
    tok = b.tiktoken_encoding(Path(data), enc_name); fn = lambda: tok.encode_ordinary(text)
else:
    tok = b.hf_gpt2(Path(data)); fn = lambda: tok.encode(text, add_special_tokens=False).ids
t0 = time.perf_counter(); ids = fn(); t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "tokens": len(ids), "hash": hash(tuple(ids))}))
"""


def adversarial_text(kind: str, size: int) -> str:
    if kind == "repeat":
        return "a" * size
    import random
    rng = random.Random(1234)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(size))


def run_child(lib: str, enc_name: str, kind: str, size: int, data: Path, limit: float) -> Optional[Dict]:
    env = dict(os.environ, BENCH_PATH=json.dumps([str(Path(__file__).resolve().parent)] + sys.path))
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, lib, enc_name, kind, str(size), str(data)],
                             env=env, capture_output=True, text=True, timeout=limit + 30)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        raise SystemExit(f"{lib} child failed:\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r if r["seconds"] <= limit else dict(r, over=True)


def adversarial(data: Path, limit: float, quick: bool) -> List[Dict]:
    cases = [("repeat", "1 MB of 'a'", [16_384, 65_536, 262_144, 1_048_576]),
             ("letters", "100 KB random letters, no spaces", [12_800, 25_600, 51_200, 102_400])]
    if quick:
        cases = [(k, d, s[:2]) for k, d, s in cases]
    rows = []
    for kind, desc, sizes in cases:
        for enc_name, libs in (("r50k_base", ("llmkit", "tiktoken", "hf")), ("cl100k_base", ("llmkit", "tiktoken")),
                               ("o200k_base", ("llmkit", "tiktoken"))):
            for lib in libs:
                for size in sizes:
                    r = run_child(lib, enc_name, kind, size, data, limit)
                    row = {"case": desc, "encoding": enc_name if lib != "hf" else "gpt2 (HF)", "lib": lib,
                           "bytes": size, "seconds": None if r is None else r["seconds"],
                           "tokens": None if r is None else r["tokens"], "hash": None if r is None else r["hash"],
                           "timed_out": r is None or bool(r.get("over"))}
                    rows.append(row)
                    print(f"  {desc:34s} {enc_name:12s} {lib:9s} {size:8d} B: "
                          f"{'> %.0f s' % limit if row['timed_out'] else '%.4f s' % row['seconds']}", file=sys.stderr)
                    if row["timed_out"]:
                        break  # larger inputs would only take longer
    # llmkit and tiktoken must agree wherever both finished
    for a in rows:
        for b in rows:
            if (a["lib"], b["lib"]) == ("llmkit", "tiktoken") and a["case"] == b["case"] and \
                    a["encoding"] == b["encoding"] and a["bytes"] == b["bytes"] and b["hash"] is not None:
                if a["hash"] != b["hash"] or a["tokens"] != b["tokens"]:
                    raise SystemExit(f"adversarial ids differ: {a['case']} {a['encoding']} {a['bytes']}")
    return rows


# ---------------------------------------------------------------------------
# Load time and memory per vocabulary: each library loads the same file in a
# fresh process (imported first, so the import is not counted); the resident
# set's growth over the first load is its memory, the best of `reps` loads its
# time. Both then encode the first 4000 characters of the mixed slice and
# must give the same ids.

LOAD_VOCABS = [  # label, format, file under the data folder, tiktoken encoding name, peer
    ("r50k_base", "tiktoken", "tiktoken/r50k_base.tiktoken", "r50k_base", "tiktoken"),
    ("cl100k_base", "tiktoken", "tiktoken/cl100k_base.tiktoken", "cl100k_base", "tiktoken"),
    ("o200k_base", "tiktoken", "tiktoken/o200k_base.tiktoken", "o200k_base", "tiktoken"),
    ("gpt2 tokenizer.json", "json", "hf-tokenizers/gpt2/tokenizer.json", "", "tokenizers"),
    ("bert-base-uncased tokenizer.json", "json", "hf-tokenizers/bert-base-uncased/tokenizer.json", "", "tokenizers"),
    ("mistral-7b-v0.1 tokenizer.json", "json", "hf-tokenizers/mistral-7b-v0.1/tokenizer.json", "", "tokenizers"),
    ("llama2 .model", "spm", "sentencepiece/llama2/tokenizer.model", "", "sentencepiece"),
    ("gpt-2 GGUF vocabulary", "gguf", "llama.cpp-vocab/ggml-vocab-gpt-2.gguf", "", "llama.cpp"),
    ("llama-spm GGUF vocabulary", "gguf", "llama.cpp-vocab/ggml-vocab-llama-spm.gguf", "", "llama.cpp"),
]

LOAD_CHILD = r"""
import gc, json, os, sys, time
sys.path[:0] = json.loads(os.environ["BENCH_PATH"])
lib, fmt, path, enc_name, data, reps = sys.argv[1:7]
reps = int(reps)
from pathlib import Path
import bench_tokenizer as b
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
text = (Path(data) / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")[:4000]
if lib == "llmkit":
    import llmkit
    load = (lambda: llmkit.Tokenizer.from_tiktoken(path, enc_name)) if fmt == "tiktoken" else (lambda: llmkit.Tokenizer.from_file(path))
    encode = {"tiktoken": lambda t: t.encode_ordinary(text), "json": lambda t: t.encode(text, allowed_special="all")}.get(
        fmt, lambda t: t.encode(text, disallowed_special=()))
elif lib == "tiktoken":
    import tiktoken
    load, encode = lambda: b.tiktoken_encoding(Path(data), enc_name), lambda t: t.encode_ordinary(text)
elif lib == "tokenizers":
    import tokenizers
    load, encode = lambda: tokenizers.Tokenizer.from_file(path), lambda t: t.encode(text, add_special_tokens=False).ids
elif lib == "sentencepiece":
    import sentencepiece
    load, encode = lambda: sentencepiece.SentencePieceProcessor(model_file=path), lambda t: t.encode(text)
else:
    import llama_cpp
    load = lambda: llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    encode = lambda t: t.tokenize(text.encode("utf-8"), add_bos=False, special=False)
gc.collect()
before = rss()
t0 = time.perf_counter(); tok = load(); first = time.perf_counter() - t0
grown = rss() - before
best = first
for _ in range(reps - 1):
    t0 = time.perf_counter(); other = load(); best = min(best, time.perf_counter() - t0)
    del other; gc.collect()
ids = list(encode(tok))
print(json.dumps({"first": first, "best": best, "rss": grown, "ids": ids}))
"""


def load_section(data: Path, reps: int) -> List[Dict]:
    """Load time and resident memory of each vocabulary, llmkit against its reference library; prints its own table."""
    env = dict(os.environ, BENCH_PATH=json.dumps([str(Path(__file__).resolve().parent)] + sys.path))
    rows = []
    for label, fmt, rel, enc_name, peer in LOAD_VOCABS:
        path = data / rel
        got = {}
        for lib in ("llmkit", peer):
            out = subprocess.run([sys.executable, "-c", LOAD_CHILD, lib, fmt, str(path), enc_name, str(data), str(reps)],
                                 env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{lib} could not load {path}:\n{out.stderr[-2000:]}")
            got[lib] = json.loads(out.stdout.strip().splitlines()[-1])
        if got["llmkit"]["ids"] != got[peer]["ids"]:
            raise SystemExit(f"ids differ after loading {label}: llmkit vs {peer}")
        row = {"vocab": label, "peer": peer, "file_mib": path.stat().st_size / 2**20,
               "llmkit_first": got["llmkit"]["first"], "llmkit_best": got["llmkit"]["best"],
               "llmkit_rss": got["llmkit"]["rss"] / 2**20, "peer_first": got[peer]["first"],
               "peer_best": got[peer]["best"], "peer_rss": got[peer]["rss"] / 2**20}
        rows.append(row)
        print(f"  {label:34s} llmkit {row['llmkit_best'] * 1e3:7.1f} ms {row['llmkit_rss']:6.1f} MiB   {peer} "
              f"{row['peer_best'] * 1e3:7.1f} ms {row['peer_rss']:6.1f} MiB", file=sys.stderr)
    print(f"\nLoad time (best of {reps} loads in one process; first load in parentheses) and resident memory "
          "(growth of the process's resident set over the first load), each library in a fresh process. "
          "time ratio = peer / llmkit (above 1: llmkit loads faster); ids identical on a 4000-character sample.\n")
    print("| vocabulary | file MiB | llmkit ms | peer | peer ms | time ratio | llmkit MiB | peer MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['vocab']} | {r['file_mib']:.1f} | {r['llmkit_best'] * 1e3:.1f} ({r['llmkit_first'] * 1e3:.1f}) | "
              f"{r['peer']} | {r['peer_best'] * 1e3:.1f} ({r['peer_first'] * 1e3:.1f}) | "
              f"{r['peer_best'] / r['llmkit_best']:.2f}x | {r['llmkit_rss']:.1f} | {r['peer_rss']:.1f} |")
    return rows


# ---------------------------------------------------------------------------
# Report.

def machine() -> str:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tiktoken
    import tokenizers
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; llmkit {llmkit.__version__} "
            f"({llmkit.build_info()}); tiktoken {tiktoken.__version__}; tokenizers {tokenizers.__version__}; "
            f"load average {os.getloadavg()[0]:.2f} at start")


def print_tables(rows: List[Dict], adv: List[Dict], info: str, limit: float) -> None:
    print(f"Machine: {info}\n")
    print("Encode throughput, MB/s of UTF-8 input (best of the repetitions: --reps, more for calls under MIN_SECONDS / --reps). single = one call on the whole corpus;")
    print(f"batch = encode_batch over ~{DOC_BYTES // 1024} KB documents with {BATCH_THREADS} threads. "
          "ratio = llmkit / tiktoken.\n")
    print("llmkit cold = single on a freshly loaded tokenizer (its memo of merged words empty).\n")
    print("| encoding | corpus | MB | tokens | llmkit single | llmkit cold | tiktoken single | ratio | ratio cold | "
          "llmkit batch | tiktoken batch | ratio | HF single | HF batch | ids llmkit = tiktoken |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        hf = f"{r['hf']:.2f}" if "hf" in r else "-"
        hfb = f"{r['hf_batch']:.2f}" if "hf_batch" in r else "-"
        print(f"| {r['encoding']} | {r['corpus']} | {r['bytes'] / 1e6:.2f} | {r['tokens']} | {r['llmkit']:.2f} | "
              f"{r['llmkit_cold']:.2f} | {r['tiktoken']:.2f} | {r['llmkit'] / r['tiktoken']:.2f}x | "
              f"{r['llmkit_cold'] / r['tiktoken']:.2f}x | {r['llmkit_batch']:.2f} | "
              f"{r['tiktoken_batch']:.2f} | {r['llmkit_batch'] / r['tiktoken_batch']:.2f}x | {hf} | {hfb} | "
              f"{'identical' if r['ids_agree'] else 'DIFFER'} |")
    print("\nHF tokenizers (gpt2 tokenizer.json) against tiktoken/llmkit r50k_base ids:\n")
    print("| corpus | tokens (tiktoken) | tokens (HF) | whole-corpus ids identical | batch documents identical |")
    print("|---|---:|---:|---|---|")
    for r in rows:
        if "hf" in r:
            first = "" if r["hf_identical"] else f" (first difference at token {r['hf_first_diff']})"
            print(f"| {r['corpus']} | {r['tokens']} | {r['hf_tokens']} | "
                  f"{'yes' if r['hf_identical'] else 'no' + first} | {r['hf_docs_identical']} |")
    print(f"\nAdversarial inputs (one call, seconds; each run in a child process, limit {limit:.0f} s):\n")
    print("| input | encoding | library | bytes | seconds | MB/s | time ratio to the previous size |")
    print("|---|---|---|---:|---:|---:|---:|")
    prev = {}
    for r in adv:
        key = (r["case"], r["encoding"], r["lib"])
        if r["timed_out"]:
            sec, mbs, growth = f"> {limit:.0f}", "-", "-"
        else:
            sec, mbs = f"{r['seconds']:.4f}", f"{r['bytes'] / r['seconds'] / 1e6:.2f}"
            growth = f"{r['seconds'] / prev[key][1]:.1f}x for {r['bytes'] // prev[key][0]}x bytes" if key in prev else ""
            prev[key] = (r["bytes"], r["seconds"])
        print(f"| {r['case']} | {r['encoding']} | {r['lib']} | {r['bytes']} | {sec} | {mbs} | {growth} |")


# ---------------------------------------------------------------------------
# SentencePiece models (tokspm): llmkit against the sentencepiece package on
# the same .model files, ids checked equal on every measured input.

SPM_MODELS = {"llama2": "sentencepiece/llama2/tokenizer.model",
              "mistral-v3": "sentencepiece/mistral/mistral_instruct_tokenizer_240323.model.v3"}
# A Unigram model (T5's kind; the two above are BPE), trained here by
# sentencepiece's own trainer on the mixed slice: 6000 pieces, nmt_nfkc.
SPM_UNIGRAM = ("unigram-6k", "mixed-slice.txt", 6000)


def train_unigram(data: Path, out_dir: Path) -> Path:
    import sentencepiece as spm
    name, corpus, vocab = SPM_UNIGRAM
    spm.SentencePieceTrainer.train(input=str(data / "corpus" / corpus), model_prefix=str(out_dir / name),
                                   vocab_size=vocab, model_type="unigram", character_coverage=0.9995,
                                   num_threads=2, minloglevel=2)
    return out_dir / f"{name}.model"


def sentencepiece_section(data: Path, reps: int, corpora: List[str]) -> List[Dict]:
    """Encode throughput of llmkit vs sentencepiece (single call; batch over threads); prints its own table."""
    try:
        import sentencepiece as spm
    except ImportError:
        print("\nSentencePiece: the sentencepiece package is not installed; section skipped.")
        return []
    rows = []
    tmp = tempfile.TemporaryDirectory()
    paths = {model: data / rel for model, rel in SPM_MODELS.items()}
    paths[SPM_UNIGRAM[0]] = train_unigram(data, Path(tmp.name))
    for model, path in paths.items():
        lk = llmkit.Tokenizer.from_file(path)
        sp = spm.SentencePieceProcessor(model_file=str(path))
        for corpus in corpora:
            text = (data / "corpus" / CORPORA[corpus]).read_text(encoding="utf-8")
            nbytes = len(text.encode("utf-8"))
            docs = split_docs(text)
            t_l, ids_l = best_time_and_result(lambda: lk.encode(text, disallowed_special=()), reps)
            t_s, ids_s = best_time_and_result(lambda: sp.encode(text), reps)
            tb_l, b_l = best_time_and_result(lambda: lk.encode_batch(docs, num_threads=BATCH_THREADS, disallowed_special=()), reps)
            tb_s, b_s = best_time_and_result(lambda: sp.encode(docs, num_threads=BATCH_THREADS), reps)
            if ids_l != ids_s or b_l != b_s:
                raise SystemExit(f"ids differ: llmkit vs sentencepiece, {model} on {corpus}")
            row = {"model": model, "corpus": corpus, "bytes": nbytes, "tokens": len(ids_l),
                   "llmkit": nbytes / t_l / 1e6, "sentencepiece": nbytes / t_s / 1e6,
                   "llmkit_batch": nbytes / tb_l / 1e6, "sentencepiece_batch": nbytes / tb_s / 1e6}
            rows.append(row)
            print(f"  {model:12s} {corpus:20s} llmkit {row['llmkit']:6.2f} MB/s  sentencepiece "
                  f"{row['sentencepiece']:6.2f}  batch {row['llmkit_batch']:6.2f} / {row['sentencepiece_batch']:6.2f}",
                  file=sys.stderr)
    print(f"\nSentencePiece models, encode MB/s (best of the repetitions; batch = ~{DOC_BYTES // 1024} KB documents, "
          f"{BATCH_THREADS} threads). ratio = llmkit / sentencepiece; ids identical on every input.\n")
    print("| model | corpus | MB | tokens | llmkit single | sentencepiece single | ratio | llmkit batch | "
          "sentencepiece batch | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['corpus']} | {r['bytes'] / 1e6:.2f} | {r['tokens']} | {r['llmkit']:.2f} | "
              f"{r['sentencepiece']:.2f} | {r['llmkit'] / r['sentencepiece']:.2f}x | {r['llmkit_batch']:.2f} | "
              f"{r['sentencepiece_batch']:.2f} | {r['llmkit_batch'] / r['sentencepiece_batch']:.2f}x |")
    return rows


# ---------------------------------------------------------------------------
# Hugging Face tokenizer.json files (tokjson): llmkit.Tokenizer.from_file
# against tokenizers.Tokenizer.from_file on the same file, ids checked equal on
# every measured input (add_special_tokens=False; special tokens matched, as
# tokenizers does).

HF_JSON_FILES = ["gpt2", "bert-base-uncased", "bge-large-zh-v1.5", "mistral-7b-v0.1"]


def tokenizer_json_section(data: Path, reps: int, corpora: List[str]) -> List[Dict]:
    """Encode throughput of llmkit vs HF tokenizers on tokenizer.json files; prints its own table."""
    import tokenizers

    rows = []
    for name in HF_JSON_FILES:
        path = data / "hf-tokenizers" / name / "tokenizer.json"
        lk = llmkit.Tokenizer.from_file(path)
        hf = tokenizers.Tokenizer.from_file(str(path))
        hf_batch = getattr(hf, "encode_batch_fast", hf.encode_batch)
        for corpus in corpora:
            text = (data / "corpus" / CORPORA[corpus]).read_text(encoding="utf-8")
            nbytes = len(text.encode("utf-8"))
            docs = split_docs(text)
            t_l, ids_l = best_time_and_result(lambda: lk.encode(text, allowed_special="all"), reps)
            t_h, enc_h = best_time_and_result(lambda: hf.encode(text, add_special_tokens=False), reps)
            tb_l, b_l = best_time_and_result(lambda: lk.encode_batch(docs, num_threads=BATCH_THREADS, allowed_special="all"), reps)
            tb_h, b_h = best_time_and_result(lambda: hf_batch(docs, add_special_tokens=False), reps)
            if ids_l != enc_h.ids or b_l != [e.ids for e in b_h]:
                raise SystemExit(f"ids differ: llmkit vs HF tokenizers, {name} on {corpus}")
            row = {"file": name, "corpus": corpus, "bytes": nbytes, "tokens": len(ids_l),
                   "llmkit": nbytes / t_l / 1e6, "hf": nbytes / t_h / 1e6,
                   "llmkit_batch": nbytes / tb_l / 1e6, "hf_batch": nbytes / tb_h / 1e6}
            rows.append(row)
            print(f"  {name:18s} {corpus:20s} llmkit {row['llmkit']:6.2f} MB/s  HF {row['hf']:6.2f}"
                  f"  batch {row['llmkit_batch']:6.2f} / {row['hf_batch']:6.2f}", file=sys.stderr)
    print(f"\ntokenizer.json files, encode MB/s (best of the repetitions; batch = ~{DOC_BYTES // 1024} KB documents, "
          f"{BATCH_THREADS} threads for both). ratio = llmkit / HF tokenizers; ids identical on every input.\n")
    print("| tokenizer.json | corpus | MB | tokens | llmkit single | HF single | ratio | llmkit batch | HF batch | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['file']} | {r['corpus']} | {r['bytes'] / 1e6:.2f} | {r['tokens']} | {r['llmkit']:.2f} | "
              f"{r['hf']:.2f} | {r['llmkit'] / r['hf']:.2f}x | {r['llmkit_batch']:.2f} | {r['hf_batch']:.2f} | "
              f"{r['llmkit_batch'] / r['hf_batch']:.2f}x |")
    return rows


# ---------------------------------------------------------------------------
# Pairs of texts (encode_pair) on the tokenizer.json files: llmkit's
# Tokenizer.encode_pair against tokenizers' encode(a, b), both with the
# post-processor's pair template, on consecutive non-empty lines of the mixed
# slice; ids, type ids and (second table column) character offsets checked
# equal on every pair.

def pairs_section(data: Path, reps: int) -> List[Dict]:
    """Pairs per second of llmkit vs HF tokenizers, without and with offsets; prints its own table."""
    import tokenizers

    lines = [l for l in (data / "corpus" / CORPORA["mixed-slice"]).read_text(encoding="utf-8").split("\n") if l.strip()]
    pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    rows = []
    for name in HF_JSON_FILES:
        path = data / "hf-tokenizers" / name / "tokenizer.json"
        lk = llmkit.Tokenizer.from_file(path)
        hf = tokenizers.Tokenizer.from_file(str(path))
        t_l, got = best_time_and_result(
            lambda: [lk.encode_pair(a, b, add_special_tokens=True, allowed_special="all") for a, b in pairs], reps)
        t_o, got_o = best_time_and_result(
            lambda: [lk.encode_pair(a, b, add_special_tokens=True, allowed_special="all", return_offsets=True,
                                    unit="chars") for a, b in pairs], reps)
        t_h, ref = best_time_and_result(lambda: [hf.encode(a, b) for a, b in pairs], reps)
        for g, o, e in zip(got, got_o, ref):
            if (g.ids, g.type_ids) != (e.ids, e.type_ids) or [tuple(x) for x in o.offsets.tolist()] != e.offsets:
                raise SystemExit(f"pair encodings differ: llmkit vs HF tokenizers, {name}")
        row = {"file": name, "pairs": len(pairs), "llmkit": len(pairs) / t_l, "llmkit_offsets": len(pairs) / t_o,
               "hf": len(pairs) / t_h}
        rows.append(row)
    print(f"\nPairs of texts (encode_pair vs tokenizers' encode(a, b), pair template on), {len(pairs)} pairs of "
          "consecutive mixed-slice lines, 1 thread, pairs per second; ids, type ids and offsets identical.\n")
    print("| tokenizer.json | llmkit | llmkit with offsets | HF (always offsets) | ratio | ratio with offsets |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['file']} | {r['llmkit']:.0f} | {r['llmkit_offsets']:.0f} | {r['hf']:.0f} | "
              f"{r['llmkit'] / r['hf']:.2f}x | {r['llmkit_offsets'] / r['hf']:.2f}x |")
    return rows


# ---------------------------------------------------------------------------
# BPE training (toktrain): llmkit.train_bpe against HF tokenizers' BpeTrainer,
# both with the cl100k regex split then bytes (HF: Split + ByteLevel), on
# tinyshakespeare + sotu. The two trainers differ slightly (HF breaks count
# ties its own way and counts frequency per word), so the vocabularies are
# not identical: the table gives both training times and, as a check that
# both learned a comparable vocabulary, each one's compression (bytes per
# token) on held-out text (corpus/mixed-slice.txt).

CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|"""
                  r"""\s*[\r\n]|\s+(?!\S)|\s+""")


def bench_training(data: Path, vocab_sizes: Sequence[int] = (4096, 8192), reps: int = 1) -> List[Dict]:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [(data / "corpus" / f).read_text(encoding="utf-8") for f in ("tinyshakespeare.txt", "sotu.txt")]
    held_out = (data / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    held_bytes = len(held_out.encode("utf-8"))
    rows = []
    for vocab in vocab_sizes:
        def train_llmkit():
            return llmkit.train_bpe(texts, vocab, pattern="cl100k_base")

        def train_hf():
            hf = Tokenizer(models.BPE())
            hf.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(CL100K_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            hf.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            hf.train_from_iterator(texts, trainer)
            return hf

        t_llmkit, tok = best_time_and_result(train_llmkit, reps)
        t_hf, hf = best_time_and_result(train_hf, reps)
        ids = tok.encode(held_out, disallowed_special=())
        assert tok.decode(ids) == held_out
        hf_ids = hf.encode(held_out, add_special_tokens=False).ids
        assert hf.decode(hf_ids) == held_out
        row = {"vocab": vocab, "corpus_mb": sum(len(t.encode()) for t in texts) / 1e6, "llmkit_s": t_llmkit,
               "hf_s": t_hf, "llmkit_vocab": tok.vocab_size, "hf_vocab": hf.get_vocab_size(),
               "llmkit_bytes_per_token": held_bytes / len(ids), "hf_bytes_per_token": held_bytes / len(hf_ids)}
        rows.append(row)
        print(f"  training vocab {vocab}: llmkit {t_llmkit:.2f} s, HF {t_hf:.2f} s", file=sys.stderr)
    print("\nBPE training on tinyshakespeare + sotu (cl100k regex, then bytes), best of "
          f"{reps}; HF tokenizers' BpeTrainer uses its own thread pool. ratio = HF time / llmkit time; "
          "compression = bytes per token on corpus/mixed-slice.txt (held out).\n")
    print("| vocab | corpus MB | llmkit s | HF s | ratio | llmkit bytes/token | HF bytes/token |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['vocab']} | {r['corpus_mb']:.2f} | {r['llmkit_s']:.2f} | {r['hf_s']:.2f} | "
              f"{r['hf_s'] / r['llmkit_s']:.2f}x | {r['llmkit_bytes_per_token']:.3f} | {r['hf_bytes_per_token']:.3f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("LLMKIT_DATA_DIR", "/work/shared/data"))
    ap.add_argument("--reps", type=int, default=None,
                    help="timed repetitions per cell (best is kept; default 3, 1 with --quick)")
    ap.add_argument("--limit", type=float, default=20.0, help="seconds allowed per adversarial call")
    ap.add_argument("--quick", action="store_true", help="mixed slice only, smaller adversarial inputs")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--training-only", action="store_true", help="only the BPE training section")
    ap.add_argument("--tokenizer-json-only", action="store_true", help="only the tokenizer.json section")
    ap.add_argument("--pairs-only", action="store_true", help="only the pairs-of-texts section")
    ap.add_argument("--load-only", action="store_true", help="only the load time and memory section")
    ap.add_argument("--sentencepiece-only", action="store_true", help="only the SentencePiece models section")
    ap.add_argument("--patterns-only", action="store_true",
                    help="only the section of patterns given in full (from_ranks: PCRE2 against the scanners)")
    ap.add_argument("--tiktoken-only", action="store_true",
                    help="only the throughput table against tiktoken (no adversarial inputs, no other sections)")
    ap.add_argument("--encodings", default=",".join(RANK_FILES),
                    help="comma-separated tiktoken encodings of the throughput table (default: all three)")
    args = ap.parse_args()
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    data = Path(args.data)
    if args.tokenizer_json_only:
        tokenizer_json_section(data, 1 if args.quick else args.reps,
                               ["mixed-slice"] if args.quick else list(CORPORA))
        return
    if args.pairs_only:
        pairs_section(data, args.reps)
        return
    if args.load_only:
        load_section(data, args.reps)
        return
    if args.training_only:
        bench_training(data, reps=1 if args.quick else args.reps)
        return
    if args.patterns_only:
        patterns_section(data, args.reps, ["mixed-slice"] if args.quick else list(CORPORA))
        return
    if args.sentencepiece_only:
        sentencepiece_section(data, 1 if args.quick else args.reps, ["mixed-slice"] if args.quick else list(CORPORA))
        return
    info = machine()
    corpora = ["mixed-slice"] if args.quick else list(CORPORA)
    encodings = [e for e in args.encodings.split(",") if e]
    unknown = [e for e in encodings if e not in RANK_FILES]
    if unknown:
        ap.error(f"unknown encodings {unknown}; known: {', '.join(RANK_FILES)}")
    rows = throughput_table(data, args.reps, corpora, encodings)
    if args.tiktoken_only:
        print_tables(rows, [], info, args.limit)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": info, "throughput": rows}, indent=1))
        return
    adv = adversarial(data, args.limit, args.quick)
    print_tables(rows, adv, info, args.limit)
    spm_rows = sentencepiece_section(data, 1 if args.quick else args.reps, corpora)
    json_rows = tokenizer_json_section(data, 1 if args.quick else args.reps, corpora)
    pair_rows = pairs_section(data, 1 if args.quick else args.reps)
    pattern_rows = patterns_section(data, 1 if args.quick else args.reps, corpora)
    train_rows = bench_training(data, (4096,) if args.quick else (4096, 8192), reps=1)
    load_rows = load_section(data, args.reps)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "throughput": rows, "adversarial": adv, "sentencepiece": spm_rows, "tokenizer_json": json_rows,
                                                "pairs": pair_rows, "patterns": pattern_rows, "training": train_rows,
                                                "load": load_rows}, indent=1))


if __name__ == "__main__":
    main()
