// The naive reference; see reference.h. Every sum is a plain loop in double.
#include "reference.h"

#include <cmath>
#include <vector>

namespace rnncore {
namespace {

// Row b of the state step t starts from: h[t-1] (h[t+1] in reverse), or h0 at the first step
// (nullptr when h0 is: a zero state).
template <typename F>
const F* h_prev(const Dims& d, bool reverse, const F* h, std::int64_t ldh, const F* h0,
                std::int64_t t, std::int64_t b) {
    const std::int64_t p = reverse ? t + 1 : t - 1;
    if (p < 0 || p >= d.T) return h0 ? h0 + b * d.H : nullptr;
    return h + (p * d.B + b) * ldh;
}

}  // namespace

template <typename F>
void rnn_forward_naive(const Dims& d, Activation act, bool reverse,
                       const F* x, std::int64_t ldx, const F* h0,
                       const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                       F* h, std::int64_t ldh, F* /*work*/) {
    const std::int64_t T = d.T, B = d.B, I = d.I, H = d.H;
    for (std::int64_t s = 0; s < T; ++s) {
        const std::int64_t t = reverse ? T - 1 - s : s;
        for (std::int64_t b = 0; b < B; ++b) {
            const F* xr = x + (t * B + b) * ldx;
            const F* hp = h_prev(d, reverse, h, ldh, h0, t, b);
            F* hr = h + (t * B + b) * ldh;
            for (std::int64_t j = 0; j < H; ++j) {
                // z = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh;  h_t = act(z)
                double z = b_ih ? double(b_ih[j]) + double(b_hh[j]) : 0.0;
                for (std::int64_t k = 0; k < I; ++k) z += double(W_ih[j * I + k]) * double(xr[k]);
                if (hp)
                    for (std::int64_t k = 0; k < H; ++k) z += double(W_hh[j * H + k]) * double(hp[k]);
                hr[j] = F(act == Activation::Tanh ? std::tanh(z) : (z < 0.0 ? 0.0 : z));
            }
        }
    }
}

template <typename F>
void rnn_backward_naive(const Dims& d, Activation act, bool reverse,
                        const F* x, std::int64_t ldx, const F* h0,
                        const F* W_ih, const F* W_hh,
                        const F* h, std::int64_t ldh,
                        const F* dh, std::int64_t lddh, const F* dh_n,
                        F* dz, std::int64_t lddz,
                        F* dx, std::int64_t lddx, bool accumulate_dx, F* dh0,
                        F* dW_ih, F* dW_hh, F* db_ih, F* db_hh,
                        F* /*work*/) {
    const std::int64_t T = d.T, B = d.B, I = d.I, H = d.H;
    // carry: dL/dh of the state the current step leaves behind; dh_n after the last step.
    std::vector<F> carry(B * H, F(0));
    if (dh_n) carry.assign(dh_n, dh_n + B * H);

    for (std::int64_t s = T - 1; s >= 0; --s) {
        const std::int64_t t = reverse ? T - 1 - s : s;
        for (std::int64_t b = 0; b < B; ++b) {
            const F* hr = h + (t * B + b) * ldh;
            const F* dhr = dh + (t * B + b) * lddh;
            F* dzr = dz + (t * B + b) * lddz;  // may be dhr: each element is read, then written
            // h_t = act(z)  ->  dz = (dh_t + carry) * act'(z), with act' read from h_t
            for (std::int64_t j = 0; j < H; ++j) {
                const double g = double(dhr[j]) + double(carry[b * H + j]);
                const double hv = hr[j];
                dzr[j] = F(act == Activation::Tanh ? g * (1.0 - hv * hv) : (hv > 0.0 ? g : 0.0));
            }
        }
        // z += h_prev W_hh^T  ->  dh_prev = dz W_hh, carried into the step before
        for (std::int64_t b = 0; b < B; ++b) {
            const F* dzr = dz + (t * B + b) * lddz;
            for (std::int64_t k = 0; k < H; ++k) {
                double sum = 0.0;
                for (std::int64_t j = 0; j < H; ++j) sum += double(dzr[j]) * double(W_hh[j * H + k]);
                carry[b * H + k] = F(sum);
            }
        }
    }
    for (std::int64_t i = 0; i < B * H; ++i) dh0[i] = carry[i];  // dh_n itself when T = 0

    // z = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh  ->  parameter gradients summed over t and b
    auto dz_at = [&](std::int64_t t, std::int64_t b, std::int64_t j) {
        return double(dz[(t * B + b) * lddz + j]);
    };
    for (std::int64_t j = 0; j < H; ++j) {
        for (std::int64_t k = 0; k < I; ++k) {
            double sum = dW_ih[j * I + k];
            for (std::int64_t t = 0; t < T; ++t)
                for (std::int64_t b = 0; b < B; ++b) sum += dz_at(t, b, j) * double(x[(t * B + b) * ldx + k]);
            dW_ih[j * I + k] = F(sum);
        }
        for (std::int64_t k = 0; k < H; ++k) {
            double sum = dW_hh[j * H + k];
            for (std::int64_t t = 0; t < T; ++t)
                for (std::int64_t b = 0; b < B; ++b) {
                    const F* hp = h_prev(d, reverse, h, ldh, h0, t, b);
                    if (hp) sum += dz_at(t, b, j) * double(hp[k]);
                }
            dW_hh[j * H + k] = F(sum);
        }
        if (db_ih) {
            double sum = 0.0;
            for (std::int64_t t = 0; t < T; ++t)
                for (std::int64_t b = 0; b < B; ++b) sum += dz_at(t, b, j);
            db_ih[j] = F(double(db_ih[j]) + sum);
            db_hh[j] = F(double(db_hh[j]) + sum);
        }
    }
    // z = x_t W_ih^T + ...  ->  dx_t = dz W_ih, written or added
    for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t b = 0; b < B; ++b) {
            F* dxr = dx + (t * B + b) * lddx;
            for (std::int64_t k = 0; k < I; ++k) {
                double sum = accumulate_dx ? double(dxr[k]) : 0.0;
                for (std::int64_t j = 0; j < H; ++j) sum += dz_at(t, b, j) * double(W_ih[j * I + k]);
                dxr[k] = F(sum);
            }
        }
}

#define RNNCORE_INSTANTIATE(F)                                                                  \
    template void rnn_forward_naive<F>(const Dims&, Activation, bool, const F*, std::int64_t,   \
                                       const F*, const F*, const F*, const F*, const F*, F*,    \
                                       std::int64_t, F*);                                       \
    template void rnn_backward_naive<F>(const Dims&, Activation, bool, const F*, std::int64_t,  \
                                        const F*, const F*, const F*, const F*, std::int64_t,   \
                                        const F*, std::int64_t, const F*, F*, std::int64_t, F*, \
                                        std::int64_t, bool, F*, F*, F*, F*, F*, F*);
RNNCORE_INSTANTIATE(float)
RNNCORE_INSTANTIATE(double)
#undef RNNCORE_INSTANTIATE

}  // namespace rnncore
