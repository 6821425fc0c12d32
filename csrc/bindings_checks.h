// The argument checks of the pybind11 module (bindings.cpp, bindings_step.cpp), written once.
// Each takes a Python argument and returns what the core takes (a data pointer and a row
// stride), or throws std::invalid_argument (ValueError in Python) naming the argument, what was
// expected and what was got. They run for every argument of every call, so messages are built
// only when a check fails, and nothing is allocated on the way.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "rnncore/rnn.h"

namespace rnncore::bindings {

namespace py = pybind11;

// Throws ValueError with `what`, which is built only when the check fails.
#define RNNCORE_REQUIRE(ok, what)                                      \
    do {                                                               \
        if (!(ok)) throw std::invalid_argument(what);                  \
    } while (0)

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string dtype_str(const py::dtype& d) { return py::str(d).cast<std::string>(); }

// a's dtype is T's: the same object (the fast path), or an equivalent one, as copy.deepcopy and
// pickle make for the arrays they copy. A byte-swapped dtype is not equivalent.
template <typename T>
bool is_dtype(const py::dtype& a) {
    const py::dtype want = py::dtype::of<T>();
    return a.is(want) || a.equal(want);
}

inline bool is_aligned(const py::array& a) {
    return py::detail::check_flags(a.ptr(), py::detail::npy_api::NPY_ARRAY_ALIGNED_);
}

// The dtype every array of a call must have, from its first array (x, or a StepPlan's first
// w_ih): true for float32, false for float64. The typed checks refuse any other array of another
// dtype.
inline bool is_float32(const py::array& x) {
    if (is_dtype<float>(x.dtype())) return true;
    if (is_dtype<double>(x.dtype())) return false;
    throw std::invalid_argument("x: expected dtype float32 or float64, got " + dtype_str(x.dtype()));
}

// Calls f(F{}) with F = float or double, x's dtype: one body for both types.
template <typename Fn>
void with_dtype_of(const py::array& x, Fn&& f) {
    if (is_float32(x)) f(float{});
    else f(double{});
}

// A validated view of one argument: its data pointer, the row stride of its last axis in
// elements, and the byte range it covers (for overlap checks). Empty (false) for None.
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
    std::int64_t shape[4];  // no heap allocation
    std::copy(shape_list.begin(), shape_list.end(), shape);
    const auto n = static_cast<std::int64_t>(shape_list.size());
    auto fail = [&](const std::string& what) {
        throw std::invalid_argument(std::string(name) + ": expected " + what);
    };
    auto want_shape = [&] {
        std::string s = "(";
        for (std::int64_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + (n == 1 ? ",)" : ")");
    };
    if (!is_dtype<F>(a.dtype()))
        fail("dtype " + dtype_str(py::dtype::of<F>()) + ", got " + dtype_str(a.dtype()));
    bool shape_ok = a.ndim() == n;
    for (std::int64_t i = 0; shape_ok && i < n; ++i) shape_ok = a.shape(i) == shape[i];
    if (!shape_ok) fail("shape " + want_shape() + ", got " + shape_str(a));
    if (!is_aligned(a)) fail("an aligned array");
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

// Biases come in pairs: "b_ih and b_hh: expected both or neither".
inline void require_both_or_neither(bool a, bool b, const char* names) {
    RNNCORE_REQUIRE(a == b, std::string(names) + ": expected both or neither");
}

template <typename F>
using Named = std::pair<const View<F>*, const char*>;

// No output overlaps an input, or an output after it in `outputs` ("dx must not overlap x").
// Absent (None) and empty arrays overlap nothing.
template <typename F>
void require_disjoint(std::initializer_list<Named<F>> outputs,
                      std::initializer_list<Named<F>> inputs) {
    auto check = [](const Named<F>& out, const Named<F>& other) {
        const View<F>& o = *out.first;
        const View<F>& v = *other.first;
        if (v && o.lo < v.hi && v.lo < o.hi && o.lo != o.hi)
            throw std::invalid_argument(std::string(out.second) + " must not overlap " + other.second);
    };
    for (auto out = outputs.begin(); out != outputs.end(); ++out) {
        if (!*out->first) continue;
        for (const auto& in : inputs) check(*out, in);
        for (auto later = out + 1; later != outputs.end(); ++later) check(*out, *later);
    }
}

// A layer's sizes from x (T, B, I) and w_hh (H, H); view() then checks every array against them.
inline Dims layer_dims(const py::array& x, const py::array& w_hh) {
    RNNCORE_REQUIRE(x.ndim() == 3, "x: expected a 3-D array (T, B, I), got shape " + shape_str(x));
    RNNCORE_REQUIRE(w_hh.ndim() == 2,
                    "w_hh: expected a 2-D array (H, H), got shape " + shape_str(w_hh));
    return Dims{x.shape(0), x.shape(1), x.shape(2), w_hh.shape(0)};
}

// What the forward and the backward of a layer both read.
template <typename F>
struct LayerInputs {
    View<F> x, h0, w_ih, w_hh;
};

template <typename F>
LayerInputs<F> layer_inputs(const Dims& d, const py::array& x, const std::optional<py::array>& h0,
                            const py::array& w_ih, const py::array& w_hh) {
    return {view<F>(x, "x", {d.T, d.B, d.I}, false), optional_view<F>(h0, "h0", {d.B, d.H}, false),
            view<F>(w_ih, "w_ih", {d.H, d.I}, false), view<F>(w_hh, "w_hh", {d.H, d.H}, false)};
}

// Validated lengths (B,) as int64, or nullptr; the core checks their values.
inline const std::int64_t* lengths_view(const std::optional<py::array>& lengths, std::int64_t B) {
    if (!lengths) return nullptr;
    const py::array& a = *lengths;
    RNNCORE_REQUIRE(is_dtype<std::int64_t>(a.dtype()),
                    "lengths: expected dtype int64, got " + dtype_str(a.dtype()));
    RNNCORE_REQUIRE(a.ndim() == 1 && a.shape(0) == B,
                    "lengths: expected shape (" + std::to_string(B) + ",), got " + shape_str(a));
    RNNCORE_REQUIRE(B <= 1 || a.strides(0) == static_cast<py::ssize_t>(sizeof(std::int64_t)),
                    "lengths: expected a contiguous array");
    RNNCORE_REQUIRE(is_aligned(a), "lengths: expected an aligned array");
    return static_cast<const std::int64_t*>(a.data());
}

inline Activation activation(const std::string& name) {
    if (name == "tanh") return Activation::Tanh;
    if (name == "relu") return Activation::Relu;
    throw std::invalid_argument("nonlinearity: expected 'tanh' or 'relu', got '" + name + "'");
}

}  // namespace rnncore::bindings
