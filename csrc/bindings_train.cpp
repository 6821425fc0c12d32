// pybind11 bindings of the training step's other kernels: the head's linear layers
// (rnncore/linear.h) and the fused optimizer updates (rnncore/optim.h). Each checks its arrays
// (one dtype, the shapes, outputs disjoint from inputs) and calls the core without the GIL.
// Nothing is converted or allocated.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bindings_checks.h"
#include "rnncore/linear.h"
#include "rnncore/losses.h"
#include "rnncore/optim.h"

namespace rnncore::bindings {
namespace {

using Array = py::array;

py::arg arg(const char* name) { return py::arg(name).noconvert(); }

void sgd_step(const Array& p, const Array& g, const std::optional<Array>& buf, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov, bool first) {
    with_dtype_of(p, [&](auto zero) {
        using F = decltype(zero);
        const std::int64_t n = p.size();
        const auto vp = view<F>(p, "p", {n}, true);
        const auto vg = view<F>(g, "g", {n}, false);
        const auto vb = optional_view<F>(buf, "buf", {n}, true);
        require_disjoint<F>({{&vp, "p"}, {&vb, "buf"}}, {{&vg, "g"}});
        const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov};
        py::gil_scoped_release release;
        rnncore::sgd_step<F>(n, h, first, vp.data, vg.data, vb.data);
    });
}

void adam_step(const Array& p, const Array& g, const Array& m, const Array& v, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled,
               std::int64_t step) {
    with_dtype_of(p, [&](auto zero) {
        using F = decltype(zero);
        const std::int64_t n = p.size();
        const auto vp = view<F>(p, "p", {n}, true);
        const auto vg = view<F>(g, "g", {n}, false);
        const auto vm = view<F>(m, "m", {n}, true);
        const auto vv = view<F>(v, "v", {n}, true);
        require_disjoint<F>({{&vp, "p"}, {&vm, "m"}, {&vv, "v"}}, {{&vg, "g"}});
        const AdamHyper h{lr, beta1, beta2, eps, weight_decay, decoupled};
        py::gil_scoped_release release;
        rnncore::adam_step<F>(n, h, step, vp.data, vg.data, vm.data, vv.data);
    });
}

double sum_squares(const Array& g) {
    double s = 0;
    with_dtype_of(g, [&](auto zero) {
        using F = decltype(zero);
        const auto vg = view<F>(g, "g", {std::int64_t(g.size())}, false);
        py::gil_scoped_release release;
        s = rnncore::sum_squares<F>(g.size(), vg.data);
    });
    return s;
}

void scale(const Array& g, double c) {
    with_dtype_of(g, [&](auto zero) {
        using F = decltype(zero);
        const auto vg = view<F>(g, "g", {std::int64_t(g.size())}, true);
        py::gil_scoped_release release;
        rnncore::scale<F>(g.size(), F(c), vg.data);
    });
}

HeadActivation head_activation(const std::string& name) {
    if (name == "none") return HeadActivation::None;
    if (name == "relu") return HeadActivation::Relu;
    if (name == "tanh") return HeadActivation::Tanh;
    if (name == "sigmoid") return HeadActivation::Sigmoid;
    throw std::invalid_argument("activation: expected 'none', 'relu', 'tanh' or 'sigmoid', got '" +
                                name + "'");
}

// The operands both passes of a linear layer read: a (N, I) and w (O, I), checked.
template <typename F>
struct LinearOperands {
    std::int64_t N, I, O;
    View<F> a, w;
    LinearOperands(const Array& a_in, const Array& w_in)
        : N(check_2d(a_in, "a", "(N, I)").shape(0)), I(a_in.shape(1)),
          O(check_2d(w_in, "w", "(O, I)").shape(0)),
          a(view<F>(a_in, "a", {N, I}, false)), w(view<F>(w_in, "w", {O, I}, false)) {}
    static const Array& check_2d(const Array& x, const char* name, const char* shape) {
        RNNCORE_REQUIRE(x.ndim() == 2, std::string(name) + ": expected a 2-D array " + shape +
                                           ", got shape " + shape_str(x));
        return x;
    }
};

void linear_forward(const Array& a, const Array& w, const Array& b, const Array& z,
                    const std::string& activation) {
    with_dtype_of(a, [&](auto zero) {
        using F = decltype(zero);
        const LinearOperands<F> in(a, w);
        const std::int64_t N = in.N, I = in.I, O = in.O;
        const auto &va = in.a, &vw = in.w;
        const auto vb = view<F>(b, "b", {O}, false);
        const auto vz = view<F>(z, "z", {N, O}, true);
        RNNCORE_REQUIRE(va.ld == I && vw.ld == I && vz.ld == O, "a, w, z: expected contiguous rows");
        require_disjoint<F>({{&vz, "z"}}, {{&va, "a"}, {&vw, "w"}, {&vb, "b"}});
        const HeadActivation act = head_activation(activation);
        py::gil_scoped_release release;
        rnncore::linear_forward<F>(N, I, O, act, va.data, vw.data, vb.data, vz.data);
    });
}

void linear_backward(const Array& a, const Array& w, const Array& dz,
                     const std::optional<Array>& da, const Array& dw, const Array& db,
                     const std::string& activation_in) {
    with_dtype_of(a, [&](auto zero) {
        using F = decltype(zero);
        const LinearOperands<F> in(a, w);
        const std::int64_t N = in.N, I = in.I, O = in.O;
        const auto &va = in.a, &vw = in.w;
        const auto vdz = view<F>(dz, "dz", {N, O}, false);
        const auto vda = optional_view<F>(da, "da", {N, I}, true);
        const auto vdw = view<F>(dw, "dw", {O, I}, true);
        const auto vdb = view<F>(db, "db", {O}, true);
        RNNCORE_REQUIRE(va.ld == I && vw.ld == I && vdz.ld == O && (!vda || vda.ld == I) &&
                            vdw.ld == I,
                        "a, w, dz, da, dw: expected contiguous rows");
        require_disjoint<F>({{&vda, "da"}, {&vdw, "dw"}, {&vdb, "db"}},
                            {{&va, "a"}, {&vw, "w"}, {&vdz, "dz"}});
        const HeadActivation act = head_activation(activation_in);
        py::gil_scoped_release release;
        rnncore::linear_backward<F>(N, I, O, act, va.data, vw.data, vdz.data, vda.data, vdw.data,
                                    vdb.data);
    });
}

double cross_entropy(const Array& logits, const Array& labels, double scale, const Array& grad) {
    double loss = 0;
    with_dtype_of(logits, [&](auto zero) {
        using F = decltype(zero);
        RNNCORE_REQUIRE(logits.ndim() == 2,
                        "logits: expected a 2-D array (N, C), got shape " + shape_str(logits));
        const std::int64_t N = logits.shape(0), C = logits.shape(1);
        const auto vx = view<F>(logits, "logits", {N, C}, false);
        const auto vg = view<F>(grad, "grad", {N, C}, true);
        RNNCORE_REQUIRE(vx.ld == C && vg.ld == C, "logits, grad: expected contiguous rows");
        require_disjoint<F>({{&vg, "grad"}}, {{&vx, "logits"}});
        RNNCORE_REQUIRE(is_dtype<std::int64_t>(labels.dtype()),
                        "labels: expected dtype int64, got " + dtype_str(labels.dtype()));
        RNNCORE_REQUIRE(labels.ndim() == 1 && labels.shape(0) == N,
                        "labels: expected shape (" + std::to_string(N) + ",), got " +
                            shape_str(labels));
        RNNCORE_REQUIRE(N <= 1 || labels.strides(0) == py::ssize_t(sizeof(std::int64_t)),
                        "labels: expected a contiguous array");
        RNNCORE_REQUIRE(is_aligned(labels), "labels: expected an aligned array");
        const auto* lab = static_cast<const std::int64_t*>(labels.data());
        py::gil_scoped_release release;
        loss = rnncore::softmax_cross_entropy<F>(N, C, vx.data, lab, scale, vg.data);
    });
    return loss;
}

}  // namespace

