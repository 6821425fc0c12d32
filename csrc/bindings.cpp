// pybind11 module rnncore._core: checks the numpy arrays it is given (bindings_checks.h),
// allocates the scratch, releases the GIL and calls the C++ core (rnncore/rnn.h). It computes
// nothing itself. The streaming StepPlan is in bindings_step.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "bindings_checks.h"
#include "rnncore/blas.h"
#include "rnncore/elementwise.h"
#include "rnncore/isa.h"
#include "rnncore/rnn.h"
#include "rnncore/thread_pool.h"

namespace rnncore::bindings {

void def_step_plan(py::module_& m);  // bindings_step.cpp
void def_train(py::module_& m);      // bindings_train.cpp

namespace {

// Uninitialised scratch memory starting on a cache line (std::bad_alloc becomes MemoryError).
// The packed weights at its start are read in panel rows of 64 bytes; from plain new[] (16-byte
// aligned) every other 32-byte load of them crossed a cache line. Paired calls, misaligned by 16
// bytes / aligned: S4 forward 0.961, S2 training 0.971, S3 forward 0.988 and 0.986 (1 and 2
// threads), S3 training 0.985-1.011.
constexpr std::align_val_t kScratchAlign{64};  // bytes; the same for the new and the delete
struct FreeScratch {
    void operator()(void* p) const { ::operator delete(p, kScratchAlign); }
};
template <typename F>
std::unique_ptr<F[], FreeScratch> scratch(std::int64_t n) {
    void* p = ::operator new(static_cast<size_t>(n) * sizeof(F), kScratchAlign);
    return std::unique_ptr<F[], FreeScratch>(static_cast<F*>(p));
}

using Array = py::array;
using Optional = std::optional<py::array>;  // an array or None

void forward(const Array& x, const Optional& h0, const Array& w_ih, const Array& w_hh,
             const Optional& b_ih, const Optional& b_hh, const Array& out, bool reverse,
             const std::string& nonlinearity, const Optional& lengths) {
    with_dtype_of(x, [&](auto zero) {
        using F = decltype(zero);
        const Dims d = layer_dims(x, w_hh);
        const auto in = layer_inputs<F>(d, x, h0, w_ih, w_hh);
        const auto vbih = optional_view<F>(b_ih, "b_ih", {d.H}, false);
        const auto vbhh = optional_view<F>(b_hh, "b_hh", {d.H}, false);
        require_both_or_neither(bool(vbih), bool(vbhh), "b_ih and b_hh");
        const auto vout = view<F>(out, "out", {d.T, d.B, d.H}, true);
        require_disjoint<F>({{&vout, "out"}}, {{&in.x, "x"}, {&in.h0, "h0"}, {&in.w_ih, "w_ih"},
                                               {&in.w_hh, "w_hh"}, {&vbih, "b_ih"}, {&vbhh, "b_hh"}});
        const std::int64_t* lens = lengths_view(lengths, d.B);
        const Activation act = activation(nonlinearity);
        const auto work = scratch<F>(rnn_forward_workspace_size<F>(d));
        py::gil_scoped_release release;
        rnn_forward<F>(d, act, reverse, in.x.data, in.x.ld, in.h0.data, in.w_ih.data, in.w_hh.data,
                       vbih.data, vbhh.data, vout.data, vout.ld, lens, work.get());
    });
}

void backward(const Array& x, const Optional& h0, const Array& w_ih, const Array& w_hh,
              const Array& h, const Array& dh, const Optional& dh_n, const Optional& dx,
              bool accumulate_dx, const Array& dh0, const Array& dw_ih, const Array& dw_hh,
              const Optional& db_ih, const Optional& db_hh, bool reverse,
              const std::string& nonlinearity, const Optional& lengths) {
    with_dtype_of(x, [&](auto zero) {
        using F = decltype(zero);
        const Dims d = layer_dims(x, w_hh);
        const auto in = layer_inputs<F>(d, x, h0, w_ih, w_hh);
        const auto vh = view<F>(h, "h", {d.T, d.B, d.H}, false);
        const auto vdh = view<F>(dh, "dh", {d.T, d.B, d.H}, false);
        const auto vdhn = optional_view<F>(dh_n, "dh_n", {d.B, d.H}, false);
        const auto vdx = optional_view<F>(dx, "dx", {d.T, d.B, d.I}, true);
        const auto vdh0 = view<F>(dh0, "dh0", {d.B, d.H}, true);
        const auto vdwih = view<F>(dw_ih, "dw_ih", {d.H, d.I}, true);
        const auto vdwhh = view<F>(dw_hh, "dw_hh", {d.H, d.H}, true);
        const auto vdbih = optional_view<F>(db_ih, "db_ih", {d.H}, true);
        const auto vdbhh = optional_view<F>(db_hh, "db_hh", {d.H}, true);
        require_both_or_neither(bool(vdbih), bool(vdbhh), "db_ih and db_hh");
        require_disjoint<F>({{&vdx, "dx"}, {&vdh0, "dh0"}, {&vdwih, "dw_ih"}, {&vdwhh, "dw_hh"},
                             {&vdbih, "db_ih"}, {&vdbhh, "db_hh"}},
                            {{&in.x, "x"}, {&in.h0, "h0"}, {&in.w_ih, "w_ih"}, {&in.w_hh, "w_hh"},
                             {&vh, "h"}, {&vdh, "dh"}, {&vdhn, "dh_n"}});
        const std::int64_t* lens = lengths_view(lengths, d.B);
        const Activation act = activation(nonlinearity);
        const auto work = scratch<F>(rnn_backward_workspace_size<F>(d, lens != nullptr));
        py::gil_scoped_release release;
        rnn_backward<F>(d, act, reverse, in.x.data, in.x.ld, in.h0.data, in.w_ih.data,
                        in.w_hh.data, vh.data, vh.ld, vdh.data, vdh.ld, vdhn.data, vdx.data,
                        vdx.data ? vdx.ld : d.I, accumulate_dx, vdh0.data, vdwih.data, vdwhh.data, vdbih.data,
                        vdbhh.data, lens, work.get());
    });
}

// Arguments are taken as given, never converted (a list is refused, not copied into an array);
// None only where the core takes a null pointer.
py::arg arg(const char* name) { return py::arg(name).noconvert(); }
py::arg arg_or_none(const char* name) { return py::arg(name).noconvert().none(true); }

}  // namespace
}  // namespace rnncore::bindings

