// A small pool of worker threads for the kernels' independent work (batch slices, blocks of the
// all-steps GEMMs). One job runs at a time; a caller that finds the pool busy (another Python
// thread is computing) runs its tasks itself, so concurrent callers never wait on each other.
#pragma once

#include <functional>

namespace rnncore {

// Threads used by rnncore's kernels (the caller counts as one). Default: the CPU count.
void set_num_threads(int n);
int get_num_threads();

// Runs task(i) for i in [0, n) on up to get_num_threads() threads (all on the caller's thread
// when `worth_threads` is false: waking a worker costs tens of microseconds) and returns when all
// are done. The first exception a task throws is rethrown here.
void parallel_for(int n, const std::function<void(int)>& task, bool worth_threads = true);

}  // namespace rnncore
