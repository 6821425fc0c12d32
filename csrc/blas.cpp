#include "rnncore/blas.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include <cblas.h>

// scipy-openblas32 prefixes every symbol; build `scipy_cblas_sgemm` from `cblas_sgemm`.
#define RNNCORE_PASTE2(a, b) a##b
#define RNNCORE_PASTE(a, b) RNNCORE_PASTE2(a, b)
#define BLAS(name) RNNCORE_PASTE(BLAS_SYMBOL_PREFIX, name)

namespace rnncore::blas {
namespace {

blasint to_blas_int(std::int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX)
        throw std::invalid_argument(std::string("gemm: ") + what + " = " + std::to_string(v) +
                                    " does not fit BLAS's 32-bit int");
    return static_cast<blasint>(v);
}

CBLAS_TRANSPOSE trans(Op op) { return op == Op::N ? CblasNoTrans : CblasTrans; }

// Fill in the BLAS arguments shared by sgemm and dgemm, checking every size.
struct GemmArgs {
    blasint M, N, K, lda, ldb, ldc;
    GemmArgs(Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k,
             std::int64_t la, std::int64_t lb, std::int64_t lc)
        : M(to_blas_int(m, "M")), N(to_blas_int(n, "N")), K(to_blas_int(k, "K")),
          lda(to_blas_int(la, "lda")), ldb(to_blas_int(lb, "ldb")), ldc(to_blas_int(lc, "ldc")) {
        // Row-major: op(A) is [M,K], so A is stored [M,K] (N) or [K,M] (T).
        const std::int64_t a_cols = opA == Op::N ? k : m;
        const std::int64_t b_cols = opB == Op::N ? n : k;
        if (la < std::max<std::int64_t>(1, a_cols) || lb < std::max<std::int64_t>(1, b_cols) ||
            lc < std::max<std::int64_t>(1, n))
            throw std::invalid_argument("gemm: a leading dimension is smaller than its row");
    }
};

}  // namespace

template <>
void gemm<float>(Op opA, Op opB, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                 const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
                 float* C, std::int64_t ldc) {
    if (M == 0 || N == 0) return;
    const GemmArgs g(opA, opB, M, N, K, lda, ldb, ldc);
    BLAS(cblas_sgemm)(CblasRowMajor, trans(opA), trans(opB), g.M, g.N, g.K, alpha, A, g.lda, B,
                      g.ldb, beta, C, g.ldc);
}

template <>
void gemm<double>(Op opA, Op opB, std::int64_t M, std::int64_t N, std::int64_t K, double alpha,
                  const double* A, std::int64_t lda, const double* B, std::int64_t ldb,
                  double beta, double* C, std::int64_t ldc) {
    if (M == 0 || N == 0) return;
    const GemmArgs g(opA, opB, M, N, K, lda, ldb, ldc);
    BLAS(cblas_dgemm)(CblasRowMajor, trans(opA), trans(opB), g.M, g.N, g.K, alpha, A, g.lda, B,
                      g.ldb, beta, C, g.ldc);
}

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: expected n >= 1, got " + std::to_string(n));
    BLAS(openblas_set_num_threads)(n);
}

int get_num_threads() { return BLAS(openblas_get_num_threads)(); }

const char* config() { return BLAS(openblas_get_config)(); }

const char* corename() { return BLAS(openblas_get_corename)(); }

}  // namespace rnncore::blas