PYBIND11_MODULE(_core, m) {
    using namespace rnncore::bindings;
    m.doc() = "rnncore's compiled kernels (private: use the rnncore package).";
    // rnncore threads its own work (batch slices, blocks of GEMMs); each BLAS call stays on the
    // thread that makes it, so no OpenBLAS worker is left spinning beside ours.
    rnncore::blas::set_num_threads(1);
    m.def("forward", &forward, arg("x"), arg_or_none("h0"), arg("w_ih"), arg("w_hh"),
          arg_or_none("b_ih"), arg_or_none("b_hh"), arg("out"), arg("reverse"),
          arg("nonlinearity"), arg_or_none("lengths") = py::none(),
          "One layer, one direction: out[t] = act(x[t] w_ih^T + b_ih + b_hh + out[t -+ 1] w_hh^T).\n"
          "x (T,B,I); h0 (B,H) or None; out (T,B,H), may be a column slice of a wider array;\n"
          "lengths (B,) int64 with 1 <= lengths[b] <= T, or None (all T): padded steps give zeros.");
    m.def("backward", &backward, arg("x"), arg_or_none("h0"), arg("w_ih"), arg("w_hh"),
          arg("h"), arg("dh"), arg_or_none("dh_n"), arg_or_none("dx"), arg("accumulate_dx"),
          arg("dh0"), arg("dw_ih"), arg("dw_hh"), arg_or_none("db_ih"), arg_or_none("db_hh"),
          arg("reverse"), arg("nonlinearity"), arg_or_none("lengths") = py::none(),
          "BPTT through one forward call (same lengths). Reads dh; writes dx (or adds to it when\n"
          "accumulate_dx; dx None: not computed) and dh0; adds to dw_ih, dw_hh, db_ih, db_hh.");
    def_step_plan(m);
    def_train(m);
    m.def("set_num_threads", &rnncore::set_num_threads, py::arg("n").noconvert(),
          "Threads for rnncore's kernels (the caller counts as one).");
    m.def("get_num_threads", &rnncore::get_num_threads);
    m.def("blas_config", [] { return std::string(rnncore::blas::config()); });
    m.def("blas_corename", [] { return std::string(rnncore::blas::corename()); });
    m.def("get_isa", [] { return std::string(rnncore::elementwise_isa()); });
    m.def("available_isas", &rnncore::available_isas);
    m.def("set_isa", &rnncore::set_kernel_isa, py::arg("name"));  // invalid_argument -> ValueError
}
