// rnncore._core.StepPlan: streaming inference, one time step through every layer of a
// unidirectional RNN per call (RNN.step). The weights are checked once, when the plan is made;
// each call checks only x and h, on a fast path for plain arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings_checks.h"
#include "rnncore/rnn.h"

namespace rnncore::bindings {

namespace {

// The weights of a unidirectional RNN, validated once, for streaming one step at a time through
// all layers with one call (StepPlan.__call__). It holds references to the caller's live weight
// arrays: changes made to them in place take effect at the next step.
class StepPlan {
  public:
    StepPlan(const py::list& layers, const std::string& nonlinearity)
        : act_(activation(nonlinearity)) {
        RNNCORE_REQUIRE(layers.size() > 0, "layers: expected at least one (w_ih, w_hh, b_ih, b_hh)");
        for (const auto& item : layers) {
            const auto t = item.cast<py::tuple>();
            RNNCORE_REQUIRE(t.size() == 4, "layers: expected tuples (w_ih, w_hh, b_ih, b_hh)");
            Layer l{t[0].cast<py::array>(), t[1].cast<py::array>(), t[2], t[3]};
            RNNCORE_REQUIRE(l.w_hh.ndim() == 2 && l.w_ih.ndim() == 2, "w_ih, w_hh: expected 2-D arrays");
            layers_.push_back(std::move(l));
        }
        H_ = layers_[0].w_hh.shape(0);
        I_ = layers_[0].w_ih.shape(1);
        float32_ = is_float32(layers_[0].w_ih);
        dtype_ = float32_ ? py::dtype::of<float>() : py::dtype::of<double>();
        for (size_t k = 0; k < layers_.size(); ++k)
            float32_ ? check<float>(k) : check<double>(k);
        cache_pointers();
    }

    // x (B, I); h (L, B, H) or None (zero state). Returns (y, h_new): h_new a new (L, B, H) array
    // of every layer's new state, y the top layer's (a view of h_new[L-1]).
    py::tuple operator()(py::handle x, py::handle h) const {
        // The streaming path: a step at B=1, H=64 computes for a fraction of a microsecond, so
        // plain arrays are checked straight on the numpy objects and the GIL stays held for
        // small steps (releasing and retaking it costs more than the step). Anything unusual
        // takes the full checks.
        const std::int64_t L = static_cast<std::int64_t>(layers_.size());
        Inputs in;
        if (plain(x, 2, {-1, I_}) && (h.is_none() || plain(h, 3, {L, dim0(x), H_}))) {
            in.B = dim0(x), in.x = data(x), in.h = h.is_none() ? nullptr : data(h);
            in.ldx = I_, in.ldh = H_;
        } else {
            in = float32_ ? checked<float>(x, h) : checked<double>(x, h);
        }
        auto [out, y] = new_states(in.B);
        void* op = py::detail::array_proxy(out.ptr())->data;
        {
            std::optional<py::gil_scoped_release> release;
            if (in.B * H_ * (I_ + H_) * L > kHoldGil) release.emplace();
            float32_ ? steps<float>(in, op) : steps<double>(in, op);
        }
        PyObject* result = PyTuple_New(2);
        if (!result) throw py::error_already_set();
        PyTuple_SET_ITEM(result, 0, y.release().ptr());
        PyTuple_SET_ITEM(result, 1, out.release().ptr());
        return py::reinterpret_steal<py::tuple>(result);
    }

  private:
    // Multiply-adds of a step below which the GIL is kept (about 10 us of work).
    static constexpr std::int64_t kHoldGil = 200'000;

    struct Layer {
        py::array w_ih, w_hh;
        py::object b_ih, b_hh;  // arrays or None
        // Their data: fixed for the arrays' lifetime, which the references above extend.
        const void* ptr[4] = {};
    };

