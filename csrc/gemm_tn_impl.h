// The weight gradients' GEMM on the recurrence's micro-tiles: C[M,N] += A^T B over a long K
// (dW_hh = dz^T h_prev over all T*B rows of a chunk, the head's dw = dz^T a). Part of
// recurrent_impl.h, which includes it after the tile primitives; compiled once per set.
//
// OpenBLAS copies both operands into its own layouts first, and for these shapes (M, N ~ 64-512,
// K ~ 2048) it reached 77-83% of its own 1024^3 rate on a Xeon (2026-12-07), a fifth of the time
// in the copies. Here A needs no copy: a row tile of C (rows i0.., columns of A) broadcasts
// ROWS consecutive floats from each row k of A. B's rows come in blocks of kTnDepth, packed
// into zero-padded panels of kNR columns (a copy of N floats per k, for M * N FMAs), which stay
// in L1 while every row tile of C runs over them. Each tile loads its part of C into the
// accumulators, adds the block's k in order and stores it back.
//
// Each output's sum runs over k in order, for every tile height (no split chains), starting from
// C (from zero, then added to C, in a last panel of fewer than kNR columns): it depends on nothing
// but the problem, never on threads. C outside kTnMinSide..kTnOutputBytes, and every C in the sets
// that do not define RNNCORE_TN_TILES, goes to BLAS.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rnncore/blas.h"

namespace rnncore {
namespace {

// Rows k of B per packed block: a panel of them fills 16 KiB, half the smallest L1 data cache
// of the CPUs rnncore runs on (32 KiB: AMD Zen 4; the Xeons have 48).
template <typename F>
constexpr std::int64_t kTnDepth = 16384 / (kNR<F> * static_cast<std::int64_t>(sizeof(F)));

// acc[r] += sum over k < K of a[k * lda + r] * panel[k] (panel rows kNR apart), k in order.
template <typename F, int ROWS, int NV>
__attribute__((always_inline)) inline void accumulate_tn(Vec<F> (&acc)[ROWS][NV], std::int64_t K,
                                                         const F* a, std::int64_t lda, const F* panel) {
    for (std::int64_t k = 0; k < K; ++k, a += lda, panel += kNR<F>) {
        Vec<F> b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) b[v] = load(panel + v * kLanes<F>);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
            const Vec<F> s = splat(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[r][v] += s * b[v];
        }
    }
}

// C[0:ROWS, 0:NV vectors] += A[0:K, 0:ROWS]^T panel (a: A's first column of the tile), whole
// vectors: a last panel of fewer columns sums into gemm_tn's scratch of whole panels.
template <typename F, int ROWS, int NV>
void tn_tile(std::int64_t K, const F* a, std::int64_t lda, const F* panel, F* c, std::int64_t ldc) {
    Vec<F> acc[ROWS][NV];
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = load(c + r * ldc + v * kLanes<F>);
    accumulate_tn<F, ROWS, NV>(acc, K, a, lda, panel);
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) store(c + r * ldc + v * kLanes<F>, acc[r][v]);
}

// The height of the next row tile of C (gemm_tn's and gemm_rows') with `left` rows to go: kMR,
// except that a remainder of at most kSharedRest rows after it is shared with it as two tiles
// of about equal height (a tile of 1-3 rows has too few independent FMA chains for the FMA
// latency).
constexpr std::int64_t kSharedRest = 3;
inline std::int64_t balanced_tile_height(std::int64_t left) {
    if (left <= kMR) return left;
    return left - kMR <= kSharedRest ? (left + 1) / 2 : kMR;
}

// B[0:K, 0:N] (row stride ldb) into panels of kNR columns, each K rows of kNR, zero-padded, by
// vectors: a memcpy of a variable width compiled to `rep movsq`, which took 70% of the packing's
// time for rows of 256 bytes.
template <typename F>
void pack_rows(std::int64_t K, std::int64_t N, const F* B, std::int64_t ldb, F* out) {
    const int NR = kNR<F>;
    for (std::int64_t n0 = 0; n0 < N; n0 += NR) {
        const std::int64_t w = std::min<std::int64_t>(NR, N - n0);
        const F* b = B + n0;
        for (std::int64_t k = 0; k < K; ++k, out += NR, b += ldb)
#pragma GCC unroll 4
            for (int v = 0; v < kPanelVectors; ++v) {
                const std::int64_t lanes = w - v * kLanes<F>;
                store(out + v * kLanes<F>, lanes >= kLanes<F> ? load(b + v * kLanes<F>)
                                           : lanes > 0 ? load_n(b + v * kLanes<F>, static_cast<int>(lanes))
                                                       : Vec<F>{});
            }
    }
}

