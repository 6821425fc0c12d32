// The element-wise work of the recurrence (activation, its derivative, bias rows and sums) and
// of the loss (softmax cross-entropy),
// compiled once per instruction set and chosen at load time by the CPU's features.
#pragma once

#include <cstdint>

#include "rnncore/rnn.h"

namespace rnncore {

template <typename F>
struct ElementwiseKernels {
    const char* isa;  // the kernel set: "baseline", "avx2" or "avx512" (rnncore/isa.h)

    // h[r, :cols] = act(h[r, :cols]) in place, for each of `rows` rows of stride ldh.
    void (*activate)(Activation act, std::int64_t rows, std::int64_t cols, F* h, std::int64_t ldh);

    // dz[r] = (dh[r] + dnext[r]) * act'(h[r]), act' read from the activation's output h:
    // 1 - h*h for tanh, (h > 0) for relu. dh may be nullptr (zero); dnext is [rows,cols]
    // contiguous or nullptr (zero). dz may alias dh (same pointer and stride).
    void (*activation_grad)(Activation act, std::int64_t rows, std::int64_t cols,
                            const F* dh, std::int64_t lddh, const F* dnext,
                            const F* h, std::int64_t ldh, F* dz, std::int64_t lddz);

    // sums[j] += sum over rows r of a[r, j].
    void (*add_column_sums)(std::int64_t rows, std::int64_t cols, const F* a, std::int64_t lda,
                            F* sums);

    // Softmax cross-entropy of rows x[r, :cols] (contiguous) at labels[r] (already checked to lie
    // in [0, cols)): grad[r] = scale * (softmax(x[r]) - one_hot(labels[r])), written; returns
    // scale * sum over rows of -log softmax(x[r])[labels[r]] (rnncore/losses.h).
    double (*softmax_cross_entropy)(std::int64_t rows, std::int64_t cols, const F* x,
                                    const std::int64_t* labels, double scale, F* grad);
};

// The kernels of the set in use (dispatch.cpp).
template <typename F>
const ElementwiseKernels<F>& elementwise();

// Name of the kernel set in use: "baseline", "avx2" or "avx512".
const char* elementwise_isa();

}  // namespace rnncore
