/**
 * @file llmkit_export.h
 * @brief Symbol-visibility and calling-convention macros for the llmkit C ABI.
 *
 * The library is compiled with `-fvisibility=hidden`; only declarations marked
 * #LLMKIT_API are exported from `libllmkit.so`. A linker version script keeps
 * the exported set to `llmkit_*` names even if a stray symbol slips through.
 */
#ifndef LLMKIT_EXPORT_H
#define LLMKIT_EXPORT_H

/**
 * @def LLMKIT_API
 * @brief Marks a function as part of the public C ABI.
 *
 * Default visibility on ELF platforms, `__declspec(dllexport)`/`dllimport` on
 * Windows, and nothing when `LLMKIT_STATIC_DEFINE` is defined (static builds).
 */
#if defined(LLMKIT_STATIC_DEFINE)
#  define LLMKIT_API
#elif defined(_WIN32)
#  if defined(LLMKIT_BUILDING_LIBRARY)
#    define LLMKIT_API __declspec(dllexport)
#  else
#    define LLMKIT_API __declspec(dllimport)
#  endif
#else
#  define LLMKIT_API __attribute__((visibility("default")))
#endif

#endif /* LLMKIT_EXPORT_H */
