# Sources of the attention block (src/attention and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_ATTENTION_SOURCES
  src/attention/attention.cpp
  src/attention/kernels.cpp
  src/attention/cache_attention.cpp
  src/attention/cache_packed.cpp
  src/attention/kernels_avx2.cpp
  src/attention/kernels_avx512.cpp
  src/attention/kv_cache.cpp
  src/attention/kv_state.cpp
  src/attention/merge.cpp
  src/attention/paged_kv_cache.cpp
  src/attention/rope.cpp
  bindings/c/attention.cpp)
