#include "core/threads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
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

// Read once: glibc's hardware_concurrency() opens and reads
// /sys/devices/system/cpu/online on every call, and parallel_for asks on
// every call (a 4-row Q4_0 GEMV took ~20 us, most of it in those system calls).
int hardware_threads() {
    static const int n = [] {
        const unsigned h = std::thread::hardware_concurrency();
        return h ? int(h) : 1;
    }();
    return n;
}

// Spins before sleeping. Waking a thread through a condition variable costs
// tens of microseconds (a futex call, then the scheduler; more on a VM), as
// much as a whole small job: a 4096 x 4096 Q4_0 GEMV at 2 threads takes
// ~0.5 ms, and with pure sleeping it ran no faster than at 1 thread. So a
// worker that finishes a job polls for the next one for about `spin_budget`
// before it sleeps, and the caller polls for the workers' completion the same
// way; back-to-back calls (a decode step's matmuls) then hand over without a
// system call. The budget bounds the CPU burnt by an idle pool. (Checked with
// ThreadSanitizer, gcc 12 and clang 14, on 40,000 calls from two callers at
// 1-4 threads with exceptions and idle gaps: no report.)
constexpr auto spin_budget = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Polls `ready` until it returns true or the spin budget is spent; returns
// whether it became true. The clock is read only every 64 polls.
template <class Ready>
bool spin_until(Ready ready) {
    const auto deadline = std::chrono::steady_clock::now() + spin_budget;
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (ready()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() >= deadline) return ready();
    }
}

// One job at a time: a parallel_for holds job_mutex for its whole duration, so
// concurrent callers from different threads simply take turns.
//
// A job's workers join it: `state_` packs the job's generation (high 32
// bits), the seats still open to workers (bits 16-31) and the workers inside
// (bits 0-15), so joining is one compare-and-swap that fails for a stale or
// closed job. When the caller has run out of tasks it closes the seats and
// waits only for the workers inside. A worker the OS had not scheduled yet
// (common on a busy machine) then costs nothing: it finds the job closed and
// goes back to waiting, instead of the caller waiting for it to wake up just
// to find no task left.
//
// Hand-off (no lost wake-up): the caller writes the job's fields and
// `state_`, then bumps `generation_` (release), all under `mutex_`, then
// notifies cv_. A worker sleeps only after checking `generation_` under
// `mutex_`, and reads the fields only after a successful join (acquire).
// Completion mirrors it: a worker leaves with a release decrement (its error_
// write, under mutex_, comes before), and the one that leaves a closed job
// last notifies done_cv_ under `mutex_`; the caller checks the count under
// `mutex_` before it sleeps.
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
            const int active = std::min<int>(n_threads - 1, int(workers_.size()));
            active_workers_.store(active);
            const uint64_t generation = generation_.load() + 1;
            state_.store((generation << 32) | (uint64_t(active) << 16));
            generation_.store(generation, std::memory_order_release);
        }
        cv_.notify_all();  // cheap when no worker sleeps
        tls_in_parallel = true;
        work();
        tls_in_parallel = false;
        // No task is left: close the seats, then wait for the workers inside.
        const uint64_t inside_mask = 0xFFFF;
        state_.fetch_and(~(uint64_t(0xFFFF) << 16), std::memory_order_acq_rel);
        auto all_left = [&] { return (state_.load(std::memory_order_acquire) & inside_mask) == 0; };
        if (!spin_until(all_left)) {
            std::unique_lock<std::mutex> lk(mutex_);
            done_cv_.wait(lk, all_left);
        }
        std::lock_guard<std::mutex> lk(mutex_);
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

    // Takes a seat in job `generation` if it is still that job and a seat is open.
    bool join(uint64_t generation) {
        uint64_t s = state_.load(std::memory_order_acquire);
        for (;;) {
            if ((s >> 32) != (generation & 0xFFFFFFFFu) || ((s >> 16) & 0xFFFF) == 0) return false;
            const uint64_t joined = s - (uint64_t(1) << 16) + 1;
            if (state_.compare_exchange_weak(s, joined, std::memory_order_acq_rel, std::memory_order_acquire))
                return true;
        }
    }

    void leave() {
        const uint64_t before = state_.fetch_sub(1, std::memory_order_acq_rel);
        if ((before & 0xFFFF) == 1 && ((before >> 16) & 0xFFFF) == 0) {  // the last one out of a closed job
            std::lock_guard<std::mutex> lk(mutex_);
            done_cv_.notify_one();
        }
    }

    void worker_loop(int index) {
        tls_in_parallel = true;
        uint64_t seen = 0;
        // A job this worker has not looked at, with it among the workers asked.
        auto has_job = [&] {
            return generation_.load(std::memory_order_acquire) != seen && index < active_workers_.load();
        };
        for (;;) {
            if (!spin_until(has_job)) {
                std::unique_lock<std::mutex> lk(mutex_);
                cv_.wait(lk, [&] { return stop_ || has_job(); });
                if (stop_) return;
            }
            seen = generation_.load(std::memory_order_acquire);
            if (join(seen)) {
                work();
                leave();
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
    std::atomic<int> active_workers_{0};
    std::atomic<uint64_t> generation_{0};
    std::atomic<uint64_t> state_{0};  // generation << 32 | open seats << 16 | workers inside
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