    template <typename F>
    void check(size_t k) const {
        const Layer& l = layers_[k];
        const std::int64_t in = k == 0 ? I_ : H_;
        view<F>(l.w_ih, "w_ih", {H_, in}, false);
        view<F>(l.w_hh, "w_hh", {H_, H_}, false);
        require_both_or_neither(!l.b_ih.is_none(), !l.b_hh.is_none(), "b_ih and b_hh");
        if (!l.b_ih.is_none()) {
            view<F>(l.b_ih.cast<py::array>(), "b_ih", {H_}, false);
            view<F>(l.b_hh.cast<py::array>(), "b_hh", {H_}, false);
        }
    }

    void cache_pointers() {
        for (Layer& l : layers_) {
            l.ptr[0] = l.w_ih.data();
            l.ptr[1] = l.w_hh.data();
            if (!l.b_ih.is_none()) {
                l.ptr[2] = l.b_ih.cast<py::array>().data();
                l.ptr[3] = l.b_hh.cast<py::array>().data();
            }
        }
    }

    // `o` is an ndarray of this plan's dtype (the same descriptor object), C-contiguous and
    // aligned, of the given shape (-1: any extent).
    bool plain(py::handle o, int ndim, std::initializer_list<std::int64_t> shape) const {
        if (!py::isinstance<py::array>(o)) return false;
        const auto* a = py::detail::array_proxy(o.ptr());
        constexpr int flags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
        if (a->descr != dtype_.ptr() || a->nd != ndim || (a->flags & flags) != flags) return false;
        int i = 0;
        for (std::int64_t n : shape)
            if (n >= 0 && a->dimensions[i++] != n) return false;
            else if (n < 0) ++i;
        return true;
    }

    // A new (L, B, H) array for every layer's states, and a (B, H) view of its top layer, made
    // straight through numpy's C API: a step at H=64 computes in ~0.3 us, and pybind11's array
    // constructors (shape vectors, a type lookup each) would cost as much again.
    std::pair<py::object, py::object> new_states(std::int64_t B) const {
        const auto& api = py::detail::npy_api::get();
        const py::ssize_t L = static_cast<py::ssize_t>(layers_.size()), item = float32_ ? 4 : 8;
        py::ssize_t dims[3] = {L, B, H_};
        auto out = py::reinterpret_steal<py::object>(api.PyArray_NewFromDescr_(
            api.PyArray_Type_, dtype_.inc_ref().ptr(), 3, dims, nullptr, nullptr, 0, nullptr));
        if (!out) throw py::error_already_set();
        char* top = static_cast<char*>(py::detail::array_proxy(out.ptr())->data) + (L - 1) * B * H_ * item;
        py::ssize_t strides[2] = {H_ * item, item};
        auto y = py::reinterpret_steal<py::object>(api.PyArray_NewFromDescr_(
            api.PyArray_Type_, dtype_.inc_ref().ptr(), 2, dims + 1, strides, top,
            py::detail::npy_api::NPY_ARRAY_WRITEABLE_, nullptr));
        if (!y) throw py::error_already_set();
        if (api.PyArray_SetBaseObject_(y.ptr(), out.inc_ref().ptr()) != 0) throw py::error_already_set();
        return {std::move(out), std::move(y)};
    }

    // A step's validated inputs: x [B, I] row stride ldx; h [L, B, H] row stride ldh, or null.
    // `keep` holds arrays converted from other objects alive for the call.
    struct Inputs {
        std::int64_t B = 0, ldx = 0, ldh = 0;
        const void* x = nullptr;
        const void* h = nullptr;
        py::object keep[2];
    };

    static std::int64_t dim0(py::handle a) { return py::detail::array_proxy(a.ptr())->dimensions[0]; }
    static const void* data(py::handle a) { return py::detail::array_proxy(a.ptr())->data; }

