#!/usr/bin/env bash
# The whole test suite, from a fresh machine:
#   1. dependencies (apt-get, pip);
#   2. Release build with CUDA (when nvcc exists), Python, docs, examples:
#      every ctest test (unit, C ABI, exported symbols, pytest, Doxygen with
#      warnings as errors, doc snippets, examples; GPU tests skip without a GPU);
#   3. install + a consumer project through find_package and pkg-config;
#   4. `pip install .` into a scratch folder, imported and smoke-tested;
#   5. the same suite again under AddressSanitizer + UndefinedBehaviorSanitizer
#      (clang; all but the two linear-time ratio cases, which stage 2 runs);
#   6. the tokenizer tests under ThreadSanitizer (a separate build: TSan and
#      ASan cannot be combined, of the tokenizer's own sources), where one
#      tokenizer is shared by 8 threads;
#   7. every libFuzzer harness (tests/fuzz/fuzz_*.cpp, built in stage 5's
#      folder on its ASan/UBSan objects) for
#      LLMKIT_FUZZ_SECONDS (default 10) each; any crash, leak or timeout fails.
# Usage: bash scripts/test.sh [data-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-${LLMKIT_DATA_DIR:-$PWD/../shared/data}}"
JOBS="$(nproc)"
PY="$(command -v python3)"

bash scripts/install-deps.sh

# ctest, and on failure a short account printed last (CI shows the tail of the
# output): each failing test's name and, for pytest, its one-line summaries.
run_ctest() {
  local dir="$1"; shift
  if ctest --test-dir "$dir" "$@"; then return 0; fi
  local t="$dir/Testing/Temporary"
  echo "== failures in $dir =="
  # Each failed test's output: pytest's FAILED/ERROR lines when it has them,
  # else the last 15 lines of its output.
  cut -d: -f2- "$t/LastTestsFailed.log" 2>/dev/null | while read -r name; do
    awk -v name="$name" '
      $0 ~ ("^[0-9]+/[0-9]+ Test: " name "$") { on = 1; n = 0; delete keep; next }
      on && /^<end of output>$/ { on = 0;
        printed = 0
        for (i = 1; i <= n; i++) if (keep[i] ~ /^(FAILED|ERROR) /) { print "  " keep[i]; printed++ }
        if (!printed) for (i = (n > 15 ? n - 14 : 1); i <= n; i++) print "  " keep[i]
      }
      on { keep[++n] = substr($0, 1, 400) }' "$t/LastTest.log" | sed "s|^|[$name] |" | head -40
  done
  return 1
}
stage_start=$SECONDS
stage() {
  echo "== $* (previous stage: $((SECONDS - stage_start)) s) =="
  stage_start=$SECONDS
}

stage "[1/5] Release build and tests"
# Every part named: stage 3 reconfigures this folder for the wheel (tests,
# docs, examples and the shared library off), and a second run must undo that.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMKIT_BUILD_PYTHON=ON \
      -DLLMKIT_BUILD_TESTS=ON -DLLMKIT_BUILD_DOCS=ON -DLLMKIT_BUILD_EXAMPLES=ON -DLLMKIT_BUILD_SHARED=ON \
      -DLLMKIT_DATA_DIR="$DATA_DIR" -DPython_EXECUTABLE="$PY"
cmake --build build -j "$JOBS"
run_ctest build -j "$JOBS" --output-on-failure

stage "[2/5] install, find_package and pkg-config"
rm -rf build/install-root build/consumer
cmake --install build --prefix build/install-root >/dev/null
cmake -S tests/install -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install-root" >/dev/null
cmake --build build/consumer
LD_LIBRARY_PATH="$PWD/build/install-root/lib" build/consumer/consumer_cmake
PKG_CONFIG_PATH="$PWD/build/install-root/lib/pkgconfig" \
  cc -std=c99 -o build/consumer/consumer_pkgconfig tests/install/consumer.c $(PKG_CONFIG_PATH="$PWD/build/install-root/lib/pkgconfig" pkg-config --cflags --libs llmkit)
LD_LIBRARY_PATH="$PWD/build/install-root/lib" build/consumer/consumer_pkgconfig

stage "[3/5] pip install ."
rm -rf build/pip-target
# pyproject.toml's configuration (scikit-build-core, its CMake defines, the
# wheel's layout) in stage 1's build folder: the objects are the ones stage 1
# compiled with the same compiler and flags, so they are not compiled twice;
# the wheel's own targets (the module against the static library) are built here.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --no-deps --target build/pip-target \
  -C build-dir=build .
(cd /tmp && PYTHONPATH="$OLDPWD/build/pip-target" python3 -c "
import llmkit, numpy as np
assert llmkit.__version__ == llmkit.version(), llmkit.__version__
ids = llmkit.sample(np.array([[0.0, 3.0, 1.0]], dtype=np.float32), temperature=0.0)
assert ids.tolist() == [1], ids
print('pip install .: llmkit', llmkit.__version__, 'imports and samples')")

# The sanitizer and fuzz builds keep line tables only (-g1) and optimize at
# -O1: stack traces still name file and line, and on 2 cores the builds (the
# larger part of these stages) take markedly less time than at -O2, while
# the tests run only a little slower.
SAN_FLAGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
           "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

stage "[4/5] AddressSanitizer + UndefinedBehaviorSanitizer (clang), and the fuzzers' build"
# clang, because it compiles this instrumented build about a third faster
# than GCC, and because the libFuzzer harnesses (tests/fuzz) then build in
# the same folder on the same instrumented objects instead of a third build
# of the library; the fuzz stage below runs them.
cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      "${SAN_FLAGS[@]}" -DLLMKIT_SANITIZE=ON \
      -DLLMKIT_BUILD_FUZZERS=ON -DLLMKIT_FUZZ_SECONDS="${LLMKIT_FUZZ_SECONDS:-10}" \
      -DLLMKIT_WITH_CUDA=OFF -DLLMKIT_BUILD_PYTHON=ON -DLLMKIT_BUILD_DOCS=OFF \
      -DLLMKIT_DATA_DIR="$DATA_DIR" -DPython_EXECUTABLE="$PY"
cmake --build build-asan -j "$JOBS"
# The two linear-time cases (tag [linear]) measure time ratios, which ASan's
# uneven overhead blurs; they run in stage 1, and their code paths are
# covered here by the round-trip and long-input cases.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  run_ctest build-asan -j "$JOBS" --output-on-failure -LE fuzz -E "encoding time is linear"

stage "[5/5] ThreadSanitizer: the tokenizer tests"
cmake -S . -B build-tsan -G Ninja "${SAN_FLAGS[@]}" -DLLMKIT_SANITIZE=thread \
      -DLLMKIT_WITH_CUDA=OFF -DLLMKIT_BUILD_PYTHON=OFF -DLLMKIT_BUILD_DOCS=OFF -DLLMKIT_BUILD_EXAMPLES=OFF \
      -DLLMKIT_DATA_DIR="$DATA_DIR"
cmake --build build-tsan -j "$JOBS" --target llmkit_tokenizer_tests
# The cases that share one tokenizer (or decoder) between threads; the rest
# are single-threaded and run in the Release and ASan stages.
TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}" \
  build-tsan/tests/llmkit_tokenizer_tests "[threads],[stream],[train]"

stage "[fuzz] libFuzzer harnesses, ${LLMKIT_FUZZ_SECONDS:-10} s each"
# One harness per core: each still fuzzes for its full time on a core of its own.
run_ctest build-asan -L fuzz -j "$JOBS" --output-on-failure
stage "done: every stage passed, ${SECONDS} s in all"
