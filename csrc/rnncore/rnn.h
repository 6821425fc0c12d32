// rnncore: the Elman RNN of torch.nn.RNN, one layer and one direction per call.
//
//   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh | relu
//
// Shape letters: T steps, B batch, I input features, H hidden units. Every array is row-major
// (last index fastest). A [T,B,X] array with row stride ld holds element (t, b, j) at
// p[(t*B + b)*ld + j], ld >= X: a direction of a bidirectional layer reads and writes its H
// columns inside the layer's [T,B,2H] output this way.
//
// The reverse direction runs the same recurrence from t = T-1 down to 0 over the same buffers
// (no reversed copy), so its "previous" state for step t is h_{t+1}.
//
// Variable lengths: `lengths` is [B] (1 <= lengths[b] <= T) or nullptr (every sequence runs T
// steps). Sequence b then runs steps t < lengths[b] only: the reverse direction starts at its
// own last step lengths[b]-1, states at padded steps are zero, gradients arriving there are
// ignored, and the gradient into padded inputs is zero (torch's packed sequences). Only the
// sequences still running take part in a step, so the work follows sum(lengths), not T*B.
//
// Errors: every function checks its sizes and pointers and throws std::invalid_argument naming
// the argument, what was expected and what was got. Nothing is asserted or printed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rnncore {

enum class Activation { Tanh, Relu };

struct Dims {
    std::int64_t T = 0;  // steps
    std::int64_t B = 0;  // batch
    std::int64_t I = 0;  // input features
    std::int64_t H = 0;  // hidden units
};

// Forward over all T steps.
//   x:    [T,B,I] row stride ldx; the layer input.
//   h0:   [B,H] contiguous, or nullptr for a zero initial state.
//   W_ih: [H,I]; W_hh: [H,H]; b_ih, b_hh: [H] each, or both nullptr (no bias).
//   h:    [T,B,H] row stride ldh; written with every h_t. It is also all the state the backward
//         needs (act'(z) is recovered from h), so nothing else is stored.
//   lengths: [B] or nullptr (see above). Rows of h past a sequence's end are written with zeros.
//   work: rnn_forward_workspace_size<F>(d) elements of scratch (the packed weights); fastest
//   when it starts on a 64-byte cache line.
// h must not overlap x, h0 or the weights. Each step computes x_t W_ih^T and h_{t-1} W_hh^T in
// one pass of a micro-kernel over [W_ih | W_hh] packed once per call, then the activation while
// the step's block is in cache. Batch slices run on get_num_threads() threads.
template <typename F>
void rnn_forward(const Dims& d, Activation act, bool reverse,
                 const F* x, std::int64_t ldx, const F* h0,
                 const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                 F* h, std::int64_t ldh, const std::int64_t* lengths, F* work);

// One step for streaming, without the per-call packing of rnn_forward:
//   x: [B,I] row stride ldx; h: [B,H] row stride ldh, or nullptr (zero state);
//   out: [B,H] row stride ldo, written with act(x W_ih^T + b_ih + b_hh + h W_hh^T); it must not
//   overlap x or h. Equal to rnn_forward with T = 1 to rounding (the sums run in another order).
template <typename F>
void rnn_step(const Dims& d, Activation act, const F* x, std::int64_t ldx, const F* h,
              std::int64_t ldh, const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
              F* out, std::int64_t ldo);

// Scratch sizes, in elements of F.
template <typename F>
std::int64_t rnn_forward_workspace_size(const Dims& d);
template <typename F>
std::int64_t rnn_backward_workspace_size(const Dims& d, bool with_lengths);

// Backward (BPTT) through one rnn_forward call with the same d, act, reverse, x, h0, weights,
// lengths and h.
//   dh:   [T,B,H] row stride lddh; gradient of the loss w.r.t. every h_t from above (the
//         layer's output gradient). Read only.
//   dh_n: [B,H] contiguous gradient w.r.t. the final state, or nullptr (zero).
//   dx:   [T,B,I] row stride lddx; written, or accumulated when accumulate_dx (the second
//         direction of a bidirectional layer adds its share); nullptr: not computed (the
//         first layer's input gradient, when nobody reads it).
//   dh0:  [B,H] contiguous; written (the gradient w.r.t. h0, also when h0 was nullptr).
//   dW_ih [H,I], dW_hh [H,H], db_ih [H], db_hh [H]: accumulated (like torch's .grad);
//         db_* are nullptr when the layer has no bias.
//   work: rnn_backward_workspace_size<F>(d, lengths != nullptr) elements of scratch (fastest on a
//   64-byte cache line, as the forward's).
// The loop runs back through the steps in chunks of about 2048 rows of dL/dz (z the
// pre-activation), batch slices on get_num_threads() threads; each step's micro-tiles multiply
// dL/dz by [W_hh | W_ih] packed once per call, for the previous step's dL/dz and for dx. After
// each chunk the weight and bias gradients of its steps are GEMMs over its rows, run as a fixed
// set of parallel tasks.
// Scratch stays O(max(B, 2048) * (I + H)) whatever T, and results do not depend on the thread
// count.
template <typename F>
void rnn_backward(const Dims& d, Activation act, bool reverse,
                  const F* x, std::int64_t ldx, const F* h0,
                  const F* W_ih, const F* W_hh,
                  const F* h, std::int64_t ldh,
                  const F* dh, std::int64_t lddh, const F* dh_n,
                  F* dx, std::int64_t lddx, bool accumulate_dx, F* dh0,
                  F* dW_ih, F* dW_hh, F* db_ih, F* db_hh,
                  const std::int64_t* lengths, F* work);

}  // namespace rnncore
