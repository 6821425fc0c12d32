// Softmax cross-entropy and its gradient (rnncore/losses.h), row by row while the row is in
// cache: the row max, the exponentials (written into grad), their sum, then the scaling.
#include "rnncore/losses.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace rnncore {
namespace {

// exp(x) for x <= 0 (a softmax's shifted logits), float, branch-free so that the row loop
// vectorises: x = n ln2 + r, |r| <= ln2/2 (about), exp(r) by its degree-6 Taylor polynomial (relative
// error below 2e-7 on that range), times 2^n built in the exponent bits. Below -87 it flushes
// to 0 (torch gives a denormal or 0 there; the gradient differs by less than 1e-37).
inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    // n = round(x / ln2): adding and subtracting 1.5 * 2^23 rounds to the nearest integer in
    // the default rounding mode (no libm call, so the loop vectorises without SSE4.1)
    const float shifter = 12582912.0f;
    const float n = (x * 1.44269504088896341f + shifter) - shifter;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln2 in two parts (Cephes)
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    float two_n;
    std::memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

inline float exp_shifted(float x) { return exp_nonpositive(x); }
inline double exp_shifted(double x) { return std::exp(x); }

}  // namespace

template <typename F>
double softmax_cross_entropy(std::int64_t N, std::int64_t C, const F* logits,
                             const std::int64_t* labels, double scale, F* grad) {
    if (N < 0 || C < 1)
        throw std::invalid_argument("softmax_cross_entropy: expected N >= 0 and C >= 1, got N = " +
                                    std::to_string(N) + ", C = " + std::to_string(C));
    for (std::int64_t r = 0; r < N; ++r)
        if (labels[r] < 0 || labels[r] >= C)
            throw std::invalid_argument("labels: expected classes in [0, " + std::to_string(C) +
                                        "), got " + std::to_string(labels[r]));
    double loss = 0;
    const F w = F(scale);
    for (std::int64_t r = 0; r < N; ++r) {
        const F* x = logits + r * C;
        F* g = grad + r * C;
        // The max and the sum in 8 lanes each: a float reduction in one chain does not
        // vectorise (the compiler may not reorder float adds), 8 independent ones do.
        constexpr std::int64_t kLanes = 8;
        const std::int64_t body = C / kLanes * kLanes;
        F lane[kLanes];
        for (std::int64_t k = 0; k < kLanes; ++k) lane[k] = x[0];
        for (std::int64_t j = 0; j < body; j += kLanes)
            for (std::int64_t k = 0; k < kLanes; ++k) lane[k] = x[j + k] > lane[k] ? x[j + k] : lane[k];
        F mx = x[0];
        for (std::int64_t k = 0; k < kLanes; ++k) mx = lane[k] > mx ? lane[k] : mx;
        for (std::int64_t j = body; j < C; ++j) mx = x[j] > mx ? x[j] : mx;
        for (std::int64_t j = 0; j < C; ++j) g[j] = exp_shifted(x[j] - mx);  // exp(logits - max)
        for (std::int64_t k = 0; k < kLanes; ++k) lane[k] = 0;
        for (std::int64_t j = 0; j < body; j += kLanes)
            for (std::int64_t k = 0; k < kLanes; ++k) lane[k] += g[j + k];
        F sum = 0;
        for (std::int64_t j = body; j < C; ++j) sum += g[j];
        for (std::int64_t k = 0; k < kLanes; ++k) sum += lane[k];
        // nll = log(sum_exp) - shifted[label]
        loss += std::log(double(sum)) - double(x[labels[r]] - mx);
        const F k = w / sum;  // grad = exp / sum_exp * weight, minus weight at the label
        for (std::int64_t j = 0; j < C; ++j) g[j] *= k;
        g[labels[r]] -= w;
    }
    return loss * scale;
}

template double softmax_cross_entropy<float>(std::int64_t, std::int64_t, const float*,
                                             const std::int64_t*, double, float*);
template double softmax_cross_entropy<double>(std::int64_t, std::int64_t, const double*,
                                              const std::int64_t*, double, double*);

}  // namespace rnncore
