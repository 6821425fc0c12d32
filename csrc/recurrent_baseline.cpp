// The recurrent loops for any CPU of the target architecture: 32-byte vectors (which the compiler
// splits into what the target has), tiles of 6 rows.
#define RNNCORE_VECTOR_BYTES 32
#define RNNCORE_TILE_ROWS 6
#include "recurrent_impl.h"

namespace rnncore {

template <typename F>
const RecurrentKernels<F>& recurrent_baseline() {
    static const RecurrentKernels<F> k = make_recurrent_kernels<F>("baseline");
    return k;
}

template const RecurrentKernels<float>& recurrent_baseline<float>();
template const RecurrentKernels<double>& recurrent_baseline<double>();

}  // namespace rnncore
