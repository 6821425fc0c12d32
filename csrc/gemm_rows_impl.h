// The head's GEMMs over all its rows on the recurrence's forward tiles: C[M,N] = bias + A op(B),
// for the linear layers' z = a w^T + b (op(B) = w^T) and their input gradient da = dz w
// (op(B) = w, no bias). Part of recurrent_impl.h, which includes it after the tile primitives;
// compiled once per set.
//
// OpenBLAS copies A (all M rows) into its own layout on every call, and for these shapes (M in
// the thousands, K and N ~ 64-256) its kernel waits on that copy. Here op(B) is packed once into
// panels of kNR columns with the bias row after them (pack_panels, as pack_forward packs the
// RNN's weights), and A's rows are read where they are: a tile of kMR rows runs over every panel
// (the panels stay in L1 or L2), as forward_loop's tiles do within a step.
//
// Each output's sum runs over k in the order of its tile's height (forward_tile), and the tiles
// are the same however the rows are shared by threads (slices of whole units, below): the bits
// do not depend on the thread count. Sizes below kRowsMin*, a packed op(B) beyond the cache budget for packed weights
// (weight_block_bytes), and every size in the sets that do not define RNNCORE_ROWS_TILES, go to
// BLAS.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "rnncore/blas.h"
#include "rnncore/thread_pool.h"

namespace rnncore {
namespace {

// The sizes gemm_rows runs on its tiles: the packed op(B) (K + 1 rows of every panel) stays in L2
// while all of A's rows stream past it, so at most weight_block_bytes(); at least kRowsMinSide
// columns and depth, kRowsMinRows rows and kRowsMinProduct multiply-adds, below which the tiles
// were no faster than BLAS, in paired calls of linear_forward / linear_backward (whose da is
// this GEMM), this set's time over BLAS's on a Xeon (2026-12-07, 1 thread, 9 rounds):
//   M x K -> N        forward / backward    M x K -> N        forward / backward
//   2048 x 128 -> 64   0.78 / 0.90           2048 x 32 -> 32    0.73 / 0.95
//   2048 x 64 -> 128   0.83 / 0.88            768 x 48 -> 32    0.86 / 0.94
//    768 x 32 -> 32    0.78 / 1.08            768 x 32 -> 16    0.95 / 1.18
//    768 x 16 -> 1     1.96 / 1.25            200 x 64 -> 64    0.83 / 1.02
// (the first is the char model's head).
// On 2 threads the tiles' slices took 0.50-0.57x BLAS's time for the forward at M = 1600-2048.
constexpr std::int64_t kRowsMinSide = 32;
constexpr std::int64_t kRowsMinRows = 4 * kMR;
constexpr std::int64_t kRowsMinProduct = 1 << 20;
#ifndef RNNCORE_ROWS_TILES
#define RNNCORE_ROWS_TILES 0
#endif

// C[M,N] = bias + A op(B): A [M,K] (row stride lda); op(B) [K,N] is B [K,N] (row stride ldb), or
// with b_transposed the transpose of B [N,K] (row stride ldb); bias [N] or null (zero); C [M,N]
// (row stride ldc), written.
template <typename F>
void gemm_rows(std::int64_t M, std::int64_t N, std::int64_t K, const F* A, std::int64_t lda,
               const F* B, std::int64_t ldb, bool b_transposed, const F* bias, F* C, std::int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    const int NR = kNR<F>;
    const std::int64_t panels = panel_count<F>(N);
    const std::int64_t packed_size = panels * NR * (K + 1);  // the panels, then the bias row
    if (!RNNCORE_ROWS_TILES || M < kRowsMinRows || N < kRowsMinSide || K < kRowsMinSide ||
        M * N * K < kRowsMinProduct ||
        packed_size * static_cast<std::int64_t>(sizeof(F)) > weight_block_bytes()) {
        for (std::int64_t r = 0; bias && r < M; ++r)  // C = bias, then C += A op(B); or C = A op(B)
            for (std::int64_t j = 0; j < N; ++j) C[r * ldc + j] = bias[j];
        return blas::gemm<F>(blas::Op::N, b_transposed ? blas::Op::T : blas::Op::N, M, N, K, F(1), A,
                             lda, B, ldb, bias ? F(1) : F(0), C, ldc);
    }
    thread_local std::vector<F> work;  // grows only
    if (work.size() < static_cast<std::size_t>(packed_size)) work.resize(packed_size);
    F* const packed = work.data();
    if (b_transposed)
        pack_panels<F>(K, N, [&](std::int64_t k, std::int64_t n) { return B[n * ldb + k]; }, packed);
    else
        pack_rows<F>(K, N, B, ldb, packed);
    F* const bias_row = packed + panels * NR * K;
    for (std::int64_t n = 0; n < panels * NR; ++n) bias_row[n] = bias && n < N ? bias[n] : F(0);

    // Rows in slices of whole units, one per thread when the product is worth waking one for (as
    // chunk_gradients judges). A unit is kMR rows, except the last: M's remainder of up to
    // kSharedRest rows goes with the tile before it, which balanced_tile_height shares with it
    // (left alone, its rows would sum in another order). Every row then lands in the same tile
    // however the rows are shared.
    const std::int64_t rest = M % kMR, units = M / kMR + (rest > kSharedRest ? 1 : 0);
    const bool threads = 2 * M * N * K >= 4'000'000;
    const std::int64_t slices = std::min<std::int64_t>(units, threads ? get_num_threads() : 1);
    parallel_for(static_cast<int>(slices), [&](int s) {
        const std::int64_t last = units * (s + 1) / slices;
        const std::int64_t end = last == units ? M : last * kMR;
        TileRows<F> t;
        for (std::int64_t i0 = units * s / slices * kMR, h = 0; i0 < end; i0 += h) {
            h = balanced_tile_height(end - i0);
            for (std::int64_t r = 0; r < h; ++r) t.a[r] = A + (i0 + r) * lda, t.out[r] = C + (i0 + r) * ldc;
            for (std::int64_t p = 0; p < panels; ++p) {
                const int ncols = static_cast<int>(std::min<std::int64_t>(NR, N - p * NR));
                by_height(h, [&](auto rows) {
                    by_vectors<F>(ncols, [&](auto nv) {
                        forward_tile<F, rows.value, nv.value>(K, 0, t, packed + p * NR * K, bias_row + p * NR,
                                                              p * NR, ncols, nullptr);
                    });
                });
            }
        }
    }, threads);
}

}  // namespace
}  // namespace rnncore
