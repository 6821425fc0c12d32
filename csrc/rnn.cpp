// Forward and backward (BPTT) of one RNN layer in one direction; see rnncore/rnn.h.
#include "rnncore/rnn.h"

#include <string>
#include <stdexcept>

#include "rnncore/blas.h"
#include "rnncore/elementwise.h"

namespace rnncore {
namespace {

using blas::Op;

void require(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument(what);
}

void check_dims(const Dims& d, std::int64_t ldx, std::int64_t ldh) {
    require(d.T >= 0 && d.B >= 0 && d.I >= 1 && d.H >= 1,
            "rnn: expected T >= 0, B >= 0, I >= 1, H >= 1, got T=" + std::to_string(d.T) +
                " B=" + std::to_string(d.B) + " I=" + std::to_string(d.I) +
                " H=" + std::to_string(d.H));
    require(ldx >= d.I, "rnn: expected ldx >= I = " + std::to_string(d.I) + ", got " +
                            std::to_string(ldx));
    require(ldh >= d.H, "rnn: expected ldh >= H = " + std::to_string(d.H) + ", got " +
                            std::to_string(ldh));
}

// Step s of the loop visits time t; its predecessor in the recurrence is t - 1 (forward) or
// t + 1 (reverse).
struct TimeOrder {
    std::int64_t T;
    bool reverse;
    std::int64_t at(std::int64_t s) const { return reverse ? T - 1 - s : s; }
    std::int64_t prev(std::int64_t t) const { return reverse ? t + 1 : t - 1; }
};

}  // namespace

template <typename F>
void rnn_forward(const Dims& d, Activation act, bool reverse,
                 const F* x, std::int64_t ldx, const F* h0,
                 const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                 F* h, std::int64_t ldh) {
    check_dims(d, ldx, ldh);
    require((b_ih == nullptr) == (b_hh == nullptr), "rnn_forward: b_ih and b_hh must both be given or both be null");
    const std::int64_t B = d.B, H = d.H, rows = d.T * d.B;
    if (rows == 0) return;
    const auto& ew = elementwise<F>();
    const TimeOrder order{d.T, reverse};
    auto h_at = [&](std::int64_t t) { return h + t * B * ldh; };  // [B,H] block of step t

    // The input projection of all T steps at once: h[t] = x[t] W_ih^T + b_ih + b_hh.
    if (b_ih) ew.fill_rows(rows, H, b_ih, b_hh, h, ldh);
    blas::gemm<F>(Op::N, Op::T, rows, H, d.I, F(1), x, ldx, W_ih, d.I, b_ih ? F(1) : F(0), h, ldh);

    for (std::int64_t s = 0; s < d.T; ++s) {
        const std::int64_t t = order.at(s);
        // h[t] += h_{prev} W_hh^T, then the activation while the block is in cache.
        const F* h_prev = s == 0 ? h0 : h_at(order.prev(t));
        const std::int64_t ld_prev = s == 0 ? H : ldh;
        if (h_prev) blas::gemm<F>(Op::N, Op::T, B, H, H, F(1), h_prev, ld_prev, W_hh, H, F(1), h_at(t), ldh);
        ew.activate(act, B, H, h_at(t), ldh);
    }
}

std::int64_t rnn_backward_workspace_size(const Dims& d) { return d.B * d.H; }

template <typename F>
void rnn_backward(const Dims& d, Activation act, bool reverse,
                  const F* x, std::int64_t ldx, const F* h0,
                  const F* W_ih, const F* W_hh,
                  const F* h, std::int64_t ldh,
                  const F* dh, std::int64_t lddh, const F* dh_n,
                  F* dz, std::int64_t lddz,
                  F* dx, std::int64_t lddx, bool accumulate_dx, F* dh0,
                  F* dW_ih, F* dW_hh, F* db_ih, F* db_hh,
                  F* work) {
    check_dims(d, ldx, ldh);
    require(lddh >= d.H && lddz >= d.H && lddx >= d.I,
            "rnn_backward: expected lddh >= H, lddz >= H, lddx >= I, got lddh=" + std::to_string(lddh) +
                " lddz=" + std::to_string(lddz) + " lddx=" + std::to_string(lddx));
    require(static_cast<const F*>(dz) != dh || lddz == lddh,
            "rnn_backward: dz may alias dh only with the same row stride");
    require((db_ih == nullptr) == (db_hh == nullptr), "rnn_backward: db_ih and db_hh must both be given or both be null");
    const std::int64_t T = d.T, B = d.B, H = d.H, rows = T * B;
    if (B == 0) return;  // nothing flows; dh0 and dx are empty
    const auto& ew = elementwise<F>();
    const TimeOrder order{T, reverse};
    F* dnext = work;  // [B,H]: dL/dh_{t} arriving from the step after t (in the loop's order)

    // Backward time loop. Differentiates, for each step t (in reverse loop order):
    //   h[t] = act(z[t]),  z[t] = x[t] W_ih^T + b + h_prev W_hh^T
    const F* carry = dh_n;  // gradient into the state the step leaves behind
    for (std::int64_t s = T - 1; s >= 0; --s) {
        const std::int64_t t = order.at(s);
        F* dz_t = dz + t * B * lddz;
        // dz[t] = (dh[t] + carry) * act'(h[t])
        ew.activation_grad(act, B, H, dh + t * B * lddh, lddh, carry, h + t * B * ldh, ldh, dz_t, lddz);
        // carry = dz[t] W_hh: the gradient into h_prev (h0 at the first step)
        F* into = s == 0 ? dh0 : dnext;
        blas::gemm<F>(Op::N, Op::N, B, H, H, F(1), dz_t, lddz, W_hh, H, F(0), into, H);
        carry = dnext;
    }
    if (T == 0)  // no step ran: the final state is h0 itself
        for (std::int64_t i = 0; i < B * H; ++i) dh0[i] = dh_n ? dh_n[i] : F(0);

    // Everything below sums over all steps at once.
    // dW_hh += sum_t dz[t]^T h_prev(t): the steps after the first read their predecessor in h,
    // which for the forward direction is h shifted one step back, for the reverse one step ahead.
    if (T > 1) {
        const F* dz_rest = reverse ? dz : dz + B * lddz;
        const F* h_prev = reverse ? h + B * ldh : h;
        blas::gemm<F>(Op::T, Op::N, H, H, (T - 1) * B, F(1), dz_rest, lddz, h_prev, ldh, F(1), dW_hh, H);
    }
    if (h0 && T > 0)
        blas::gemm<F>(Op::T, Op::N, H, H, B, F(1), dz + order.at(0) * B * lddz, lddz, h0, H, F(1), dW_hh, H);
    // dW_ih += dz^T x;  db_ih += sum dz;  db_hh += sum dz;  dx = dz W_ih
    blas::gemm<F>(Op::T, Op::N, H, d.I, rows, F(1), dz, lddz, x, ldx, F(1), dW_ih, d.I);
    if (db_ih) {
        ew.add_column_sums(rows, H, dz, lddz, db_ih);
        ew.add_column_sums(rows, H, dz, lddz, db_hh);
    }
    blas::gemm<F>(Op::N, Op::N, rows, d.I, H, F(1), dz, lddz, W_ih, d.I, accumulate_dx ? F(1) : F(0), dx, lddx);
}

template void rnn_forward<float>(const Dims&, Activation, bool, const float*, std::int64_t, const float*,
                                 const float*, const float*, const float*, const float*, float*, std::int64_t);
template void rnn_forward<double>(const Dims&, Activation, bool, const double*, std::int64_t, const double*,
                                  const double*, const double*, const double*, const double*, double*, std::int64_t);
template void rnn_backward<float>(const Dims&, Activation, bool, const float*, std::int64_t, const float*,
                                  const float*, const float*, const float*, std::int64_t, const float*,
                                  std::int64_t, const float*, float*, std::int64_t, float*, std::int64_t, bool,
                                  float*, float*, float*, float*, float*, float*);
template void rnn_backward<double>(const Dims&, Activation, bool, const double*, std::int64_t, const double*,
                                   const double*, const double*, const double*, std::int64_t, const double*,
                                   std::int64_t, const double*, double*, std::int64_t, double*, std::int64_t, bool,
                                   double*, double*, double*, double*, double*, double*);

void set_num_threads(int n) { blas::set_num_threads(n); }
int get_num_threads() { return blas::get_num_threads(); }

}  // namespace rnncore
