// Fused optimizer updates (rnncore/optim.h): each one loop over the flat buffers, which the
// compiler vectorises (-O3, no math errno for sqrt). The per-element expressions follow
// torch.optim's single-tensor code line by line (quoted), so results agree to float rounding.
#include "rnncore/optim.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace rnncore {
namespace {

void check_n(std::int64_t n) {
    if (n < 0) throw std::invalid_argument("n: expected >= 0 elements, got " + std::to_string(n));
}

}  // namespace

template <typename F>
void sgd_step(std::int64_t n, const SgdHyper& h, bool first, F* p, const F* g, F* buf) {
    check_n(n);
    if (h.momentum != 0 && buf == nullptr)
        throw std::invalid_argument("buf: expected a momentum buffer when momentum != 0");
    const F lr = F(h.lr), wd = F(h.weight_decay), mom = F(h.momentum);
    const F damp = F(1 - h.dampening);
    const bool decay = h.weight_decay != 0, momentum = h.momentum != 0;
    for (std::int64_t i = 0; i < n; ++i) {
        F d = g[i];
        if (decay) d = d + wd * p[i];  // grad = grad.add(param, alpha=weight_decay)
        if (momentum) {
            // buf = clone(grad) on the first step, else buf.mul_(momentum).add_(grad, alpha=1-damp)
            const F b = first ? d : buf[i] * mom + damp * d;
            buf[i] = b;
            d = h.nesterov ? d + mom * b : b;  // grad.add(buf, alpha=momentum) | buf
        }
        p[i] = p[i] - lr * d;  // param.add_(grad, alpha=-lr)
    }
}

template <typename F>
void adam_step(std::int64_t n, const AdamHyper& h, std::int64_t t, F* p, const F* g, F* m, F* v) {
    check_n(n);
    if (t < 1) throw std::invalid_argument("t: expected a step count >= 1, got " + std::to_string(t));
    const double bc1 = 1 - std::pow(h.beta1, double(t));
    const double bc2_sqrt = std::sqrt(1 - std::pow(h.beta2, double(t)));
    const F step_size = F(h.lr / bc1), bc2s = F(bc2_sqrt), eps = F(h.eps);
    const F w1 = F(1 - h.beta1), b2 = F(h.beta2), w2 = F(1 - h.beta2), wd = F(h.weight_decay);
    const F shrink = F(1 - h.lr * h.weight_decay);
    const bool decay = h.weight_decay != 0;
    for (std::int64_t i = 0; i < n; ++i) {
        F d = g[i], q = p[i];
        if (decay) {
            if (h.decoupled) q = q * shrink;  // param.mul_(1 - lr * weight_decay)
            else d = d + wd * q;              // grad = grad.add(param, alpha=weight_decay)
        }
        const F mi = m[i] + w1 * (d - m[i]);          // exp_avg.lerp_(grad, 1 - beta1)
        const F vi = v[i] * b2 + w2 * d * d;          // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1-beta2)
        const F denom = std::sqrt(vi) / bc2s + eps;  // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
        m[i] = mi;
        v[i] = vi;
        p[i] = q - step_size * mi / denom;  // param.addcdiv_(exp_avg, denom, value=-step_size)
    }
}

template <typename F>
double sum_squares(std::int64_t n, const F* g) {
    check_n(n);
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains, so the adds pipeline
    std::int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += double(g[i]) * g[i];
        s1 += double(g[i + 1]) * g[i + 1];
        s2 += double(g[i + 2]) * g[i + 2];
        s3 += double(g[i + 3]) * g[i + 3];
    }
    for (; i < n; ++i) s0 += double(g[i]) * g[i];
    return (s0 + s1) + (s2 + s3);
}

template <typename F>
void scale(std::int64_t n, F c, F* g) {
    check_n(n);
    for (std::int64_t i = 0; i < n; ++i) g[i] *= c;
}

#define RNNCORE_OPTIM(F)                                                                      \
    template void sgd_step<F>(std::int64_t, const SgdHyper&, bool, F*, const F*, F*);         \
    template void adam_step<F>(std::int64_t, const AdamHyper&, std::int64_t, F*, const F*, F*, \
                               F*);                                                           \
    template double sum_squares<F>(std::int64_t, const F*);                                   \
    template void scale<F>(std::int64_t, F, F*);
RNNCORE_OPTIM(float)
RNNCORE_OPTIM(double)
#undef RNNCORE_OPTIM

}  // namespace rnncore
