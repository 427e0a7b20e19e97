# Quantization block: GGUF block formats against ggml's reference vectors,
# round-trip error bounds, and C API errors.
add_executable(llmkit_quant_tests
  ${CMAKE_CURRENT_LIST_DIR}/test_gguf_blocks.cpp
  ${PROJECT_SOURCE_DIR}/tests/unit/main.cpp)
target_link_libraries(llmkit_quant_tests PRIVATE llmkit_static)
target_include_directories(llmkit_quant_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
if(LLMKIT_HAVE_DATA)
  target_compile_definitions(llmkit_quant_tests PRIVATE LLMKIT_TEST_DATA_DIR="${LLMKIT_DATA_DIR}")
endif()
catch_discover_tests(llmkit_quant_tests TEST_PREFIX "quant: " PROPERTIES LABELS "quant")
