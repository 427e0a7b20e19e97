# Sources of the quantization block (src/quant and its C layer), appended to
# the library by the top-level CMakeLists.txt. Paths relative to the repo root.
set(LLMKIT_QUANT_SOURCES
  src/quant/gguf_blocks.cpp
  src/quant/gguf_blocks_tq_mxfp4.cpp
  src/quant/quantize.cpp
  src/quant/formats.cpp
  src/quant/int_formats.cpp
  src/quant/nf4.cpp
  src/quant/fp8.cpp
  src/quant/gptq.cpp
  src/quant/awq.cpp
  src/quant/linalg_generic.cpp
  src/quant/linalg_avx2.cpp
  bindings/c/quant_formats.cpp
  bindings/c/quant_calib.cpp
  bindings/c/quant.cpp
  src/quant/matmul.cpp
  src/quant/matmul_scalar.cpp
  src/quant/matmul_avx2.cpp
  src/quant/matmul_avx512vnni.cpp
  src/quant/matmul_avx512vnni_gfni.cpp
  src/quant/matmul_int8_rows.cpp
  bindings/c/quant_matmul.cpp)
# Byte-exact agreement with ggml's reference quantizers needs every float
# operation rounded on its own: no FMA contraction (and never -ffast-math).
set_source_files_properties(src/quant/gguf_blocks.cpp src/quant/gguf_blocks_tq_mxfp4.cpp
  PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
# Quantized matmul: the scalar and AVX2 kernels must round identically (explicit
# fmaf only); the AVX2 file alone targets AVX2 + FMA + F16C and is only called
# after a CPU check (src/quant/matmul.cpp), so the library still runs without them.
set_source_files_properties(src/quant/matmul_scalar.cpp PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64|i.86" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set(_llmkit_qmm_avx2_options "-mavx2;-mfma;-mf16c;-ffp-contract=off")
  # GCC 12 at -O1 / -O2 (not -O0 / -O3, not clang) drops the calls of the
  # non-inlined tile functions as if they had no side effects: its mod/ref
  # analysis misses their stores through kernel_args::y, and GEMV/GEMM rows
  # came out 0 (RelWithDebInfo is -O2). tests/quant's [matmul] cases catch it.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND NOT CMAKE_CXX_COMPILER_VERSION VERSION_LESS 11)
    list(APPEND _llmkit_qmm_avx2_options "-fno-ipa-modref")
  endif()
  set_source_files_properties(src/quant/matmul_avx2.cpp PROPERTIES COMPILE_OPTIONS "${_llmkit_qmm_avx2_options}")
  # The same kernels with AVX512-VNNI (+ VL, BW): 256-bit vpdpbusd.
  set_source_files_properties(src/quant/matmul_avx512vnni.cpp PROPERTIES COMPILE_OPTIONS
    "${_llmkit_qmm_avx2_options};-mavx512f;-mavx512vl;-mavx512bw;-mavx512vnni")
  # The same kernels once more with GFNI (that build runs only where the CPU has it).
  set_source_files_properties(src/quant/matmul_avx512vnni_gfni.cpp PROPERTIES COMPILE_OPTIONS
    "${_llmkit_qmm_avx2_options};-mavx512f;-mavx512vl;-mavx512bw;-mavx512vnni;-mgfni")
endif()
# The non-GGUF formats are checked bit for bit against numpy / torch references.
set_source_files_properties(src/quant/int_formats.cpp src/quant/nf4.cpp src/quant/fp8.cpp
  PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
# GPTQ / AWQ: Cholesky factorizations and block products on Eigen (header-only, libeigen3-dev).
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
get_target_property(_llmkit_eigen_include Eigen3::Eigen INTERFACE_INCLUDE_DIRECTORIES)
set_source_files_properties(src/quant/gptq.cpp src/quant/awq.cpp src/quant/linalg_generic.cpp
  PROPERTIES INCLUDE_DIRECTORIES "${_llmkit_eigen_include}")
# Their heavy products (src/quant/linalg.hpp) also have an AVX2 + FMA build,
# Eigen renamed inside it, picked at run time.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  # -isystem: Eigen's AVX code has a warning of its own (an unused variable).
  set_source_files_properties(src/quant/linalg_avx2.cpp PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-isystem;${_llmkit_eigen_include}")
else()
  set_source_files_properties(src/quant/linalg_avx2.cpp PROPERTIES INCLUDE_DIRECTORIES "${_llmkit_eigen_include}")
endif()
