// Softmax cross-entropy and its gradient (rnncore/losses.h): the sizes and labels checked here,
// the rows computed by the element-wise kernel set in use (elementwise_impl.h:
// softmax_cross_entropy, compiled per instruction set like the activations, where the
// exponentials vectorise 3x wider with AVX2 than in the baseline build).
#include "rnncore/losses.h"

#include <stdexcept>
#include <string>

#include "rnncore/elementwise.h"

namespace rnncore {

template <typename F>
double softmax_cross_entropy(std::int64_t N, std::int64_t C, const F* logits,
                             const std::int64_t* labels, double scale, F* grad) {
    if (N < 0 || C < 1)
        throw std::invalid_argument("softmax_cross_entropy: expected N >= 0 and C >= 1, got N = " +
                                    std::to_string(N) + ", C = " + std::to_string(C));
    for (std::int64_t r = 0; r < N; ++r)
        if (labels[r] < 0 || labels[r] >= C)
            throw std::invalid_argument("labels: expected classes in [0, " + std::to_string(C) +
                                        "), got " + std::to_string(labels[r]));
    return elementwise<F>().softmax_cross_entropy(N, C, logits, labels, scale, grad);
}

template double softmax_cross_entropy<float>(std::int64_t, std::int64_t, const float*,
                                             const std::int64_t*, double, float*);
template double softmax_cross_entropy<double>(std::int64_t, std::int64_t, const double*,
                                              const std::int64_t*, double, double*);

}  // namespace rnncore
