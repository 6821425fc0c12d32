// The MLP head's linear layers over all rows of a batch at once (RNNModel's head).
//
// Shape letters: N rows (all T*B steps), I the layer's input width, O its output width; row
// major, rows contiguous (row stride = width).
//
//   a:  [N, I] the layer's input (the previous layer's post-activation output); read
//   w:  [O, I] weight; read
//   b:  [O] bias; read
//   z:  [N, O] output; written: act(a w^T + b), the activation applied in place
//   dz: [N, O] gradient w.r.t. a w^T + b (before the activation of z); read
//   da: [N, I] gradient w.r.t. a; written (then times act_in'(a) when act_in is not None), or
//       null to skip it (the first layer, when no input gradient is wanted)
//   dw: [O, I] accumulated: dw += dz^T a
//   db: [O] accumulated: db += sum over rows of dz
#pragma once

#include <cstdint>

namespace rnncore {

enum class HeadActivation { None, Relu, Tanh, Sigmoid };

template <typename F>
void linear_forward(std::int64_t N, std::int64_t I, std::int64_t O, HeadActivation act,
                    const F* a, const F* w, const F* b, F* z);

// act_in: the activation that produced a (None for the head's input), whose derivative is
// written in terms of its output a: relu (a > 0), tanh 1 - a*a, sigmoid a*(1 - a).
template <typename F>
void linear_backward(std::int64_t N, std::int64_t I, std::int64_t O, HeadActivation act_in,
                     const F* a, const F* w, const F* dz, F* da, F* dw, F* db);

}  // namespace rnncore
