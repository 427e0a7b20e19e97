# Attention tests (issue 4): attention against a float64 reference across head
# layouts, masks and dtypes; decode vs prefill; RoPE layouts and scalings;
# KV-cache sizes; errors through the C ABI.
file(GLOB LLMKIT_ATTENTION_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
add_executable(llmkit_attention_tests
  ${LLMKIT_ATTENTION_TEST_SOURCES}
  ${PROJECT_SOURCE_DIR}/tests/unit/main.cpp)
target_link_libraries(llmkit_attention_tests PRIVATE llmkit_static)
target_include_directories(llmkit_attention_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
catch_discover_tests(llmkit_attention_tests TEST_PREFIX "attention: " PROPERTIES LABELS "attention")
