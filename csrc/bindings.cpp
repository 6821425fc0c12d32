// pybind11 module rnncore._core: converts and validates numpy arrays, allocates scratch, releases
// the GIL and calls the C++ core. It computes nothing itself.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "rnncore/blas.h"
#include "rnncore/elementwise.h"
#include "rnncore/isa.h"
#include "rnncore/rnn.h"
#include "rnncore/thread_pool.h"

namespace py = pybind11;
using rnncore::Activation;
using rnncore::Dims;

namespace {

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// Throws ValueError with `what`, which is built only when the check fails (this runs per call).
#define REQUIRE(ok, what)                                              \
    do {                                                               \
        if (!(ok)) throw std::invalid_argument(what);                  \
    } while (0)

// a's dtype is T's: the same object (the fast path), or an equivalent one, as copy.deepcopy and
// pickle make for the arrays they copy. A byte-swapped dtype is not equivalent.
template <typename T>
bool is_dtype(const py::dtype& a) {
    const py::dtype want = py::dtype::of<T>();
    return a.is(want) || a.equal(want);
}

// A validated view of one argument: its data pointer, the row stride of its last axis in
// elements, and the byte range it covers (for overlap checks).
template <typename F>
struct View {
    F* data = nullptr;
    std::int64_t ld = 0;
    const char* lo = nullptr;
    const char* hi = nullptr;
    explicit operator bool() const { return data != nullptr; }
};

// Checks `a` is an aligned array of dtype F with the given shape whose last axis is contiguous and
// whose leading axes are laid out as rows of stride ld (ld >= last dim) in C order. Views into
// columns of a wider array pass; transposed or strided-in-time arrays do not.
template <typename F>
View<F> view(const py::array& a, const char* name, std::initializer_list<std::int64_t> shape_list,
             bool writable) {
    std::int64_t shape[4];  // no heap allocation: this runs for every argument of every call
    std::copy(shape_list.begin(), shape_list.end(), shape);
    const auto n = static_cast<std::int64_t>(shape_list.size());
    // Messages are built only on failure: this runs for every argument of every call.
    auto fail = [&](const std::string& what) {
        throw std::invalid_argument(std::string(name) + ": expected " + what);
    };
    auto want_shape = [&] {
        std::string s = "(";
        for (std::int64_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + (n == 1 ? ",)" : ")");
    };
    if (!is_dtype<F>(a.dtype()))
        fail("dtype " + py::str(py::dtype::of<F>()).cast<std::string>() + ", got " +
             py::str(a.dtype()).cast<std::string>());
    bool shape_ok = a.ndim() == n;
    for (std::int64_t i = 0; shape_ok && i < n; ++i) shape_ok = a.shape(i) == shape[i];
    if (!shape_ok) fail("shape " + want_shape() + ", got " + shape_str(a));
    if (!py::detail::check_flags(a.ptr(), py::detail::npy_api::NPY_ARRAY_ALIGNED_)) fail("an aligned array");
    if (writable && !a.writeable()) fail("a writable array");

    // Row (i0, i1, ..) of the leading axes is row number r = (i0 * shape[1] + i1) * ..; it must
    // sit at data + r * ld * itemsize. Axes of extent 1 may have any stride; empty arrays any.
    const auto item = static_cast<std::int64_t>(sizeof(F));
    const std::int64_t cols = shape[n - 1];
    std::int64_t rows = 1;
    for (std::int64_t i = 0; i + 1 < n; ++i) rows *= shape[i];
    std::int64_t ld = std::max<std::int64_t>(cols, 1);
    bool ok = true;
    if (a.size() > 0) {
        ok = cols <= 1 || a.strides(n - 1) == item;
        std::int64_t rows_below = 1;
        for (std::int64_t i = n - 2; i >= 0; --i) {  // the innermost leading axis that moves fixes ld
            if (shape[i] > 1) {
                const std::int64_t per_row = rows_below * item;
                ok = ok && a.strides(i) % per_row == 0 && a.strides(i) / per_row >= cols;
                if (ok) ld = a.strides(i) / per_row;
                break;
            }
            rows_below *= shape[i];
        }
        rows_below = 1;
        for (std::int64_t i = n - 2; i >= 0; --i) {
            ok = ok && (shape[i] <= 1 || a.strides(i) == rows_below * ld * item);
            rows_below *= shape[i];
        }
    }
    if (!ok) {
        std::string strides = "(";
        for (std::int64_t i = 0; i < n; ++i) strides += (i ? ", " : "") + std::to_string(a.strides(i));
        fail("C-ordered rows with a contiguous last axis, got strides " + strides + ")");
    }
    View<F> v;
    v.data = static_cast<F*>(const_cast<void*>(a.data()));
    v.ld = ld;
    v.lo = static_cast<const char*>(a.data());
    v.hi = v.lo + (a.size() == 0 ? 0 : (rows - 1) * ld * item + cols * item);
    return v;
}

template <typename F>
View<F> optional_view(const std::optional<py::array>& a, const char* name,
                      std::initializer_list<std::int64_t> shape, bool writable) {
    return a ? view<F>(*a, name, shape, writable) : View<F>{};
}

template <typename F>
void require_disjoint(const View<F>& out, const char* out_name,
                      std::initializer_list<std::pair<const View<F>*, const char*>> others) {
    for (const auto& [v, name] : others)
        if (*v && out.lo < v->hi && v->lo < out.hi && out.lo != out.hi)
            throw std::invalid_argument(std::string(out_name) + " must not overlap " + name);
}

// Dispatch on x's dtype; the typed functions reject any other argument of a different dtype.
bool is_float32(const py::array& x) {
    if (is_dtype<float>(x.dtype())) return true;
    if (is_dtype<double>(x.dtype())) return false;
    throw std::invalid_argument("x: expected dtype float32 or float64, got " +
                                py::str(x.dtype()).cast<std::string>());
}

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

// Validated lengths (B,) as int64, or nullptr; the core checks their values.
const std::int64_t* lengths_view(const std::optional<py::array>& lengths, std::int64_t B) {
    if (!lengths) return nullptr;
    const py::array& a = *lengths;
    REQUIRE(is_dtype<std::int64_t>(a.dtype()),
            "lengths: expected dtype int64, got " + py::str(a.dtype()).cast<std::string>());
    REQUIRE(a.ndim() == 1 && a.shape(0) == B,
            "lengths: expected shape (" + std::to_string(B) + ",), got " + shape_str(a));
    REQUIRE(B <= 1 || a.strides(0) == static_cast<py::ssize_t>(sizeof(std::int64_t)),
            "lengths: expected a contiguous array");
    REQUIRE(py::detail::check_flags(a.ptr(), py::detail::npy_api::NPY_ARRAY_ALIGNED_),
            "lengths: expected an aligned array");
    return static_cast<const std::int64_t*>(a.data());
}

Activation activation(const std::string& name) {
    if (name == "tanh") return Activation::Tanh;
    if (name == "relu") return Activation::Relu;
    throw std::invalid_argument("nonlinearity: expected 'tanh' or 'relu', got '" + name + "'");
}

template <typename F>
void forward(const py::array& x, const std::optional<py::array>& h0, const py::array& w_ih,
             const py::array& w_hh, const std::optional<py::array>& b_ih,
             const std::optional<py::array>& b_hh, const py::array& out, bool reverse,
             const std::string& nonlinearity, const std::optional<py::array>& lengths) {
    REQUIRE(x.ndim() == 3, "x: expected a 3-D array (T, B, I), got shape " + shape_str(x));
    REQUIRE(w_hh.ndim() == 2, "w_hh: expected a 2-D array (H, H), got shape " + shape_str(w_hh));
    const Dims d{x.shape(0), x.shape(1), x.shape(2), w_hh.shape(0)};
    const auto vx = view<F>(x, "x", {d.T, d.B, d.I}, false);
    const auto vh0 = optional_view<F>(h0, "h0", {d.B, d.H}, false);
    const auto vwih = view<F>(w_ih, "w_ih", {d.H, d.I}, false);
    const auto vwhh = view<F>(w_hh, "w_hh", {d.H, d.H}, false);
    const auto vbih = optional_view<F>(b_ih, "b_ih", {d.H}, false);
    const auto vbhh = optional_view<F>(b_hh, "b_hh", {d.H}, false);
    REQUIRE(bool(vbih) == bool(vbhh), "b_ih and b_hh: expected both or neither");
    const auto vout = view<F>(out, "out", {d.T, d.B, d.H}, true);
    require_disjoint(vout, "out", {{&vx, "x"}, {&vh0, "h0"}, {&vwih, "w_ih"}, {&vwhh, "w_hh"},
                                   {&vbih, "b_ih"}, {&vbhh, "b_hh"}});
    const std::int64_t* lens = lengths_view(lengths, d.B);
    const Activation act = activation(nonlinearity);
    const auto work = scratch<F>(rnncore::rnn_forward_workspace_size<F>(d));
    py::gil_scoped_release release;
    rnncore::rnn_forward<F>(d, act, reverse, vx.data, vx.ld, vh0.data, vwih.data, vwhh.data,
                            vbih.data, vbhh.data, vout.data, vout.ld, lens, work.get());
}

// The weights of a unidirectional RNN, validated once, for streaming one step at a time through
// all layers with one call (StepPlan.__call__). It holds references to the caller's live weight
// arrays: changes made to them in place take effect at the next step.
class StepPlan {
  public:
    StepPlan(const py::list& layers, const std::string& nonlinearity)
        : act_(activation(nonlinearity)) {
        REQUIRE(layers.size() > 0, "layers: expected at least one (w_ih, w_hh, b_ih, b_hh)");
        for (const auto& item : layers) {
            const auto t = item.cast<py::tuple>();
            REQUIRE(t.size() == 4, "layers: expected tuples (w_ih, w_hh, b_ih, b_hh)");
            Layer l{t[0].cast<py::array>(), t[1].cast<py::array>(), t[2], t[3]};
            REQUIRE(l.w_hh.ndim() == 2 && l.w_ih.ndim() == 2, "w_ih, w_hh: expected 2-D arrays");
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
        REQUIRE(l.b_ih.is_none() == l.b_hh.is_none(), "b_ih and b_hh: expected both or neither");
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
        REQUIRE(xa.ndim() == 2, "x: expected a 2-D array (B, I), got shape " + shape_str(xa));
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

template <typename F>
void backward(const py::array& x, const std::optional<py::array>& h0, const py::array& w_ih,
              const py::array& w_hh, const py::array& h, const py::array& dh,
              const std::optional<py::array>& dh_n, const py::array& dx,
              bool accumulate_dx, const py::array& dh0, const py::array& dw_ih,
              const py::array& dw_hh, const std::optional<py::array>& db_ih,
              const std::optional<py::array>& db_hh, bool reverse, const std::string& nonlinearity,
              const std::optional<py::array>& lengths) {
    REQUIRE(x.ndim() == 3, "x: expected a 3-D array (T, B, I), got shape " + shape_str(x));
    REQUIRE(w_hh.ndim() == 2, "w_hh: expected a 2-D array (H, H), got shape " + shape_str(w_hh));
    const Dims d{x.shape(0), x.shape(1), x.shape(2), w_hh.shape(0)};
    const auto vx = view<F>(x, "x", {d.T, d.B, d.I}, false);
    const auto vh0 = optional_view<F>(h0, "h0", {d.B, d.H}, false);
    const auto vwih = view<F>(w_ih, "w_ih", {d.H, d.I}, false);
    const auto vwhh = view<F>(w_hh, "w_hh", {d.H, d.H}, false);
    const auto vh = view<F>(h, "h", {d.T, d.B, d.H}, false);
    const auto vdh = view<F>(dh, "dh", {d.T, d.B, d.H}, false);
    const auto vdhn = optional_view<F>(dh_n, "dh_n", {d.B, d.H}, false);
    const auto vdx = view<F>(dx, "dx", {d.T, d.B, d.I}, true);
    const auto vdh0 = view<F>(dh0, "dh0", {d.B, d.H}, true);
    const auto vdwih = view<F>(dw_ih, "dw_ih", {d.H, d.I}, true);
    const auto vdwhh = view<F>(dw_hh, "dw_hh", {d.H, d.H}, true);
    const auto vdbih = optional_view<F>(db_ih, "db_ih", {d.H}, true);
    const auto vdbhh = optional_view<F>(db_hh, "db_hh", {d.H}, true);
    REQUIRE(bool(vdbih) == bool(vdbhh), "db_ih and db_hh: expected both or neither");
    const std::initializer_list<std::pair<const View<F>*, const char*>> inputs = {
        {&vx, "x"}, {&vh0, "h0"}, {&vwih, "w_ih"}, {&vwhh, "w_hh"}, {&vh, "h"}, {&vdh, "dh"},
        {&vdhn, "dh_n"}};
    const std::vector<std::pair<const View<F>*, const char*>> outputs = {
        {&vdx, "dx"}, {&vdh0, "dh0"}, {&vdwih, "dw_ih"}, {&vdwhh, "dw_hh"}, {&vdbih, "db_ih"},
        {&vdbhh, "db_hh"}};
    for (size_t i = 0; i < outputs.size(); ++i) {
        const auto& [out, name] = outputs[i];
        if (!*out) continue;
        require_disjoint(*out, name, inputs);
        for (size_t j = i + 1; j < outputs.size(); ++j) require_disjoint(*out, name, {outputs[j]});
    }
    const std::int64_t* lens = lengths_view(lengths, d.B);
    const Activation act = activation(nonlinearity);
    const auto work = scratch<F>(rnncore::rnn_backward_workspace_size<F>(d, lens != nullptr));
    py::gil_scoped_release release;
    rnncore::rnn_backward<F>(d, act, reverse, vx.data, vx.ld, vh0.data, vwih.data, vwhh.data,
                             vh.data, vh.ld, vdh.data, vdh.ld, vdhn.data, vdx.data, vdx.ld,
                             accumulate_dx, vdh0.data, vdwih.data, vdwhh.data, vdbih.data,
                             vdbhh.data, lens, work.get());
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "rnncore's compiled kernels (private: use the rnncore package).";
    // rnncore threads its own work (batch slices, blocks of GEMMs); each BLAS call stays on the
    // thread that makes it, so no OpenBLAS worker is left spinning beside ours.
    rnncore::blas::set_num_threads(1);
    m.def(
        "forward",
        [](const py::array& x, const std::optional<py::array>& h0, const py::array& w_ih,
           const py::array& w_hh, const std::optional<py::array>& b_ih,
           const std::optional<py::array>& b_hh, const py::array& out, bool reverse,
           const std::string& nonlinearity, const std::optional<py::array>& lengths) {
            (is_float32(x) ? forward<float> : forward<double>)(x, h0, w_ih, w_hh, b_ih, b_hh, out,
                                                               reverse, nonlinearity, lengths);
        },
        py::arg("x").noconvert(), py::arg("h0").noconvert().none(true), py::arg("w_ih").noconvert(), py::arg("w_hh").noconvert(),
        py::arg("b_ih").noconvert().none(true), py::arg("b_hh").noconvert().none(true), py::arg("out").noconvert(), py::arg("reverse").noconvert(),
        py::arg("nonlinearity").noconvert(), py::arg("lengths").noconvert().none(true) = py::none(),
        "One layer, one direction: out[t] = act(x[t] w_ih^T + b_ih + b_hh + out[t -+ 1] w_hh^T).\n"
        "x (T,B,I); h0 (B,H) or None; out (T,B,H), may be a column slice of a wider array;\n"
        "lengths (B,) int64 with 1 <= lengths[b] <= T, or None (all T): padded steps give zeros.");
    m.def(
        "backward",
        [](const py::array& x, const std::optional<py::array>& h0, const py::array& w_ih,
           const py::array& w_hh, const py::array& h, const py::array& dh,
           const std::optional<py::array>& dh_n, const py::array& dx,
           bool accumulate_dx, const py::array& dh0, const py::array& dw_ih, const py::array& dw_hh,
           const std::optional<py::array>& db_ih, const std::optional<py::array>& db_hh,
           bool reverse, const std::string& nonlinearity, const std::optional<py::array>& lengths) {
            (is_float32(x) ? backward<float> : backward<double>)(
                x, h0, w_ih, w_hh, h, dh, dh_n, dx, accumulate_dx, dh0, dw_ih, dw_hh, db_ih,
                db_hh, reverse, nonlinearity, lengths);
        },
        py::arg("x").noconvert(), py::arg("h0").noconvert().none(true), py::arg("w_ih").noconvert(), py::arg("w_hh").noconvert(), py::arg("h").noconvert(),
        py::arg("dh").noconvert(), py::arg("dh_n").noconvert().none(true), py::arg("dx").noconvert(),
        py::arg("accumulate_dx").noconvert(), py::arg("dh0").noconvert(), py::arg("dw_ih").noconvert(), py::arg("dw_hh").noconvert(),
        py::arg("db_ih").noconvert().none(true), py::arg("db_hh").noconvert().none(true), py::arg("reverse").noconvert(),
        py::arg("nonlinearity").noconvert(), py::arg("lengths").noconvert().none(true) = py::none(),
        "BPTT through one forward call (same lengths). Reads dh; writes dx (or adds to it when\n"
        "accumulate_dx) and dh0; adds to dw_ih, dw_hh, db_ih, db_hh.");
    // No .def("__call__"): the type's call slot is set instead (call_step_plan), and a def would
    // replace it with pybind11's dispatch.
    py::class_<StepPlan>(m, "StepPlan",
                         py::custom_type_setup([](PyHeapTypeObject* type) { type->ht_type.tp_call = call_step_plan; }),
                         "Validated weights of a unidirectional RNN for one-step streaming.\n\n"
                         "plan(x, h): x (B,I), h (L,B,H) or None -> (y, h_new): h_new a new (L,B,H)\n"
                         "array of every layer's new state, y its top layer (B,H), a view.")
        .def(py::init<const py::list&, const std::string&>(), py::arg("layers"), py::arg("nonlinearity"),
             "layers: [(w_ih, w_hh, b_ih or None, b_hh or None)] per layer, bottom first.");
    m.def("set_num_threads", &rnncore::set_num_threads, py::arg("n").noconvert(),
          "Threads for rnncore's kernels (the caller counts as one).");
    m.def("get_num_threads", &rnncore::get_num_threads);
    m.def("blas_config", [] { return std::string(rnncore::blas::config()); });
    m.def("blas_corename", [] { return std::string(rnncore::blas::corename()); });
    m.def("get_isa", [] { return std::string(rnncore::elementwise_isa()); });
    m.def("available_isas", &rnncore::available_isas);
    m.def("set_isa", &rnncore::set_kernel_isa, py::arg("name"));  // invalid_argument -> ValueError
}
