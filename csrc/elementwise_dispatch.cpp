// Picks the element-wise kernels for this CPU once, at first use.
#include "rnncore/elementwise.h"

namespace rnncore {

template <typename F>
const ElementwiseKernels<F>& elementwise_baseline();
#ifdef RNNCORE_HAVE_AVX2
template <typename F>
const ElementwiseKernels<F>& elementwise_avx2();
#endif

namespace {
bool cpu_has_avx2_fma() {
#ifdef RNNCORE_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}
}  // namespace

template <typename F>
const ElementwiseKernels<F>& elementwise() {
#ifdef RNNCORE_HAVE_AVX2
    static const ElementwiseKernels<F>& chosen =
        cpu_has_avx2_fma() ? elementwise_avx2<F>() : elementwise_baseline<F>();
#else
    static const ElementwiseKernels<F>& chosen = elementwise_baseline<F>();
#endif
    return chosen;
}

template const ElementwiseKernels<float>& elementwise<float>();
template const ElementwiseKernels<double>& elementwise<double>();

const char* elementwise_isa() { return cpu_has_avx2_fma() ? "avx2+fma" : "baseline"; }

}  // namespace rnncore
