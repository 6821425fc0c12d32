// A naive reference of rnn_forward / rnn_backward: plain loops, no BLAS, std::tanh, sums in
// double. Same arguments, order and semantics as rnncore/rnn.h (strides, reverse, nullptr h0,
// biases and dh_n, lengths, accumulate_dx, accumulated parameter gradients), so the two can be
// swapped; `work` is accepted and ignored. Each sequence is run on its own, over its own steps. It is the oracle of the tests; it checks nothing and
// trusts its arguments.
#pragma once

#include <cstdint>

#include "rnncore/rnn.h"

namespace rnncore {

template <typename F>
void rnn_forward_naive(const Dims& d, Activation act, bool reverse,
                       const F* x, std::int64_t ldx, const F* h0,
                       const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                       F* h, std::int64_t ldh, const std::int64_t* lengths, F* work);

template <typename F>
void rnn_backward_naive(const Dims& d, Activation act, bool reverse,
                        const F* x, std::int64_t ldx, const F* h0,
                        const F* W_ih, const F* W_hh,
                        const F* h, std::int64_t ldh,
                        const F* dh, std::int64_t lddh, const F* dh_n,
                        F* dx, std::int64_t lddx, bool accumulate_dx, F* dh0,
                        F* dW_ih, F* dW_hh, F* db_ih, F* db_hh,
                        const std::int64_t* lengths, F* work);

}  // namespace rnncore
