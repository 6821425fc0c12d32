// The element-wise kernels compiled for AVX2 + FMA (CMake adds -mavx2 -mfma to this file only).
#include "elementwise_impl.h"

namespace rnncore {

template <typename F>
const ElementwiseKernels<F>& elementwise_avx2() {
    static const ElementwiseKernels<F> k = make_kernels<F>("avx2");
    return k;
}

template const ElementwiseKernels<float>& elementwise_avx2<float>();
template const ElementwiseKernels<double>& elementwise_avx2<double>();

}  // namespace rnncore
