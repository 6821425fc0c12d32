// The kernel sets: the element-wise kernels (elementwise_*.cpp) and the recurrent loops
// (recurrent_*.cpp) compiled for each instruction set. dispatch.cpp picks one set for the whole
// process: the best the CPU runs, or the one set_kernel_isa asks for; the C++ test checks all.
#pragma once

#include <string>
#include <vector>

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
#ifdef RNNCORE_HAVE_AVX512
template <typename F>
const ElementwiseKernels<F>& elementwise_avx512();
template <typename F>
const RecurrentKernels<F>& recurrent_avx512();
#endif

// The kernel sets this build has and this CPU runs, slowest first: "baseline", then "avx2"
// (AVX2 + FMA), then "avx512" (AVX-512 F, VL, BW, DQ).
std::vector<std::string> available_isas();
// Switch every later call to the named set. Throws std::invalid_argument, naming the available
// sets, for an unknown name or one this CPU lacks. Not while kernels run on other threads.
void set_kernel_isa(const std::string& name);

}  // namespace rnncore
