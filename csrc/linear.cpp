// The head's linear layers (rnncore/linear.h): one GEMM per layer and direction over all rows
// (the recurrent kernels' gemm_rows and gemm_tn, on the set's tiles or BLAS), the activation
// applied in place.
#include "rnncore/linear.h"

#include <stdexcept>
#include <string>

#include "rnncore/elementwise.h"
#include "rnncore/recurrent.h"

namespace rnncore {
namespace {

void check_sizes(std::int64_t N, std::int64_t I, std::int64_t O) {
    if (N < 0 || I < 1 || O < 1)
        throw std::invalid_argument("linear: expected N >= 0, I >= 1, O >= 1, got N = " +
                                    std::to_string(N) + ", I = " + std::to_string(I) +
                                    ", O = " + std::to_string(O));
}

}  // namespace

template <typename F>
void linear_forward(std::int64_t N, std::int64_t I, std::int64_t O, HeadActivation act,
                    const F* a, const F* w, const F* b, F* z) {
    check_sizes(N, I, O);
    recurrent<F>().gemm_rows(N, O, I, a, I, w, I, true, b, z, O);  // z = b + a w^T
    const auto& k = elementwise<F>();
    switch (act) {
        case HeadActivation::None: break;
        case HeadActivation::Relu: k.activate(Activation::Relu, N, O, z, O); break;
        case HeadActivation::Tanh: k.activate(Activation::Tanh, N, O, z, O); break;
        case HeadActivation::Sigmoid:  // 0.5 * (1 + tanh(0.5 * z))
            for (std::int64_t i = 0; i < N * O; ++i) z[i] *= F(0.5);
            k.activate(Activation::Tanh, N, O, z, O);
            for (std::int64_t i = 0; i < N * O; ++i) z[i] = F(0.5) * (F(1) + z[i]);
            break;
    }
}

template <typename F>
void linear_backward(std::int64_t N, std::int64_t I, std::int64_t O, HeadActivation act_in,
                     const F* a, const F* w, const F* dz, F* da, F* dw, F* db) {
    check_sizes(N, I, O);
    // z = a w^T + b
    recurrent<F>().gemm_tn(O, I, N, dz, O, a, I, dw, I);  // dw += dz^T a
    const auto& k = elementwise<F>();
    k.add_column_sums(N, O, dz, O, db);  // db += sum_r dz[r]
    if (da == nullptr) return;
    recurrent<F>().gemm_rows(N, I, O, dz, O, w, I, false, nullptr, da, I);  // da = dz w
    switch (act_in) {  // a = act_in(z_prev): da *= act_in'(a)
        case HeadActivation::None: break;
        case HeadActivation::Relu:
            k.activation_grad(Activation::Relu, N, I, da, I, nullptr, a, I, da, I);
            break;
        case HeadActivation::Tanh:
            k.activation_grad(Activation::Tanh, N, I, da, I, nullptr, a, I, da, I);
            break;
        case HeadActivation::Sigmoid:
            for (std::int64_t i = 0; i < N * I; ++i) da[i] *= a[i] * (F(1) - a[i]);
            break;
    }
}

template void linear_forward<float>(std::int64_t, std::int64_t, std::int64_t, HeadActivation,
                                    const float*, const float*, const float*, float*);
template void linear_forward<double>(std::int64_t, std::int64_t, std::int64_t, HeadActivation,
                                     const double*, const double*, const double*, double*);
template void linear_backward<float>(std::int64_t, std::int64_t, std::int64_t, HeadActivation,
                                     const float*, const float*, const float*, float*, float*,
                                     float*);
template void linear_backward<double>(std::int64_t, std::int64_t, std::int64_t, HeadActivation,
                                      const double*, const double*, const double*, double*,
                                      double*, double*);

}  // namespace rnncore
