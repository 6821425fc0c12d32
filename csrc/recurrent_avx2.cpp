// The recurrent loops compiled for AVX2 + FMA (CMake adds -mavx2 -mfma to this file only):
// 32-byte vectors, tiles of 6 rows (12 accumulators and 2 panel vectors of the 16 registers).
#define RNNCORE_VECTOR_BYTES 32
#define RNNCORE_TILE_ROWS 6
#include "recurrent_impl.h"

namespace rnncore {

template <typename F>
const RecurrentKernels<F>& recurrent_avx2() {
    static const RecurrentKernels<F> k = make_recurrent_kernels<F>("avx2");
    return k;
}

template const RecurrentKernels<float>& recurrent_avx2<float>();
template const RecurrentKernels<double>& recurrent_avx2<double>();

}  // namespace rnncore
