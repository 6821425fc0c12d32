// The recurrent loops for any CPU of the target architecture.
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
