// Picks one kernel set for the process: at first use the best this CPU runs (AVX-512, else
// AVX2+FMA, else the baseline build); set_kernel_isa switches to another.
#include <atomic>
#include <stdexcept>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "rnncore/isa.h"

namespace rnncore {

namespace {
enum class Isa : int { Baseline, Avx2, Avx512 };
const char* const kNames[] = {"baseline", "avx2", "avx512"};

bool cpu_runs(Isa isa) {
    __builtin_cpu_init();
    switch (isa) {
        case Isa::Baseline:
            return true;
        case Isa::Avx2:
#ifdef RNNCORE_HAVE_AVX2
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
            return false;
#endif
        case Isa::Avx512:
#ifdef RNNCORE_HAVE_AVX512
            return cpu_runs(Isa::Avx2) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq");
#else
            return false;
#endif
    }
    return false;
}

Isa best() {
    for (Isa isa : {Isa::Avx512, Isa::Avx2})
        if (cpu_runs(isa)) return isa;
    return Isa::Baseline;
}

std::atomic<Isa>& current() {
    static std::atomic<Isa> isa{best()};
    return isa;
}
}  // namespace

std::vector<std::string> available_isas() {
    std::vector<std::string> names;
    for (Isa isa : {Isa::Baseline, Isa::Avx2, Isa::Avx512})
        if (cpu_runs(isa)) names.push_back(kNames[static_cast<int>(isa)]);
    return names;
}

void set_kernel_isa(const std::string& name) {
    for (Isa isa : {Isa::Baseline, Isa::Avx2, Isa::Avx512}) {
        if (name != kNames[static_cast<int>(isa)] || !cpu_runs(isa)) continue;
        current().store(isa);
        return;
    }
    std::string available;
    for (const std::string& n : available_isas()) available += (available.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown or unsupported kernel set '" + name + "': this CPU and build run " +
                                available);
}

const char* elementwise_isa() { return kNames[static_cast<int>(current().load())]; }

template <typename F>
const ElementwiseKernels<F>& elementwise() {
    switch (current().load(std::memory_order_relaxed)) {
#ifdef RNNCORE_HAVE_AVX512
        case Isa::Avx512: return elementwise_avx512<F>();
#endif
#ifdef RNNCORE_HAVE_AVX2
        case Isa::Avx2: return elementwise_avx2<F>();
#endif
        default: return elementwise_baseline<F>();
    }
}

template <typename F>
const RecurrentKernels<F>& recurrent() {
    switch (current().load(std::memory_order_relaxed)) {
#ifdef RNNCORE_HAVE_AVX512
        case Isa::Avx512: return recurrent_avx512<F>();
#endif
#ifdef RNNCORE_HAVE_AVX2
        case Isa::Avx2: return recurrent_avx2<F>();
#endif
        default: return recurrent_baseline<F>();
    }
}

namespace {
std::int64_t default_weight_block_bytes() {
    long l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);  // glibc; 0 or -1 where unknown (some VMs, other OSes)
#endif
    return l2 > 0 ? l2 / 2 : 512 * 1024;
}
std::atomic<std::int64_t>& weight_block() {
    static std::atomic<std::int64_t> bytes{default_weight_block_bytes()};
    return bytes;
}
}  // namespace

std::int64_t weight_block_bytes() { return weight_block().load(std::memory_order_relaxed); }
void set_weight_block_bytes(std::int64_t bytes) {
    weight_block().store(bytes > 0 ? bytes : default_weight_block_bytes());
}

template const ElementwiseKernels<float>& elementwise<float>();
template const ElementwiseKernels<double>& elementwise<double>();
template const RecurrentKernels<float>& recurrent<float>();
template const RecurrentKernels<double>& recurrent<double>();

}  // namespace rnncore
