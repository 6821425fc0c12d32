// The recurrent loops compiled for AVX-512 (CMake adds -mavx512f -mavx512vl -mavx512bw
// -mavx512dq -mfma to this file only): 64-byte vectors, so panels of 32 floats, and tiles of
// RNNCORE_TILE_ROWS rows: 2 * rows accumulators and 2 panel vectors of the 32 registers.
#define RNNCORE_VECTOR_BYTES 64
#define RNNCORE_TILE_ROWS 12
#include "recurrent_impl.h"

namespace rnncore {

template <typename F>
const RecurrentKernels<F>& recurrent_avx512() {
    static const RecurrentKernels<F> k = make_recurrent_kernels<F>("avx512");
    return k;
}

template const RecurrentKernels<float>& recurrent_avx512<float>();
template const RecurrentKernels<double>& recurrent_avx512<double>();

}  // namespace rnncore
