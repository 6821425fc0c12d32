// The element-wise kernels for any CPU of the target architecture (x86-64: SSE2).
#include "elementwise_impl.h"

namespace rnncore {

template <typename F>
const ElementwiseKernels<F>& elementwise_baseline() {
    static const ElementwiseKernels<F> k = make_kernels<F>("baseline");
    return k;
}

template const ElementwiseKernels<float>& elementwise_baseline<float>();
template const ElementwiseKernels<double>& elementwise_baseline<double>();

}  // namespace rnncore
