#include "core/threads.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace llmkit::core {

namespace {

std::atomic<int> g_default_threads{0};
// Set while a thread executes pool tasks (a worker, or a caller taking part);
// parallel_for called from such a thread runs serially instead of re-entering
// the pool, whose job mutex that thread may already hold.
thread_local bool tls_in_parallel = false;

int hardware_threads() {
    const unsigned h = std::thread::hardware_concurrency();
    return h ? int(h) : 1;
}

// One job at a time: a parallel_for holds job_mutex for its whole duration, so
// concurrent callers from different threads simply take turns.
class pool {
public:
    static pool &instance() {
        static pool p;
        return p;
    }

    void run(int64_t n, int n_threads, const std::function<void(int64_t)> &fn) {
        std::lock_guard<std::mutex> job_lock(job_mutex_);
        ensure_workers(n_threads - 1);
        {
            std::lock_guard<std::mutex> lk(mutex_);
            fn_ = &fn;
            n_ = n;
            next_.store(0);
            error_ = nullptr;
            active_workers_ = std::min<int>(n_threads - 1, int(workers_.size()));
            pending_ = active_workers_;
            ++generation_;
        }
        cv_.notify_all();
        tls_in_parallel = true;
        work();
        tls_in_parallel = false;
        std::unique_lock<std::mutex> lk(mutex_);
        done_cv_.wait(lk, [&] { return pending_ == 0; });
        fn_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

    ~pool() {
        {
            std::lock_guard<std::mutex> lk(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }

private:
    void ensure_workers(int wanted) {
        while (int(workers_.size()) < wanted) {
            const int index = int(workers_.size());
            workers_.emplace_back([this, index] { worker_loop(index); });
        }
    }

    void work() {
        for (;;) {
            const int64_t i = next_.fetch_add(1);
            if (i >= n_) return;
            try {
                (*fn_)(i);
            } catch (...) {
                std::lock_guard<std::mutex> lk(mutex_);
                if (!error_) error_ = std::current_exception();
                next_.store(n_);  // stop handing out work
            }
        }
    }

    void worker_loop(int index) {
        tls_in_parallel = true;
        uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> lk(mutex_);
                cv_.wait(lk, [&] { return stop_ || (generation_ != seen && index < active_workers_); });
                if (stop_) return;
                seen = generation_;
            }
            work();
            {
                std::lock_guard<std::mutex> lk(mutex_);
                if (--pending_ == 0) done_cv_.notify_one();
            }
        }
    }

    std::mutex job_mutex_;
    std::mutex mutex_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const std::function<void(int64_t)> *fn_ = nullptr;
    int64_t n_ = 0;
    std::atomic<int64_t> next_{0};
    std::exception_ptr error_;
    int active_workers_ = 0;
    int pending_ = 0;
    uint64_t generation_ = 0;
    bool stop_ = false;
};

}  // namespace

int default_num_threads() {
    const int n = g_default_threads.load();
    return n > 0 ? n : hardware_threads();
}

void set_default_num_threads(int n) { g_default_threads.store(n > 0 ? n : 0); }

void parallel_for(int64_t n, int n_threads, const std::function<void(int64_t)> &fn) {
    if (n <= 0) return;
    if (n_threads <= 0) n_threads = default_num_threads();
    // More workers than hardware threads only adds switching; the cap also keeps
    // a huge request from spawning thousands of idle threads.
    n_threads = int(std::min<int64_t>({int64_t(n_threads), n, int64_t(4 * hardware_threads())}));
    if (n_threads <= 1 || tls_in_parallel) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    pool::instance().run(n, n_threads, fn);
}

}  // namespace llmkit::core
