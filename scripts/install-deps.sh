#!/usr/bin/env bash
# Installs what building and testing llmkit needs on a Debian machine:
# compilers and tools from apt, Python packages from PyPI. Safe to re-run.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# libdnnl-dev's CMake package looks for OpenCL, which only its "recommends" bring.
apt_packages=(cmake ninja-build g++ clang pkg-config catch2 doxygen binutils
              libdnnl-dev ocl-icd-opencl-dev opencl-headers
              libpcre2-dev libutf8proc-dev libicu-dev nlohmann-json3-dev libprotobuf-dev protobuf-compiler
              libeigen3-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ! command -v python3 >/dev/null; then missing+=(python3 python3-pip python3-dev); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's own python3 is "externally managed" (PEP 668); these are build and
# test tools, so let pip install them there too.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q "numpy>=1.22" "pytest>=7" "pybind11>=2.11" "scikit-build-core>=0.8" ninja
# Reference implementations the tests compare against (token ids, GGUF bytes
# and files) and the property-test engine; all wheels from PyPI (protobuf:
# sentencepiece's proto output, the reference for SentencePiece offsets;
# sentencepiece 0.2.2 changed the Unigram Viterbi's arithmetic, which llmkit follows).
python3 -m pip install -q tiktoken tokenizers "sentencepiece>=0.2.2" protobuf gguf hypothesis tqdm
# PyTorch: the peer for DLPack interop, bf16/fp16 arrays and FP8 casts in the tests.
# (A large download the first time; later runs find it installed.)
python3 -m pip install -q torch
# transformers: its models' rotary embeddings are the reference for RoPE's scalings
# (linear, Llama 3.1, YaRN, LongRoPE) in tests/python/test_attention.py.
python3 -m pip install -q transformers
echo "install-deps: done (cmake $(cmake --version | head -1 | awk '{print $3}'), python $(python3 -c 'import sys; print(sys.version.split()[0])'))"
