// Forward and backward (BPTT) of one RNN layer in one direction; see rnncore/rnn.h.
#include "rnncore/rnn.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "rnncore/blas.h"
#include "rnncore/elementwise.h"
#include "rnncore/recurrent.h"
#include "rnncore/thread_pool.h"

namespace rnncore {
namespace {

using blas::Op;

// Throws std::invalid_argument(what); `what` is only built when the check fails (this runs on
// every call, streaming steps included).
#define REQUIRE(ok, what)                                     \
    do {                                                      \
        if (!(ok)) throw std::invalid_argument(what);         \
    } while (0)

void check_dims(const Dims& d, std::int64_t ldx, std::int64_t ldh) {
    REQUIRE(d.T >= 0 && d.B >= 0 && d.I >= 1 && d.H >= 1,
            "rnn: expected T >= 0, B >= 0, I >= 1, H >= 1, got T=" + std::to_string(d.T) +
                " B=" + std::to_string(d.B) + " I=" + std::to_string(d.I) + " H=" + std::to_string(d.H));
    REQUIRE(ldx >= d.I, "rnn: expected ldx >= I = " + std::to_string(d.I) + ", got " + std::to_string(ldx));
    REQUIRE(ldh >= d.H, "rnn: expected ldh >= H = " + std::to_string(d.H) + ", got " + std::to_string(ldh));
}

// Contiguous ranges of `rows` split `parts` ways, every boundary a multiple of `align`.
struct Split {
    std::int64_t rows, parts, align;
    std::int64_t begin(std::int64_t i) const {
        const std::int64_t blocks = (rows + align - 1) / align;
        return std::min(rows, (blocks * i / parts) * align);
    }
    std::int64_t end(std::int64_t i) const { return begin(i + 1); }
};

// Batch slices for the time loops: at most one per thread, each at least one micro-tile and
// enough work (flop) to be worth waking a thread for (~100 us).
template <typename F>
Split batch_slices(const Dims& d) {
    const std::int64_t MR = RecurrentKernels<F>::MR, tiles = (d.B + MR - 1) / MR;
    const std::int64_t flop = 2 * d.T * d.B * d.H * (d.I + d.H), per_slice = 8'000'000;
    const std::int64_t parts = std::min<std::int64_t>({get_num_threads(), tiles, flop / per_slice});
    return {d.B, std::max<std::int64_t>(1, parts), MR};
}

// Row chunks for the all-steps GEMMs of the backward: about one per 16 Mflop, at most 4. A
// function of the problem only (see rnn_backward).
std::int64_t backward_gemm_chunks(const Dims& d) {
    const std::int64_t flop = 2 * d.T * d.B * d.H * (2 * d.I + d.H);
    return std::max<std::int64_t>(1, std::min<std::int64_t>({4, flop / 16'000'000, d.T * d.B - d.B}));
}

}  // namespace

template <typename F>
std::int64_t rnn_forward_workspace_size(const Dims& d) {
    return packed_forward_size<F>(d.I, d.H);
}

template <typename F>
std::int64_t rnn_backward_workspace_size(const Dims& d) {
    return packed_backward_size<F>(d.H) + (backward_gemm_chunks(d) - 1) * d.H * (d.I + d.H) + d.H;
}

template <typename F>
void rnn_forward(const Dims& d, Activation act, bool reverse,
                 const F* x, std::int64_t ldx, const F* h0,
                 const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                 F* h, std::int64_t ldh, F* work) {
    check_dims(d, ldx, ldh);
    REQUIRE(x && W_ih && W_hh && h && work, "rnn_forward: x, W_ih, W_hh, h and work must not be null");
    REQUIRE((b_ih == nullptr) == (b_hh == nullptr), "rnn_forward: b_ih and b_hh must both be given or both be null");
    if (d.T == 0 || d.B == 0) return;
    const auto& k = recurrent<F>();
    k.pack_forward(d.I, d.H, W_ih, W_hh, b_ih, b_hh, work);
    const Split slices = batch_slices<F>(d);
    parallel_for(static_cast<int>(slices.parts), [&](int i) {
        const std::int64_t b0 = slices.begin(i), rows = slices.end(i) - b0;
        if (rows > 0)
            k.forward_loop(act, reverse, d.T, rows, d.I, d.H, x + b0 * ldx, ldx, d.B * ldx,
                           h0 ? h0 + b0 * d.H : nullptr, work, h + b0 * ldh, ldh, d.B * ldh);
    });
}

template <typename F>
void rnn_step(const Dims& d, Activation act, const F* x, std::int64_t ldx, const F* h,
              std::int64_t ldh, const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
              F* out, std::int64_t ldo) {
    check_dims(d, ldx, ldo);
    REQUIRE(d.T == 1, "rnn_step: expected T = 1, got " + std::to_string(d.T));
    REQUIRE(!h || ldh >= d.H, "rnn_step: expected ldh >= H");
    REQUIRE(x && W_ih && W_hh && out, "rnn_step: x, W_ih, W_hh and out must not be null");
    REQUIRE((b_ih == nullptr) == (b_hh == nullptr), "rnn_step: b_ih and b_hh must both be given or both be null");
    recurrent<F>().step(act, d.B, d.I, d.H, x, ldx, h, ldh, W_ih, W_hh, b_ih, b_hh, out, ldo);
}

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
    REQUIRE(lddh >= d.H && lddz >= d.H && lddx >= d.I,
            "rnn_backward: expected lddh >= H, lddz >= H, lddx >= I, got lddh=" + std::to_string(lddh) +
                " lddz=" + std::to_string(lddz) + " lddx=" + std::to_string(lddx));
    REQUIRE(x && W_ih && W_hh && h && dh && dz && dx && dh0 && dW_ih && dW_hh && work,
            "rnn_backward: only h0, dh_n and the bias gradients may be null");
    REQUIRE(static_cast<const F*>(dz) != dh || lddz == lddh, "rnn_backward: dz may alias dh only with the same row stride");
    REQUIRE((db_ih == nullptr) == (db_hh == nullptr), "rnn_backward: db_ih and db_hh must both be given or both be null");
    const std::int64_t T = d.T, B = d.B, H = d.H, I = d.I, rows = T * B;
    if (B == 0) return;  // nothing flows; dh0 and dx are empty
    if (T == 0) {        // no step ran: the final state is h0 itself
        for (std::int64_t i = 0; i < B * H; ++i) dh0[i] = dh_n ? dh_n[i] : F(0);
        return;
    }
    const auto& k = recurrent<F>();
    const auto& ew = elementwise<F>();
    // Our threads make the BLAS calls below, each of which must stay on its thread: undo any
    // thread count set on this OpenBLAS from outside (threadpoolctl, for one).
    if (blas::get_num_threads() != 1) blas::set_num_threads(1);
    k.pack_backward(H, W_hh, work);

