// The kernels compiled for each instruction set (elementwise_*.cpp, recurrent_*.cpp); dispatch.cpp
// picks one set at run time, the C++ test checks them all.
#pragma once

#include "rnncore/elementwise.h"
#include "rnncore/recurrent.h"

namespace rnncore {

template <typename F>
const ElementwiseKernels<F>& elementwise_baseline();
template <typename F>
const RecurrentKernels<F>& recurrent_baseline();
#ifdef RNNCORE_HAVE_AVX2
template <typename F>
const ElementwiseKernels<F>& elementwise_avx2();
template <typename F>
const RecurrentKernels<F>& recurrent_avx2();
#endif

}  // namespace rnncore
