// Row-major GEMM over the prefixed CBLAS of scipy-openblas32 (every symbol is `scipy_`-prefixed),
// with 64-bit sizes checked against BLAS's 32-bit int.
#pragma once

#include <cstdint>

namespace rnncore::blas {

enum class Op { N, T };  // use A as stored, or transposed

// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C; row strides lda, ldb, ldc.
// Does nothing when M or N is 0; scales C by beta when K is 0.
template <typename F>
void gemm(Op opA, Op opB, std::int64_t M, std::int64_t N, std::int64_t K, F alpha,
          const F* A, std::int64_t lda, const F* B, std::int64_t ldb, F beta,
          F* C, std::int64_t ldc);

void set_num_threads(int n);
int get_num_threads();
const char* config();    // OpenBLAS build configuration string
const char* corename();  // the CPU kernel set OpenBLAS chose at runtime

}  // namespace rnncore::blas