    // The full checks, naming what is wrong.
    template <typename F>
    Inputs checked(py::handle x, py::handle h) const {
        Inputs in;
        const auto xa = py::cast<py::array>(x);
        RNNCORE_REQUIRE(xa.ndim() == 2, "x: expected a 2-D array (B, I), got shape " + shape_str(xa));
        in.B = xa.shape(0);
        const auto vx = view<F>(xa, "x", {in.B, I_}, false);
        in.x = vx.data, in.ldx = vx.ld, in.keep[0] = xa;
        in.ldh = H_;
        if (!h.is_none()) {
            const auto ha = py::cast<py::array>(h);
            const auto vh = view<F>(ha, "h", {static_cast<std::int64_t>(layers_.size()), in.B, H_}, false);
            in.h = vh.data, in.ldh = vh.ld, in.keep[1] = ha;
        }
        return in;
    }

    // Every layer's step into out [L, B, H] (contiguous, new: it overlaps no input).
    template <typename F>
    void steps(const Inputs& in, void* outv) const {
        const std::int64_t B = in.B;
        const F* x = static_cast<const F*>(in.x);
        const F* h = static_cast<const F*>(in.h);
        F* out = static_cast<F*>(outv);
        for (size_t k = 0; k < layers_.size(); ++k) {
            const auto w = [&](int i) { return static_cast<const F*>(layers_[k].ptr[i]); };
            const std::int64_t n_in = k == 0 ? I_ : H_;
            rnncore::rnn_step<F>(Dims{1, B, n_in, H_}, act_, k == 0 ? x : out + (k - 1) * B * H_,
                                 k == 0 ? in.ldx : H_, h ? h + k * B * in.ldh : nullptr, in.ldh,
                                 w(0), w(1), w(2), w(3), out + k * B * H_, H_);
        }
    }

    Activation act_;
    py::dtype dtype_;
    std::vector<Layer> layers_;
    std::int64_t I_ = 0, H_ = 0;
    bool float32_ = true;
};

// StepPlan's call slot: `plan(x, h)` goes straight to StepPlan::operator(). Called through a
// pybind11 __call__ method, Python first made a bound method and pybind11 then matched the
// arguments and looked up the C++ type: 0.3-0.4 us more per step at B=1, H=64, as much as the
// step's arithmetic.
PyObject* call_step_plan(PyObject* self, PyObject* args, PyObject* kwargs) {
    PyObject *x = nullptr, *h = nullptr;
    if (kwargs == nullptr && PyTuple_GET_SIZE(args) == 2) {
        x = PyTuple_GET_ITEM(args, 0), h = PyTuple_GET_ITEM(args, 1);
    } else {
        static const char* names[] = {"x", "h", nullptr};
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:StepPlan.__call__", const_cast<char**>(names), &x, &h))
            return nullptr;
    }
    try {
        // The C++ object inside the Python one, without py::cast's type lookup (~40 ns).
        // Null when __init__ never ran (StepPlan.__new__ alone).
        const auto* plan = static_cast<const StepPlan*>(
            reinterpret_cast<py::detail::instance*>(self)->get_value_and_holder().value_ptr());
        if (plan == nullptr) throw py::type_error("StepPlan.__call__: the plan was never initialised");
        return (*plan)(x, h).release().ptr();
    } catch (...) {
        py::detail::try_translate_exceptions();  // as pybind11's own dispatch does
        return nullptr;
    }
}

}  // namespace

void def_step_plan(py::module_& m) {
    // No .def("__call__"): the type's call slot is set instead (call_step_plan), and a def would
    // replace it with pybind11's dispatch.
    py::class_<StepPlan>(m, "StepPlan",
                         py::custom_type_setup([](PyHeapTypeObject* type) { type->ht_type.tp_call = call_step_plan; }),
                         "Validated weights of a unidirectional RNN for one-step streaming.\n\n"
                         "plan(x, h): x (B,I), h (L,B,H) or None -> (y, h_new): h_new a new (L,B,H)\n"
                         "array of every layer's new state, y its top layer (B,H), a view.")
        .def(py::init<const py::list&, const std::string&>(), py::arg("layers"), py::arg("nonlinearity"),
             "layers: [(w_ih, w_hh, b_ih or None, b_hh or None)] per layer, bottom first.");
}

}  // namespace rnncore::bindings
