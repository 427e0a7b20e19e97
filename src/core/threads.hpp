// A small persistent thread pool. parallel_for(n, threads, fn) runs fn(i) for
// i in [0, n) with the calling thread taking part; calls made from inside a
// worker run serially, so nesting never deadlocks. The first exception thrown
// by any task is rethrown in the caller.
#pragma once

#include <cstdint>
#include <functional>

namespace llmkit::core {

int default_num_threads();
void set_default_num_threads(int n);  // 0 = hardware concurrency

void parallel_for(int64_t n, int n_threads, const std::function<void(int64_t)> &fn);

}  // namespace llmkit::core
