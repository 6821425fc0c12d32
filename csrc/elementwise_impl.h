// Element-wise kernels written as plain loops for the compiler to vectorise. This header is
// compiled once per instruction set (elementwise_baseline.cpp, elementwise_avx2.cpp); everything in
// it has internal linkage so the copies never merge at link time.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "rnncore/elementwise.h"

namespace rnncore {
namespace {

// tanh in float32: Eigen's rational approximation p(x)/q(x) (odd degree 13 over even degree 6),
// branch-free so the loop vectorises; accurate to a few ulp. NaN propagates.
inline float tanh_approx(float x) {
    const float clamp = 7.90531110763549805f;  // |tanh(x)| rounds to 1 in float32 beyond this
    const float xc = x < -clamp ? -clamp : (x > clamp ? clamp : x);
    const float x2 = xc * xc;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    const float r = xc * p / q;
    const float ax = std::fabs(x);
    float y = ax < 0.0004f ? x : r;               // tanh(x) == x to float32 rounding
    y = ax > 9.1f ? std::copysign(1.0f, x) : y;  // tanh(x) rounds to +-1 (the fit saturates below)
    return x != x ? x : y;                        // keep NaN (the clamp may drop it)
}

// exp(a) for 0 <= a <= 45 in float64, branch-free: a = n*ln2 + r with |r| <= ln2/2, exp(r) by its
// Taylor series to r^13 (error < 1e-17), times 2^n built in the exponent bits.
inline double exp_small_range(double a) {
    const double shifter = 0x1.8p52;  // adding it rounds to an integer kept in the low bits
    const double k = a * 1.4426950408889634 + shifter;
    const double n = k - shifter;
    const double r = (a - n * 0x1.62e42fee00000p-1) - n * 0x1.a39ef35793c76p-33;
    double p = 1.0 / 6227020800.0;  // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    std::uint64_t kbits;
    std::memcpy(&kbits, &k, sizeof k);
    const std::uint64_t scale_bits = (kbits + 1023) << 52;  // low bits of k hold n >= 0
    double scale;
    std::memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

// tanh in float64 to ~1e-16 relative: Cephes' rational form below 0.625, else 1 - 2/(e^{2|x|} + 1)
// with |x| clamped at 20 (tanh(20) is 1 in float64). Branch-free; NaN propagates.
inline double tanh_approx(double x) {
    const double ax = std::fabs(x);
    const double a = ax > 20.0 ? 20.0 : ax;
    const double z = x * x;
    const double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z -
                     1.61468768441708447952e3;
    const double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z +
                     4.84406305325125486048e3;
    const double small = x + x * z * (p / q);
    const double large = 1.0 - 2.0 / (exp_small_range(2.0 * a) + 1.0);
    const double y = std::copysign(a < 0.625 ? small : large, x);  // copysign keeps tanh(-0) = -0
    return x != x ? x : y;
}

template <typename F>
inline F relu(F v) { return v < F(0) ? F(0) : v; }  // NaN stays NaN, as torch.relu

template <typename F>
void activate(Activation act, std::int64_t rows, std::int64_t cols, F* h, std::int64_t ldh) {
    for (std::int64_t r = 0; r < rows; ++r) {
        F* __restrict row = h + r * ldh;
        if (act == Activation::Tanh) {
            for (std::int64_t j = 0; j < cols; ++j) row[j] = tanh_approx(row[j]);
        } else {
            for (std::int64_t j = 0; j < cols; ++j) row[j] = relu(row[j]);
        }
    }
}

template <typename F>
void activation_grad(Activation act, std::int64_t rows, std::int64_t cols,
                     const F* dh, std::int64_t lddh, const F* dnext,
                     const F* h, std::int64_t ldh, F* dz, std::int64_t lddz) {
    for (std::int64_t r = 0; r < rows; ++r) {
        const F* hr = h + r * ldh;
        const F* dhr = dh ? dh + r * lddh : nullptr;
        const F* dnr = dnext ? dnext + r * cols : nullptr;
        F* dzr = dz + r * lddz;  // may equal dhr: each element is read before it is written
        for (std::int64_t j = 0; j < cols; ++j) {
            const F g = (dhr ? dhr[j] : F(0)) + (dnr ? dnr[j] : F(0));
            // forward: h = tanh(z)  ->  dz = g * (1 - h^2);  h = relu(z)  ->  dz = g * (h > 0)
            dzr[j] = act == Activation::Tanh ? g * (F(1) - hr[j] * hr[j])
                                             : (hr[j] <= F(0) ? F(0) : g);
        }
    }
}

// The set's widest float vector: the build's flags say which (elementwise_avx512.cpp is compiled
// with -mavx512f, elementwise_avx2.cpp with -mavx2, the baseline with SSE2's 16 bytes).
#if defined(__AVX512F__)
constexpr int kRowBytes = 64;
#elif defined(__AVX__)
constexpr int kRowBytes = 32;
#else
constexpr int kRowBytes = 16;
#endif

// A vector of the set's width of F (float or double), and float's and int32's.
template <typename F>
struct RowVecOf {
    typedef F type __attribute__((vector_size(kRowBytes)));
};
typedef RowVecOf<float>::type RowVec;
typedef RowVecOf<std::int32_t>::type RowVecI;
constexpr int kRowLanes = kRowBytes / static_cast<int>(sizeof(float));

// sums[j] += a[0][j] + a[1][j] + ... down the rows in order, for blocks of up to four vectors of
// columns held in registers over all the rows. Row by row, sums[] went through memory: a load,
// an add and a store per vector and row, each row's add waiting on the store before it (the
// forecaster's bias sums, 768 rows of 32, took 3% of its training step).
template <typename F, int NV>
inline void add_column_block(std::int64_t rows, const F* a, std::int64_t lda, F* sums) {
    typedef typename RowVecOf<F>::type V;
    constexpr int L = kRowBytes / static_cast<int>(sizeof(F));
    V acc[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&acc[v], sums + v * L, sizeof(V));
    for (std::int64_t r = 0; r < rows; ++r, a += lda)
        for (int v = 0; v < NV; ++v) {
            V x;
            std::memcpy(&x, a + v * L, sizeof(V));
            acc[v] += x;
        }
    for (int v = 0; v < NV; ++v) std::memcpy(sums + v * L, &acc[v], sizeof(V));
}

template <typename F>
void add_column_sums(std::int64_t rows, std::int64_t cols, const F* a, std::int64_t lda,
                     F* sums) {
    constexpr std::int64_t L = kRowBytes / static_cast<int>(sizeof(F));
    std::int64_t j = 0;
    for (; j + 4 * L <= cols; j += 4 * L) add_column_block<F, 4>(rows, a + j, lda, sums + j);
    for (; j + L <= cols; j += L) add_column_block<F, 1>(rows, a + j, lda, sums + j);
    for (; j < cols; ++j) {  // the last columns, fewer than a vector's
        F s = sums[j];
        for (std::int64_t r = 0; r < rows; ++r) s += a[r * lda + j];
        sums[j] = s;
    }
}

inline RowVec row_load(const float* p) {
    RowVec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void row_store(float* p, RowVec v) { std::memcpy(p, &v, sizeof v); }
// The lanes combined by op as a tree, log2(lanes) deep: a chain of lanes - 1 dependent adds took
// 64 cycles a row with AVX-512.
template <typename Op>
inline float reduce_lanes(RowVec v, Op op) {
    float t[kRowLanes];
    std::memcpy(t, &v, sizeof v);
    for (int w = kRowLanes / 2; w > 0; w /= 2)
        for (int i = 0; i < w; ++i) t[i] = op(t[i], t[i + w]);
    return t[0];
}

// 2^n for integral n, built in the exponent bits: of a float, or of each lane.
inline float two_to(float n) {
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}
inline RowVec two_to(RowVec n) {
    const RowVecI bits = (__builtin_convertvector(n, RowVecI) + 127) << 23;
    RowVec v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

// exp(x) for x <= 0 (a softmax's shifted logits), of a float or of each lane of a RowVec (the
// same operations, so a row's lanes and its scalar tail round alike), branch-free: x = n ln2 + r,
// |r| <= ln2/2 (about), exp(r) by its degree-6 Taylor polynomial (relative error below 2e-7 on
// that range), times 2^n. Below -87 it flushes to 0 (torch gives a denormal or 0 there; the
// gradient differs by less than 1e-37).
template <typename V>
inline V exp_nonpositive(V x) {
    const V lowest = V{} - 87.0f;
    x = x < lowest ? lowest : x;
    // n = round(x / ln2): adding and subtracting 1.5 * 2^23 rounds to the nearest integer in
    // the default rounding mode (no libm call, so the loop vectorises without SSE4.1)
    const float shifter = 12582912.0f;
    const V n = (x * 1.44269504088896341f + shifter) - shifter;
    const V r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln2 in two parts (Cephes)
    V p = V{} + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * two_to(n);
}

// A float row's softmax numerators: g = exp(x - max(x)), and their sum; max(x) in *mx. Whole
// vectors of lanes, then the tail one by one (as plain loops over the row, the max and the sums
// compiled scalar: 66 ns a row of 64 classes on a Xeon, all but the exp).
inline float softmax_numerators(std::int64_t C, const float* x, float* g, float* mx) {
    const std::int64_t body = C / kRowLanes * kRowLanes;
    float m = x[0];
    if (body) {
        RowVec vm = row_load(x);
        for (std::int64_t j = kRowLanes; j < body; j += kRowLanes) {
            const RowVec v = row_load(x + j);
            vm = v > vm ? v : vm;
        }
        const float vmax = reduce_lanes(vm, [](float a, float b) { return a > b ? a : b; });
        m = vmax > m ? vmax : m;
    }
    for (std::int64_t j = body; j < C; ++j) m = x[j] > m ? x[j] : m;
    RowVec vs = {};
    for (std::int64_t j = 0; j < body; j += kRowLanes) {
        const RowVec e = exp_nonpositive(row_load(x + j) - m);
        row_store(g + j, e);
        vs += e;
    }
    float sum = 0;
    for (std::int64_t j = body; j < C; ++j) sum += g[j] = exp_nonpositive(x[j] - m);
    sum += reduce_lanes(vs, [](float a, float b) { return a + b; });
    *mx = m;
    return sum;
}

inline double softmax_numerators(std::int64_t C, const double* x, double* g, double* mx) {
    double m = x[0];
    for (std::int64_t j = 1; j < C; ++j) m = x[j] > m ? x[j] : m;
    double sum = 0;
    for (std::int64_t j = 0; j < C; ++j) sum += g[j] = std::exp(x[j] - m);
    *mx = m;
    return sum;
}

// The sum of the logs of factors >= 1 (a softmax's sums of exps), without a log per factor:
// their product in float64, brought back to [1, 2) by its exponent bits after each factor, and
// one log at the end. Exact to float64 rounding (~1e-13 relative after 2048 factors). NaN and
// inf reach the result. (A log per row of 64 classes was a sixth of the loss's time.)
struct LogOfProduct {
    double mantissa = 1;
    std::int64_t exponent = 0;
    void times(double f) {
        mantissa *= f;
        std::uint64_t bits;
        std::memcpy(&bits, &mantissa, sizeof bits);
        const std::int64_t e = static_cast<std::int64_t>((bits >> 52) & 0x7ff);
        if (e == 0 || e == 0x7ff) return;  // zero, subnormal, inf or NaN: kept as they are
        exponent += e - 1023;
        bits = (bits & ~(std::uint64_t(0x7ff) << 52)) | (std::uint64_t(1023) << 52);
        std::memcpy(&mantissa, &bits, sizeof bits);
    }
    double log() const { return std::log(mantissa) + double(exponent) * 0.69314718055994530942; }
};

template <typename F>
double softmax_cross_entropy(std::int64_t N, std::int64_t C, const F* logits,
                             const std::int64_t* labels, double scale, F* grad) {
    double shifted_labels = 0;  // sum over rows of logits[label] - max
    // sum over rows of log(sum of exp(logits - max)), rows r in log_sums[r % 4]: four chains of
    // dependent multiplies, not one
    LogOfProduct log_sums[4];
    const F w = F(scale);
    for (std::int64_t r = 0; r < N; ++r) {
        const F* x = logits + r * C;
        F* g = grad + r * C;
        F mx;
        const F sum = softmax_numerators(C, x, g, &mx);
        // nll = log(sum_exp) - shifted[label]
        log_sums[r % 4].times(double(sum));
        shifted_labels += double(x[labels[r]] - mx);
        const F k = w / sum;  // grad = exp / sum_exp * weight, minus weight at the label
        for (std::int64_t j = 0; j < C; ++j) g[j] *= k;
        g[labels[r]] -= w;
    }
    double log_sum = 0;
    for (const LogOfProduct& part : log_sums) log_sum += part.log();
    return (log_sum - shifted_labels) * scale;
}

template <typename F>
ElementwiseKernels<F> make_kernels(const char* isa) {
    return {isa, activate<F>, activation_grad<F>, add_column_sums<F>, softmax_cross_entropy<F>};
}

}  // namespace
}  // namespace rnncore
