// The naive reference; see reference.h. Every sum is a plain loop in double.
#include "reference.h"

#include <cmath>
#include <vector>

namespace rnncore {

template <typename F>
void rnn_forward_naive(const Dims& d, Activation act, bool reverse,
                       const F* x, std::int64_t ldx, const F* h0,
                       const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                       F* h, std::int64_t ldh, const std::int64_t* lengths, F* /*work*/) {
    const std::int64_t T = d.T, B = d.B, I = d.I, H = d.H;
    for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t L = lengths ? lengths[b] : T;
        for (std::int64_t t = L; t < T; ++t)  // padded steps are zero
            for (std::int64_t j = 0; j < H; ++j) h[(t * B + b) * ldh + j] = F(0);
        const F* hp = h0 ? h0 + b * H : nullptr;  // the state step s starts from
        for (std::int64_t s = 0; s < L; ++s) {
            const std::int64_t t = reverse ? L - 1 - s : s;
            const F* xr = x + (t * B + b) * ldx;
            F* hr = h + (t * B + b) * ldh;
            for (std::int64_t j = 0; j < H; ++j) {
                // z = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh;  h_t = act(z)
                double z = b_ih ? double(b_ih[j]) + double(b_hh[j]) : 0.0;
                for (std::int64_t k = 0; k < I; ++k) z += double(W_ih[j * I + k]) * double(xr[k]);
                if (hp)
                    for (std::int64_t k = 0; k < H; ++k) z += double(W_hh[j * H + k]) * double(hp[k]);
                hr[j] = F(act == Activation::Tanh ? std::tanh(z) : (z < 0.0 ? 0.0 : z));
            }
            hp = hr;
        }
    }
}

template <typename F>
void rnn_backward_naive(const Dims& d, Activation act, bool reverse,
                        const F* x, std::int64_t ldx, const F* h0,
                        const F* W_ih, const F* W_hh,
                        const F* h, std::int64_t ldh,
                        const F* dh, std::int64_t lddh, const F* dh_n,
                        F* dx, std::int64_t lddx, bool accumulate_dx, F* dh0,
                        F* dW_ih, F* dW_hh, F* db_ih, F* db_hh,
                        const std::int64_t* lengths, F* /*work*/) {
    const std::int64_t T = d.T, B = d.B, I = d.I, H = d.H;
    // Sums in double, added to the accumulated gradients at the end.
    std::vector<double> gW_ih(H * I, 0.0), gW_hh(H * H, 0.0), gb(H, 0.0), dz(H), carry(H);
    for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t L = lengths ? lengths[b] : T;
        for (std::int64_t t = L; t < T; ++t)  // padded inputs get no gradient
            for (std::int64_t k = 0; k < I; ++k)
                if (!accumulate_dx) dx[(t * B + b) * lddx + k] = F(0);
        // carry: dL/dh of the state the current step leaves behind; dh_n after the last step.
        for (std::int64_t j = 0; j < H; ++j) carry[j] = dh_n ? double(dh_n[b * H + j]) : 0.0;
        for (std::int64_t s = L - 1; s >= 0; --s) {
            const std::int64_t t = reverse ? L - 1 - s : s;
            const F* hr = h + (t * B + b) * ldh;
            const F* dhr = dh + (t * B + b) * lddh;
            const F* xr = x + (t * B + b) * ldx;
            const std::int64_t tp = reverse ? t + 1 : t - 1;  // the previous step, if s > 0
            const F* hp = s > 0 ? h + (tp * B + b) * ldh : (h0 ? h0 + b * H : nullptr);
            // h_t = act(z)  ->  dz = (dh_t + carry) * act'(z), with act' read from h_t
            for (std::int64_t j = 0; j < H; ++j) {
                const double g = double(dhr[j]) + carry[j], hv = hr[j];
                dz[j] = double(F(act == Activation::Tanh ? g * (1.0 - hv * hv) : (hv > 0.0 ? g : 0.0)));
            }
            // z = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh  ->  dW_ih, dW_hh, db, dx_t
            for (std::int64_t j = 0; j < H; ++j) {
                gb[j] += dz[j];
                for (std::int64_t k = 0; k < I; ++k) gW_ih[j * I + k] += dz[j] * double(xr[k]);
                if (hp)
                    for (std::int64_t k = 0; k < H; ++k) gW_hh[j * H + k] += dz[j] * double(hp[k]);
            }
            F* dxr = dx + (t * B + b) * lddx;
            for (std::int64_t k = 0; k < I; ++k) {
                double sum = accumulate_dx ? double(dxr[k]) : 0.0;
                for (std::int64_t j = 0; j < H; ++j) sum += dz[j] * double(W_ih[j * I + k]);
                dxr[k] = F(sum);
            }
            // z += h_prev W_hh^T  ->  dh_prev = dz W_hh, carried into the step before
            for (std::int64_t k = 0; k < H; ++k) {
                double sum = 0.0;
                for (std::int64_t j = 0; j < H; ++j) sum += dz[j] * double(W_hh[j * H + k]);
                carry[k] = double(F(sum));
            }
        }
        for (std::int64_t j = 0; j < H; ++j) dh0[b * H + j] = F(carry[j]);  // dh_n itself when T = 0
    }
    for (std::int64_t i = 0; i < H * I; ++i) dW_ih[i] = F(double(dW_ih[i]) + gW_ih[i]);
    for (std::int64_t i = 0; i < H * H; ++i) dW_hh[i] = F(double(dW_hh[i]) + gW_hh[i]);
    if (db_ih)
        for (std::int64_t j = 0; j < H; ++j) {
            db_ih[j] = F(double(db_ih[j]) + gb[j]);
            db_hh[j] = F(double(db_hh[j]) + gb[j]);
        }
}

#define RNNCORE_INSTANTIATE(F)                                                                  \
    template void rnn_forward_naive<F>(const Dims&, Activation, bool, const F*, std::int64_t,   \
                                       const F*, const F*, const F*, const F*, const F*, F*,    \
                                       std::int64_t, const std::int64_t*, F*);                  \
    template void rnn_backward_naive<F>(const Dims&, Activation, bool, const F*, std::int64_t,  \
                                        const F*, const F*, const F*, const F*, std::int64_t,   \
                                        const F*, std::int64_t, const F*, F*, std::int64_t,     \
                                        bool, F*, F*, F*, F*, F*, const std::int64_t*, F*);
RNNCORE_INSTANTIATE(float)
RNNCORE_INSTANTIATE(double)
#undef RNNCORE_INSTANTIATE

}  // namespace rnncore