void def_train(py::module_& m) {
    m.def("cross_entropy", &cross_entropy, arg("logits"), arg("labels"), py::arg("scale"),
          arg("grad"),
          "Softmax cross-entropy of logits (N,C) at int64 labels (N,), times scale, returned;\n"
          "grad (N,C) written: scale * (softmax(logits) - one_hot(labels)).");
    m.def("linear_forward", &linear_forward, arg("a"), arg("w"), arg("b"), arg("z"),
          py::arg("activation"),
          "z = act(a w^T + b): a (N,I), w (O,I), b (O,), z (N,O) written; act 'none', 'relu',\n"
          "'tanh' or 'sigmoid'.");
    m.def("linear_backward", &linear_backward, arg("a"), arg("w"), arg("dz"),
          py::arg("da").noconvert().none(true), arg("dw"), arg("db"), py::arg("activation_in"),
          "For z = a w^T + b: dw += dz^T a, db += column sums of dz, da = dz w (None: skipped)\n"
          "times act_in'(a), the derivative of the activation that produced a.");
    m.def("sgd_step", &sgd_step, arg("p"), arg("g"), py::arg("buf").noconvert().none(true),
          py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
          py::arg("nesterov"), py::arg("first"),
          "torch.optim.SGD's update of the flat 1-D p from g, in place; buf (the momentum\n"
          "buffer, None without momentum) is set from g when first, else updated.");
    m.def("adam_step", &adam_step, arg("p"), arg("g"), arg("m"), arg("v"), py::arg("lr"),
          py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
          py::arg("decoupled"), py::arg("step"),
          "torch.optim.Adam's (decoupled: AdamW's) update at step `step` (>= 1) of the flat 1-D\n"
          "p from g, updating the moments m and v in place.");
    m.def("sum_squares", &sum_squares, arg("g"), "Sum of g's squares in double (1-D g).");
    m.def("scale", &scale, arg("g"), py::arg("c"), "g *= c in place (1-D g).");
}

}  // namespace rnncore::bindings
