#!/usr/bin/env bash
# The main job: build llmkit and run the examples in examples/ (C, C++, Python)
# against real inputs from ../shared/data: sampling from the stories260K
# model's logits, and a whole generation with stories260K built from llmkit's
# blocks (GGUF reader, tokenizer, RoPE, KV cache, Q8_0 matmul, sampler),
# checked against llama2.c's reference output. Usage: bash scripts/main.sh [data-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-${LLMKIT_DATA_DIR:-$PWD/../shared/data}}"

bash scripts/install-deps.sh
# The same parts as scripts/test.sh's stage 1, named: its `pip install .`
# stage reconfigures this folder for the wheel (examples off, among others).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMKIT_BUILD_PYTHON=ON \
      -DLLMKIT_BUILD_TESTS=ON -DLLMKIT_BUILD_DOCS=ON -DLLMKIT_BUILD_EXAMPLES=ON -DLLMKIT_BUILD_SHARED=ON \
      -DLLMKIT_DATA_DIR="$DATA_DIR" -DPython_EXECUTABLE="$(command -v python3)"
cmake --build build --target sample_stories260k speculative_stories260k _llmkit

echo; echo "== C: sampling from stories260K's logits =="
build/examples/sample_stories260k "$DATA_DIR"
echo; echo "== C++: speculative verification on stories260K's distributions =="
build/examples/speculative_stories260k "$DATA_DIR"
echo; echo "== Python: a tour of the sampler =="
PYTHONPATH=build/python python3 examples/sampling_tour.py "$DATA_DIR"
echo; echo "== Python: stories260K generating text with llmkit's blocks =="
PYTHONPATH=build/python python3 examples/generate_stories260k.py "$DATA_DIR"
