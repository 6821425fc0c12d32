// The recurrent loops compiled for AVX2 + FMA (CMake adds -mavx2 -mfma to this file only).
#include "recurrent_impl.h"

namespace rnncore {

template <typename F>
const RecurrentKernels<F>& recurrent_avx2() {
    static const RecurrentKernels<F> k = make_recurrent_kernels<F>("avx2+fma");
    return k;
}

template const RecurrentKernels<float>& recurrent_avx2<float>();
template const RecurrentKernels<double>& recurrent_avx2<double>();

}  // namespace rnncore
