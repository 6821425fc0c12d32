// The time loops of rnn_forward / rnn_backward for one slice of the batch, with the recurrent
// weights packed once per call into panels for a register-blocked micro-kernel. Compiled once per
// instruction set and chosen at load time, like the element-wise kernels.
//
// The loops walk the batch in a BatchOrder: sequences sorted by length, longest first, so the
// ones still running at loop step s are a prefix of positions; without lengths, batch order.
// Arrays are addressed from batch row 0: element (t, b, :) of a [T,B,.] array of row stride ld
// is at p + t * step + b * ld (step = B * ld).
#pragma once

#include <cstdint>

#include "rnncore/rnn.h"
#include "rnncore/thread_pool.h"

namespace rnncore {

// Columns per packed panel: two SIMD vectors in the baseline and AVX2 sets (64 bytes), four in
// the AVX-512 set (256 bytes) (RecurrentKernels::nr). Workspaces are sized for the widest panels, so a
// size asked before a change of kernel set (set_kernel_isa) still fits the new set's packing.
template <typename F>
constexpr std::int64_t max_panel_width() { return 256 / static_cast<std::int64_t>(sizeof(F)); }
template <typename F>
constexpr std::int64_t max_panel_count(std::int64_t H) { return (H + max_panel_width<F>() - 1) / max_panel_width<F>(); }

// Elements of the packed weights, at most: forward [W_ih | W_hh]^T plus the summed bias;
// backward [W_hh | W_ih].
template <typename F>
constexpr std::int64_t packed_forward_size(std::int64_t I, std::int64_t H) {
    return max_panel_count<F>(H) * max_panel_width<F>() * (I + H + 1);
}
template <typename F>
constexpr std::int64_t packed_backward_size(std::int64_t I, std::int64_t H) {
    return (max_panel_count<F>(H) + max_panel_count<F>(I)) * max_panel_width<F>() * H;
}

// Bytes of packed weights the time loops keep in cache while every batch tile of a step runs
// over them, the group in use and the next one being prefetched (PanelGroups in
// recurrent_impl.h): half the L2 cache the OS reports, 512 KiB where it reports none. set_weight_block_bytes(n) replaces it (n = 0: back to that default); the
// results do not depend on it, which the C++ test checks with small budgets.
std::int64_t weight_block_bytes();
void set_weight_block_bytes(std::int64_t bytes);

// The kernels' order of the batch rows. Loop step s of the sequence at position j is time
// t = s (forward) or steps(j) - 1 - s (reverse): the reverse direction starts at each sequence's
// own last step.
struct BatchOrder {
    const std::int64_t* rows = nullptr;   // [B] batch row at each position; nullptr: row j = j
    const std::int64_t* steps = nullptr;  // [B] length of each position's sequence, non-increasing;
                                          // nullptr: every sequence runs all T steps
    std::int64_t row(std::int64_t j) const { return rows ? rows[j] : j; }
    std::int64_t length(std::int64_t j, std::int64_t T) const { return steps ? steps[j] : T; }
    // End of the positions in [begin, end) still running at loop step s.
    std::int64_t running_end(std::int64_t begin, std::int64_t end, std::int64_t s, std::int64_t T) const {
        if (!steps) return s < T ? end : begin;
        while (end > begin && steps[end - 1] <= s) --end;
        return end;
    }
};

// With lengths, the backward loop also gathers the operands of the weight gradients' GEMMs
// into rows that line up with dz's, while it walks the steps: x of (step s, position j) to
// x_rows[s] + j * I, and the previous state h_prev (the h it loads for act' of step s - 1) to
// h_rows[s] + j * H for s > 0. x: [T,B,I] addressed like h (row stride ldx, step stride x_step).
template <typename F>
struct GatherRows {
    const F* x;
    std::int64_t ldx, x_step, I;
    F* const* x_rows;
    F* const* h_rows;
};

template <typename F>
struct RecurrentKernels {
    const char* isa;
    // Batch rows per full micro-tile. Slices must start at multiples of mr so every row lands
    // in the same kind of tile however the batch is split (results independent of threads).
    std::int64_t mr;
    // Columns per packed panel (two SIMD vectors); column blocks shared by threads start at
    // whole panels.
    std::int64_t nr;
    std::int64_t panels(std::int64_t H) const { return (H + nr - 1) / nr; }

    // packed: packed_forward_size(I, H). Biases both nullptr or both given.
    void (*pack_forward)(std::int64_t I, std::int64_t H, const F* W_ih, const F* W_hh,
                         const F* b_ih, const F* b_hh, F* packed);
    // packed: packed_backward_size(I, H); W_ih may be null when backward_loop gets no dx, and
    // then packed_backward_size(0, H) is enough.
    void (*pack_backward)(std::int64_t I, std::int64_t H, const F* W_ih, const F* W_hh, F* packed);

