// Fused losses: the loss and its gradient in one pass over the rows.
//
// Shape letters: N rows (all T*B steps), C classes; row major, contiguous.
//
//   logits: [N, C] read
//   labels: [N] int64 class of each row, each in [0, C) (else std::invalid_argument); read
//   scale:  the weight of each row in the loss (1/N for torch's mean)
//   grad:   [N, C] written: scale * (softmax(logits) - one_hot(labels)); may not alias logits
// Returns scale * sum over rows of -log softmax(logits)[label], accumulated in double.
#pragma once

#include <cstdint>

namespace rnncore {

template <typename F>
double softmax_cross_entropy(std::int64_t N, std::int64_t C, const F* logits,
                             const std::int64_t* labels, double scale, F* grad);

}  // namespace rnncore