// The sizes of C that gemm_tn runs here, the rest going to BLAS. Up to kTnOutputBytes: C is
// loaded and stored by every block of B's rows, and stays in L2 beside those blocks. Beyond, BLAS's
// blocking over M and N wins: at M = N = 1024 (4 MiB of C, whose rows 4 KiB apart also collide in
// L2's sets) these tiles reached 62% of sgemm's rate against OpenBLAS's 99%, at M = N = 512 79%
// against 97%. At least kTnMinSide rows and columns: smaller C has too few tiles to pay for the
// packing, and OpenBLAS was faster (K = 768: M = N = 32 1.07x these tiles' time, N = 1 2.5x;
// the forecaster's training step took 1.14x as long).
constexpr std::int64_t kTnOutputBytes = 256 * 1024;
constexpr std::int64_t kTnMinSide = 64;
// Whether the set runs gemm_tn on its tiles at all (RNNCORE_TN_TILES, defined by the set's file):
// the AVX-512 set does; the AVX2 set's tiles of 12 accumulators were slower than OpenBLAS (the
// char model's training step 1.10x as long, S2's 1.06x, on a Xeon with RNNCORE_ISA=avx2,
// 2026-12-07), and the baseline's no faster.
#ifndef RNNCORE_TN_TILES
#define RNNCORE_TN_TILES 0
#endif

// C[M,N] += A^T B: A [K,M] (row stride lda), B [K,N] (row stride ldb), C [M,N] (row stride ldc).
// For each block of kTnDepth rows of B: the block packed, then every row tile of C over every
// panel. C beyond kTnOutputBytes goes to BLAS (its own order of the sum over k).
template <typename F>
void gemm_tn(std::int64_t M, std::int64_t N, std::int64_t K, const F* A, std::int64_t lda,
             const F* B, std::int64_t ldb, F* C, std::int64_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    if (!RNNCORE_TN_TILES || M * N * static_cast<std::int64_t>(sizeof(F)) > kTnOutputBytes ||
        M < kTnMinSide || N < kTnMinSide)
        return blas::gemm<F>(blas::Op::T, blas::Op::N, M, N, K, F(1), A, lda, B, ldb, F(1), C, ldc);
    const int NR = kNR<F>;
    const std::int64_t depth = kTnDepth<F>, panels = panel_count<F>(N);
    // A last panel of fewer than kNR columns sums into `edge` [M, kNR], zeroed, added to C at the
    // end: its tiles then load and store whole vectors (its columns past N stay zero; partial
    // vectors went through a buffer one lane at a time, and T50 B50 I100 H200's training step
    // took 4% longer than with BLAS).
    const int edge_cols = static_cast<int>(N - (panels - 1) * NR);
    const bool edge = edge_cols < NR;
    thread_local std::vector<F> work;  // one block of B in panels, then `edge`; grows only
    const std::int64_t b_size = panels * NR * depth;
    if (work.size() < static_cast<std::size_t>(b_size + (edge ? M * NR : 0))) work.resize(b_size + (edge ? M * NR : 0));
    F* const packed = work.data();
    F* const edge_sum = packed + b_size;
    if (edge) std::fill_n(edge_sum, M * NR, F(0));
    for (std::int64_t k0 = 0; k0 < K; k0 += depth) {
        const std::int64_t kb = std::min(depth, K - k0);
        pack_rows<F>(kb, N, B + k0 * ldb, ldb, packed);
        for (std::int64_t p = 0; p < panels; ++p) {
            const int ncols = static_cast<int>(std::min<std::int64_t>(NR, N - p * NR));
            const bool to_edge = edge && p == panels - 1;
            F* const c = to_edge ? edge_sum : C + p * NR;
            const std::int64_t ldc_p = to_edge ? NR : ldc;
            const F* panel = packed + p * kb * NR;
            for (std::int64_t i0 = 0, h = 0; i0 < M; i0 += h) {
                h = balanced_tile_height(M - i0);
                by_height(h, [&](auto rows) {
                    by_vectors<F>(ncols, [&](auto nv) {
                        tn_tile<F, rows.value, nv.value>(kb, A + k0 * lda + i0, lda, panel, c + i0 * ldc_p, ldc_p);
                    });
                });
            }
        }
    }
    if (edge)
        for (std::int64_t i = 0; i < M; ++i)
            for (int j = 0; j < edge_cols; ++j) C[i * ldc + (panels - 1) * NR + j] += edge_sum[i * NR + j];
}

}  // namespace
}  // namespace rnncore
