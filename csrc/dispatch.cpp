// Picks the kernels for this CPU once, at first use: the AVX2+FMA build where the CPU has both,
// else the baseline build.
#include "rnncore/isa.h"

namespace rnncore {

namespace {
bool use_avx2() {
#ifdef RNNCORE_HAVE_AVX2
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }();
    return yes;
#else
    return false;
#endif
}
}  // namespace

template <typename F>
const ElementwiseKernels<F>& elementwise() {
#ifdef RNNCORE_HAVE_AVX2
    if (use_avx2()) return elementwise_avx2<F>();
#endif
    return elementwise_baseline<F>();
}

template <typename F>
const RecurrentKernels<F>& recurrent() {
#ifdef RNNCORE_HAVE_AVX2
    if (use_avx2()) return recurrent_avx2<F>();
#endif
    return recurrent_baseline<F>();
}

template const ElementwiseKernels<float>& elementwise<float>();
template const ElementwiseKernels<double>& elementwise<double>();
template const RecurrentKernels<float>& recurrent<float>();
template const RecurrentKernels<double>& recurrent<double>();

const char* elementwise_isa() { return use_avx2() ? "avx2+fma" : "baseline"; }

}  // namespace rnncore
