#include "rnncore/thread_pool.h"

#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace rnncore {
namespace {

// One parallel_for call. It lives on the caller's stack until every task has run and no worker
// holds it any more.
struct Job {
    const std::function<void(int)>* task = nullptr;
    int n = 0;
    std::atomic<int> next{0};
    int pending = 0;         // tasks not finished (guarded by the pool's mutex)
    int workers_inside = 0;  // workers that took a pointer to this job (guarded likewise)
    std::exception_ptr error;
};

class ThreadPool {
  public:
    // Workers are kept: the first `n - 1` of them take part in jobs, the rest sleep. (Stopping
    // and starting them here made every change of thread count start a new worker thread.)
    void resize(int n) {
        std::lock_guard<std::mutex> busy(job_mutex_);
        size_.store(n);
    }
    int size() const { return size_.load(); }

    void run(int n, const std::function<void(int)>& task) {
        std::unique_lock<std::mutex> busy(job_mutex_, std::try_to_lock);
        if (n <= 1 || size() <= 1 || !busy.owns_lock()) {  // alone, or the pool is busy: run here
            for (int i = 0; i < n; ++i) task(i);
            return;
        }
        start_workers();
        Job job;
        job.task = &task;
        job.n = job.pending = n;
        {
            std::lock_guard<std::mutex> lock(m_);
            job_ = &job;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        work_on(job);
        std::unique_lock<std::mutex> lock(m_);
        done_.wait(lock, [&] { return job.pending == 0 && job.workers_inside == 0; });
        job_ = nullptr;
        if (job.error) std::rethrow_exception(job.error);
    }

  private:
    void work_on(Job& job) {
        for (int i; (i = job.next.fetch_add(1)) < job.n;) {
            std::exception_ptr error;
            try {
                (*job.task)(i);
            } catch (...) {
                error = std::current_exception();
            }
            std::lock_guard<std::mutex> lock(m_);
            if (error && !job.error) job.error = error;
            if (--job.pending == 0) done_.notify_all();
        }
    }

    // Worker `index` (0 for the first) takes part in jobs while the pool has index + 2 threads or
    // more (the caller is one).
    void worker_main(int index) {
        std::uint64_t seen = generation_.load(std::memory_order_acquire);
        while (true) {
            // Spin briefly first: a forward or backward runs its jobs back to back.
            const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
            while (index < size() - 1 && generation_.load(std::memory_order_acquire) == seen &&
                   std::chrono::steady_clock::now() < until)
                std::this_thread::yield();
            Job* job;
            {
                std::unique_lock<std::mutex> lock(m_);
                wake_.wait(lock, [&] { return generation_.load() != seen; });
                seen = generation_.load();
                job = job_;
                if (!job || index >= size() - 1) continue;  // finished already, or not for this one
                ++job->workers_inside;
            }
            work_on(*job);
            std::lock_guard<std::mutex> lock(m_);
            if (--job->workers_inside == 0 && job->pending == 0) done_.notify_all();
        }
    }

    void start_workers() {
        if (owner_pid_ != getpid()) {  // a forked child: the parent's workers do not exist here
            new std::vector<std::thread>(std::move(workers_));  // never join nor destroy them
            workers_.clear();
            owner_pid_ = getpid();
        }
        for (int i = static_cast<int>(workers_.size()); i < size() - 1; ++i)
            workers_.emplace_back([this, i] { worker_main(i); });
    }

    std::atomic<int> size_{std::thread::hardware_concurrency() ? static_cast<int>(std::thread::hardware_concurrency()) : 1};
    pid_t owner_pid_ = getpid();
    std::vector<std::thread> workers_;
    std::mutex job_mutex_;  // held by the caller of run() for its whole job
    std::mutex m_;          // guards job_ and the Job counters
    std::condition_variable wake_, done_;
    std::atomic<std::uint64_t> generation_{0};
    Job* job_ = nullptr;
};

ThreadPool& pool() {
    static ThreadPool* p = new ThreadPool;  // never destroyed: workers may outlive static destructors
    return *p;
}

}  // namespace

void set_num_threads(int n) {
    if (n < 1 || n > 1024)
        throw std::invalid_argument("set_num_threads: expected 1 <= n <= 1024, got " + std::to_string(n));
    pool().resize(n);
}

int get_num_threads() { return pool().size(); }

void parallel_for(int n, const std::function<void(int)>& task, bool worth_threads) {
    if (!worth_threads) {
        for (int i = 0; i < n; ++i) task(i);
        return;
    }
    pool().run(n, task);
}

bool StepBlocks::claim(std::int64_t& i, std::int64_t& p_lo, std::int64_t& p_hi) {
    const std::int64_t g = next_.fetch_add(1, std::memory_order_relaxed);
    if (g >= steps_ * blocks_) return false;
    i = g / blocks_;
    const std::int64_t b = g % blocks_;
    p_lo = panels_ * b / blocks_, p_hi = panels_ * (b + 1) / blocks_;
    // Every block of the steps before i was claimed before this one, by a thread that is running
    // it now, so the wait ends. done_ reaches i * blocks only when exactly those have finished (a
    // block of step i or later finishes only after this same wait).
    for (int spin = 0; done_.load(std::memory_order_acquire) < i * blocks_; ++spin) {
        if (spin < 2000) {  // tens of microseconds
#if defined(__SSE2__)
            _mm_pause();
#endif
        } else {
            std::this_thread::yield();  // the other thread lost its core
        }
    }
    return true;
}

}  // namespace rnncore