    // The time loop, batch slices in parallel:
    //   h[t] = act(z[t]),  z[t] = x[t] W_ih^T + b + h_prev W_hh^T
    //   dz[t] = (dh[t] + dz[next] W_hh) * act'(h[t]);   dh0 = dz[first] W_hh
    const Split slices = batch_slices<F>(d);
    parallel_for(static_cast<int>(slices.parts), [&](int i) {
        const std::int64_t b0 = slices.begin(i), n = slices.end(i) - b0;
        if (n > 0)
            k.backward_loop(act, reverse, T, n, H, h + b0 * ldh, ldh, B * ldh, dh + b0 * lddh, lddh,
                            B * lddh, dh_n ? dh_n + b0 * H : nullptr, work, dz + b0 * lddz, lddz,
                            B * lddz, dh0 + b0 * H);
    });

    // Sums over all steps at once:
    //   dW_ih += dz^T x;  dW_hh += dz^T h_prev;  db_ih += sum dz;  db_hh += sum dz;  dx = dz W_ih
    // h_prev of the steps after the first is h shifted one step back (forward direction) or
    // ahead (reverse); the first step's h_prev is h0 (no term when h0 is zero).
    // They run as independent tasks over a fixed number of row chunks chosen from the problem
    // size alone, never from the thread count: the threads only decide who runs which task, so
    // the sums come out bit for bit the same on any number of threads. Chunk c > 0 of a weight
    // gradient goes to scratch, added in chunk order at the end.
    const std::int64_t first = reverse ? T - 1 : 0;
    const F* dz_rest = reverse ? dz : dz + B * lddz;
    const F* h_prev = reverse ? h + B * ldh : h;
    const std::int64_t chunks = backward_gemm_chunks(d);
    const Split xrows{rows, chunks, 1}, hrows{rows - B, chunks, 1}, cols{H, chunks, 1};
    F* partial_ih = work + packed_backward_size<F>(H);  // [chunks - 1, H, I]
    F* partial_hh = partial_ih + (chunks - 1) * H * I;  // [chunks - 1, H, H]
    F* bias_sum = partial_hh + (chunks - 1) * H * H;    // [H]
    const bool worth_threads = 2 * rows * H * (2 * I + H) >= 4'000'000;
    parallel_for(static_cast<int>(3 * chunks), [&](int task) {
        const std::int64_t c = task / 3;
        switch (task % 3) {
            case 0: {
                const std::int64_t r0 = xrows.begin(c), n = xrows.end(c) - r0;
                F* out = c == 0 ? dW_ih : partial_ih + (c - 1) * H * I;
                blas::gemm<F>(Op::T, Op::N, H, I, n, F(1), dz + r0 * lddz, lddz, x + r0 * ldx, ldx,
                              c == 0 ? F(1) : F(0), out, I);
                const std::int64_t j0 = cols.begin(c), nj = cols.end(c) - j0;
                if (db_ih && nj > 0) {  // sum once, add to both (as torch adds dz.sum(0) to .grad)
                    F* sum = bias_sum + j0;
                    for (std::int64_t j = 0; j < nj; ++j) sum[j] = F(0);
                    ew.add_column_sums(rows, nj, dz + j0, lddz, sum);
                    for (std::int64_t j = 0; j < nj; ++j) db_ih[j0 + j] += sum[j], db_hh[j0 + j] += sum[j];
                }
                break;
            }
            case 1: {
                const std::int64_t r0 = hrows.begin(c), n = hrows.end(c) - r0;
                F* out = c == 0 ? dW_hh : partial_hh + (c - 1) * H * H;
                blas::gemm<F>(Op::T, Op::N, H, H, n, F(1), dz_rest + r0 * lddz, lddz, h_prev + r0 * ldh,
                              ldh, c == 0 ? F(1) : F(0), out, H);
                if (c == 0 && h0)
                    blas::gemm<F>(Op::T, Op::N, H, H, B, F(1), dz + first * B * lddz, lddz, h0, H, F(1), dW_hh, H);
                break;
            }
            default: {
                const std::int64_t r0 = xrows.begin(c), n = xrows.end(c) - r0;
                blas::gemm<F>(Op::N, Op::N, n, I, H, F(1), dz + r0 * lddz, lddz, W_ih, I,
                              accumulate_dx ? F(1) : F(0), dx + r0 * lddx, lddx);
            }
        }
    }, worth_threads);
    for (std::int64_t c = 1; c < chunks; ++c) {
        for (std::int64_t i = 0; i < H * I; ++i) dW_ih[i] += partial_ih[(c - 1) * H * I + i];
        for (std::int64_t i = 0; i < H * H; ++i) dW_hh[i] += partial_hh[(c - 1) * H * H + i];
    }
}

#define RNNCORE_INSTANTIATE(F)                                                                          \
    template std::int64_t rnn_forward_workspace_size<F>(const Dims&);                                   \
    template std::int64_t rnn_backward_workspace_size<F>(const Dims&);                                  \
    template void rnn_step<F>(const Dims&, Activation, const F*, std::int64_t, const F*, std::int64_t, \
                              const F*, const F*, const F*, const F*, F*, std::int64_t);             \
    template void rnn_forward<F>(const Dims&, Activation, bool, const F*, std::int64_t, const F*,       \
                                 const F*, const F*, const F*, const F*, F*, std::int64_t, F*);         \
    template void rnn_backward<F>(const Dims&, Activation, bool, const F*, std::int64_t, const F*,      \
                                  const F*, const F*, const F*, std::int64_t, const F*, std::int64_t,   \
                                  const F*, F*, std::int64_t, F*, std::int64_t, bool, F*, F*, F*, F*,   \
                                  F*, F*);
RNNCORE_INSTANTIATE(float)
RNNCORE_INSTANTIATE(double)
#undef RNNCORE_INSTANTIATE

}  // namespace rnncore
