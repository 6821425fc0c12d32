// A small pool of worker threads for the kernels' independent work (batch slices, blocks of the
// all-steps GEMMs) and for time loops shared step by step (StepBlocks). One job runs at a time;
// a caller that finds the pool busy (another Python thread is computing) runs its tasks itself,
// so concurrent callers never wait on each other.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace rnncore {

// Threads used by rnncore's kernels (the caller counts as one). Default: the CPU count.
void set_num_threads(int n);
int get_num_threads();

// Runs task(i) for i in [0, n) on up to get_num_threads() threads (all on the caller's thread
// when `worth_threads` is false: waking a worker costs tens of microseconds) and returns when all
// are done. The first exception a task throws is rethrown here.
void parallel_for(int n, const std::function<void(int)>& task, bool worth_threads = true);

// A time loop shared by the threads of one parallel_for by columns instead of by batch rows:
// each of `steps` steps is cut into `blocks` blocks of whole panels (of `panels`), handed out in
// order, step by step. claim() returns a block of step i only once every block of step i - 1 has
// finished (its columns are the states this step reads). A block is never waited on before it
// is claimed, so any number of threads can share the loop, one included: a task that finds the
// pool busy and runs alone does every block itself, in order.
class StepBlocks {
  public:
    StepBlocks(std::int64_t steps, std::int64_t blocks, std::int64_t panels)
        : steps_(steps), blocks_(blocks), panels_(panels) {}
    // The next block: its step index i in [0, steps) and panels [p_lo, p_hi); false when all
    // are taken. Call finish() once the block's outputs are written.
    bool claim(std::int64_t& i, std::int64_t& p_lo, std::int64_t& p_hi);
    void finish() { done_.fetch_add(1, std::memory_order_release); }

  private:
    const std::int64_t steps_, blocks_, panels_;
    alignas(64) std::atomic<std::int64_t> next_{0};  // blocks claimed (apart: each thread writes both)
    alignas(64) std::atomic<std::int64_t> done_{0};  // blocks finished
};

}  // namespace rnncore
