# Tokenizer tests (issue 3): byte-level BPE against llama.cpp's and tiktoken's
# vectors, the mixed corpus slice, special tokens, errors and the C ABI.
add_executable(llmkit_tokenizer_tests
  ${CMAKE_CURRENT_LIST_DIR}/test_tiktoken.cpp
  ${PROJECT_SOURCE_DIR}/tests/unit/main.cpp)
target_link_libraries(llmkit_tokenizer_tests PRIVATE llmkit_static)
target_include_directories(llmkit_tokenizer_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
if(LLMKIT_HAVE_DATA)
  target_compile_definitions(llmkit_tokenizer_tests PRIVATE LLMKIT_TEST_DATA_DIR="${LLMKIT_DATA_DIR}")
endif()
catch_discover_tests(llmkit_tokenizer_tests TEST_PREFIX "tokenizer: " PROPERTIES LABELS "tokenizer")