    // h[t] = act(x[t] W_ih^T + b + h_prev W_hh^T) for the batch rows at positions
    // [begin, end) of `order`, every step of each sequence in loop order.
    //   x: [T,B,I] (row stride ldx, step stride x_step); h0: [B,H] (stride H) or null;
    //   h: [T,B,H] (row stride ldh, step stride h_step), written at the sequences' steps (rows
    //   past a sequence's end are left alone: see zero_padding).
    //   blocks: nullptr, or the loop's steps in blocks of columns shared with other threads
    //   (StepBlocks over T steps and the panels(H) panels).
    void (*forward_loop)(Activation act, bool reverse, std::int64_t T, const BatchOrder& order,
                         std::int64_t begin, std::int64_t end, std::int64_t I, std::int64_t H,
                         const F* x, std::int64_t ldx, std::int64_t x_step, const F* h0,
                         const F* packed, F* h, std::int64_t ldh, std::int64_t h_step,
                         StepBlocks* blocks);

    // Back through loop steps s = s_hi-1 .. s_lo for the rows at positions [begin, end):
    //   dz(s) = (dh[t] + dz(s+1) W_hh) * act'(h[t])   (dh_n instead of dz(s+1) W_hh at a
    //   sequence's last step), dx[t] (+)= dz(s) W_ih (unless dx is null), then dh0 = dz(0) W_hh
    //   when s_lo == 0.
    //   h, dh: [T,B,H]; dh_n: [B,H] (stride H) or null; dh0: [B,H] (stride H), written.
    //   dx: [T,B,I] (row stride lddx, step stride dx_step), written at the sequences' steps, or
    //   added to when accumulate_dx; or null (the caller makes dx).
    //   dz: per loop step s, the rows of dz(s): position j's row at dz[s] + j * H. The pass
    //   reads dz(s_hi-1) of the sequences that continue past s_hi-1 (written by the pass over
    //   the later steps), writes dz(s) for s in [s_lo, s_hi) and, when s_lo > 0, dz(s_lo - 1).
    //   gather: nullptr, or rows to gather for the steps [s_lo, s_hi) (see GatherRows).
    //   blocks: nullptr, or the steps [s_lo, s_hi) (the last first) in blocks of dz's columns
    //   shared with other threads (StepBlocks over s_hi - s_lo + 1 steps, the first for the
    //   sequences that end at s_hi - 1, and panels(H) panels); only without dx and gather.
    void (*backward_loop)(Activation act, bool reverse, std::int64_t T, const BatchOrder& order,
                          std::int64_t begin, std::int64_t end, std::int64_t H,
                          const F* h, std::int64_t ldh, std::int64_t h_step,
                          const F* dh, std::int64_t lddh, std::int64_t dh_step, const F* dh_n,
                          const F* packed, F* const* dz, std::int64_t s_lo, std::int64_t s_hi,
                          F* dh0, std::int64_t I, F* dx, std::int64_t lddx, std::int64_t dx_step,
                          bool accumulate_dx, const GatherRows<F>* gather, StepBlocks* blocks);

    // One step without packing, for streaming: out[r] = act(x[r] W_ih^T + b + h[r] W_hh^T)
    // for `rows` rows (h nullptr: zero state), as dot products over the rows of W.
    void (*step)(Activation act, std::int64_t rows, std::int64_t I, std::int64_t H, const F* x,
                 std::int64_t ldx, const F* h, std::int64_t ldh, const F* W_ih, const F* W_hh,
                 const F* b_ih, const F* b_hh, F* out, std::int64_t ldo);

    // Zeros at the padded steps (t >= length) of the positions [begin, end) in p: [T,B,width]
    // (row stride ld, step stride step). Nothing without lengths.
    void (*zero_padding)(std::int64_t T, const BatchOrder& order, std::int64_t begin,
                         std::int64_t end, std::int64_t width, F* p, std::int64_t ld,
                         std::int64_t step);
    // The weight gradients' GEMM on the same micro-tiles (gemm_tn_impl.h): C[M,N] += A^T B,
    // A [K,M] (row stride lda), B [K,N] (row stride ldb), C [M,N] (row stride ldc). Each
    // output's sum runs over k in order.
    void (*gemm_tn)(std::int64_t M, std::int64_t N, std::int64_t K, const F* A, std::int64_t lda,
                    const F* B, std::int64_t ldb, F* C, std::int64_t ldc);
    // The head's GEMMs on the forward tiles (gemm_rows_impl.h): C[M,N] = bias + A op(B), A [M,K]
    // (row stride lda), op(B) [K,N] = B [K,N] or, b_transposed, B [N,K] transposed (row stride
    // ldb), bias [N] or null (zero), C [M,N] (row stride ldc). The same bits on any number of
    // threads.
    void (*gemm_rows)(std::int64_t M, std::int64_t N, std::int64_t K, const F* A, std::int64_t lda,
                      const F* B, std::int64_t ldb, bool b_transposed, const F* bias, F* C,
                      std::int64_t ldc);
};

// The kernels of the set in use (dispatch.cpp).
template <typename F>
const RecurrentKernels<F>& recurrent();

}  // namespace rnncore
