// The time loops of rnn_forward / rnn_backward for one slice of the batch, with the recurrent
// weights packed once per call into panels for a register-blocked micro-kernel. Compiled once per
// instruction set and chosen at load time, like the element-wise kernels.
//
// A slice is `rows` consecutive batch rows; its arrays are addressed from the slice's first row:
// step t's block starts at p + t * p_step (p_step = B * ld for a [T,B,.] array of row stride ld).
#pragma once

#include <cstdint>

#include "rnncore/rnn.h"

namespace rnncore {

// Columns per packed panel: two SIMD vectors of 32 bytes.
template <typename F>
constexpr std::int64_t panel_width() { return 64 / static_cast<std::int64_t>(sizeof(F)); }
template <typename F>
constexpr std::int64_t panel_count(std::int64_t H) { return (H + panel_width<F>() - 1) / panel_width<F>(); }

// Elements of the packed weights: forward [W_ih | W_hh]^T plus the summed bias; backward W_hh.
template <typename F>
constexpr std::int64_t packed_forward_size(std::int64_t I, std::int64_t H) {
    return panel_count<F>(H) * panel_width<F>() * (I + H + 1);
}
template <typename F>
constexpr std::int64_t packed_backward_size(std::int64_t H) {
    return panel_count<F>(H) * panel_width<F>() * H;
}

template <typename F>
struct RecurrentKernels {
    // Batch rows per full micro-tile. Slices must start at multiples of MR so every row lands
    // in the same kind of tile however the batch is split (results independent of threads).
    static constexpr int MR = 6;
    const char* isa;

    // packed: packed_forward_size(I, H). Biases both nullptr or both given.
    void (*pack_forward)(std::int64_t I, std::int64_t H, const F* W_ih, const F* W_hh,
                         const F* b_ih, const F* b_hh, F* packed);
    // packed: packed_backward_size(H).
    void (*pack_backward)(std::int64_t H, const F* W_hh, F* packed);

    // h[t] = act(x[t] W_ih^T + b + h_prev W_hh^T) for every step, in loop order.
    //   x: slice of [T,B,I] (row stride ldx, step stride x_step); h0: [rows,H] (stride H) or null;
    //   h: slice of [T,B,H] (row stride ldh, step stride h_step), written.
    void (*forward_loop)(Activation act, bool reverse, std::int64_t T, std::int64_t rows,
                         std::int64_t I, std::int64_t H, const F* x, std::int64_t ldx,
                         std::int64_t x_step, const F* h0, const F* packed, F* h,
                         std::int64_t ldh, std::int64_t h_step);

    // dz[t] = (dh[t] + dz[next] W_hh) * act'(h[t]) back through the loop, then dh0 = dz[first] W_hh.
    //   h, dh: slices of [T,B,H]; dh_n: [rows,H] (stride H) or null; dz: slice of [T,B,H],
    //   written (may alias dh with the same strides); dh0: [rows,H] (stride H), written.
    void (*backward_loop)(Activation act, bool reverse, std::int64_t T, std::int64_t rows,
                          std::int64_t H, const F* h, std::int64_t ldh, std::int64_t h_step,
                          const F* dh, std::int64_t lddh, std::int64_t dh_step, const F* dh_n,
                          const F* packed, F* dz, std::int64_t lddz, std::int64_t dz_step,
                          F* dh0);

    // One step without packing, for streaming: out[r] = act(x[r] W_ih^T + b + h[r] W_hh^T)
    // for `rows` rows (h nullptr: zero state), as dot products over the rows of W.
    void (*step)(Activation act, std::int64_t rows, std::int64_t I, std::int64_t H, const F* x,
                 std::int64_t ldx, const F* h, std::int64_t ldh, const F* W_ih, const F* W_hh,
                 const F* b_ih, const F* b_hh, F* out, std::int64_t ldo);
};

// The fastest set this CPU runs.
template <typename F>
const RecurrentKernels<F>& recurrent();

}  // namespace rnncore
