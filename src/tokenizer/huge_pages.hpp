// An allocator for the rank and pair tables: many MiB read at random, one
// cache line per lookup. With 4 KiB pages nearly every lookup also misses the
// TLB (o200k's tables span ~4000 pages, more than the TLB holds) and pays a
// page walk; on Linux, blocks of 1 MiB and more are mapped on their own,
// aligned to 2 MiB and marked MADV_HUGEPAGE, so that the kernel backs them
// with huge pages where it can (transparent huge pages in "madvise" mode, the
// common default). Elsewhere, or for smaller blocks, it is operator new; and
// under AddressSanitizer too, which checks heap blocks, not mappings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define LLMKIT_TOK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLMKIT_TOK_ASAN 1
#endif
#endif

// ThreadSanitizer, for load_head's reads past a piece's end (bpe.hpp).
#if defined(__SANITIZE_THREAD__)
#define LLMKIT_TOK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LLMKIT_TOK_TSAN 1
#endif
#endif

#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(LLMKIT_TOK_ASAN)
#define LLMKIT_TOK_HUGE_PAGES 1
#endif

namespace llmkit::tok {

template <typename T>
struct huge_page_allocator {
    using value_type = T;
    // Whether blocks of k_min_bytes and more are mappings on 2 MiB boundaries.
#if defined(LLMKIT_TOK_HUGE_PAGES)
    static constexpr bool maps_huge_pages = true;
#else
    static constexpr bool maps_huge_pages = false;
#endif
    static constexpr size_t k_min_bytes = size_t(1) << 20;

    huge_page_allocator() noexcept = default;
    template <typename U>
    huge_page_allocator(const huge_page_allocator<U> &) noexcept {}

    T *allocate(size_t n) {
        if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
        const size_t bytes = n * sizeof(T);
#if defined(LLMKIT_TOK_HUGE_PAGES)
        if (bytes >= k_min_bytes) {
            // Map 2 MiB more than needed and unmap the ends, which leaves a
            // block that starts on a 2 MiB boundary.
            const size_t len = rounded(bytes);
            void *raw = mmap(nullptr, len + k_huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (raw == MAP_FAILED) throw std::bad_alloc();
            const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
            const uintptr_t aligned = (start + k_huge - 1) & ~uintptr_t(k_huge - 1);
            if (aligned > start) munmap(raw, aligned - start);
            if (aligned + len < start + len + k_huge) munmap(reinterpret_cast<void *>(aligned + len), start + k_huge - aligned);
            madvise(reinterpret_cast<void *>(aligned), len, MADV_HUGEPAGE);  // advice only: may fail harmlessly
            return reinterpret_cast<T *>(aligned);
        }
#endif
        return static_cast<T *>(::operator new(bytes, std::align_val_t(alignof(T))));
    }
    void deallocate(T *p, size_t n) noexcept {
#if defined(LLMKIT_TOK_HUGE_PAGES)
        const size_t bytes = n * sizeof(T);
        if (bytes >= k_min_bytes) {
            munmap(p, rounded(bytes));
            return;
        }
#else
        (void)n;
#endif
        ::operator delete(p, std::align_val_t(alignof(T)));
    }
    template <typename U>
    bool operator==(const huge_page_allocator<U> &) const noexcept { return true; }
    template <typename U>
    bool operator!=(const huge_page_allocator<U> &) const noexcept { return false; }

private:
    // From k_min_bytes (1 MiB) a block is a mapping: a table of 1-2 MiB then
    // takes one huge page (and wastes at most 1 MiB).
    static constexpr size_t k_huge = size_t(2) << 20;
    static size_t rounded(size_t bytes) noexcept { return (bytes + k_huge - 1) & ~(k_huge - 1); }
};

}  // namespace llmkit::tok
