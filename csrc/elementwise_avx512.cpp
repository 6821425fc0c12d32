// The element-wise kernels compiled for AVX-512 (CMake adds -mavx512f -mavx512vl -mavx512bw
// -mavx512dq -mfma -mprefer-vector-width=512 to this file only).
#include "elementwise_impl.h"

namespace rnncore {

template <typename F>
const ElementwiseKernels<F>& elementwise_avx512() {
    static const ElementwiseKernels<F> k = make_kernels<F>("avx512");
    return k;
}

template const ElementwiseKernels<float>& elementwise_avx512<float>();
template const ElementwiseKernels<double>& elementwise_avx512<double>();

}  // namespace rnncore
