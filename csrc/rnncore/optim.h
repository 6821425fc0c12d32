// Fused optimizer updates and gradient utilities over flat parameter buffers.
//
// Shape letter: N elements (all of a model's parameters, one contiguous buffer; any contiguous
// segment of it works the same). Every update is one pass over the N elements, with the update
// rules of torch.optim's single-tensor implementations, in the same order of operations, in F.
//
//   p:   [N] parameters; updated in place
//   g:   [N] gradients; read only
//   buf, m, v: [N] optimizer state; updated in place (momentum buffer, exp_avg, exp_avg_sq)
//
// Hyperparameters are as the torch.optim classes take them; scalars derived from the step count
// (bias corrections) are computed in double, as torch computes them in Python, then used as F.
// Sizes are 64-bit; a negative n throws std::invalid_argument.
#pragma once

#include <cstdint>

namespace rnncore {

struct SgdHyper {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
};

// torch.optim.SGD: g' = g + wd*p; buf = g' (first) or momentum*buf + (1-dampening)*g';
// g' = g' + momentum*buf (nesterov) or buf; p -= lr*g'. buf may be null when momentum == 0.
template <typename F>
void sgd_step(std::int64_t n, const SgdHyper& h, bool first, F* p, const F* g, F* buf);

struct AdamHyper {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;  // AdamW: p *= 1 - lr*wd first, and no L2 term in g
};

// torch.optim.Adam / AdamW at step t >= 1 (the count after this step):
//   g' = g + wd*p (Adam only); m = lerp(m, g', 1-beta1); v = beta2*v + (1-beta2)*g'*g';
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
template <typename F>
void adam_step(std::int64_t n, const AdamHyper& h, std::int64_t t, F* p, const F* g, F* m, F* v);

// Sum of g[i]^2 in double (clip_grad_norm's squared norm).
template <typename F>
double sum_squares(std::int64_t n, const F* g);

// g[i] *= c.
template <typename F>
void scale(std::int64_t n, F c, F* g);

}  // namespace rnncore
