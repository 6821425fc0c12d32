// The recurrent loops compiled for AVX-512 (CMake adds -mavx512f -mavx512vl -mavx512bw
// -mavx512dq -mfma to this file only): 64-byte vectors, panels of four (64 floats), and tiles of 6
// rows. Taller tiles fit the 32 registers (2 * rows accumulators and 2 panel vectors) but ran
// slower on AMD Zen 4 (EPYC 9004, whose 512-bit FMAs take two passes through 256-bit units), in
// paired calls of this set over the AVX2 set's time (1 thread, bench/isa_pairs.py, 2026-12-05):
//   rows  S3 forward / train   S4 forward / train   T50 B50 I100 H200 forward / train
//    12     1.12 / 1.07          1.18 / 1.09           1.21 / 1.13
//     8     1.08 / 1.03          1.10 / 1.02           1.16 / 1.07
//     6     0.99 / 1.00          1.00 / 0.99           1.06 / 1.03
// On an Intel Xeon (Sapphire Rapids class: two 512-bit FMA units) the same measure, with the
// weights in groups of panels (PanelGroups), gave (2026-12-07, other work niced beside it):
//   rows  S3 forward / train   S4 forward / train   T50 B50 I100 H200 forward / train
//    12     0.61 / 0.94          0.72 / 0.84           0.77 / 0.80
//     8     0.69 / 0.81          0.70 / 0.78           0.69 / 0.81
//     6     0.66 / 0.80          0.73 / 0.79           0.79 / 0.82
// Taller tiles gain on the forward there but lose on the backward: 6 rows on both.
// Panels of four vectors (64 floats; 24 accumulators, 4 panel vectors and a broadcast of the 32
// registers) instead of two, this build's time over the two-vector build's, paired processes on
// that Xeon (2026-12-07, 7 rounds, forward / train): S2 0.92 / 0.97, S3 0.90 / 0.94, S4 0.96 /
// 0.96, T50 B50 I100 H200 0.91 / 0.96, T64 B32 I64 H128 0.94 / 0.99; and with the 2- and 3-row
// tiles' panel rows loaded one after the other (their accumulators had spilled), S2 0.92 / 0.94,
// T50 B50 I100 H200 0.90 / 0.97 and T64 B32 I64 H128 0.92 / 0.97 more. (A last panel of at most
// two vectors' columns computes only those.) Not measured on AMD Zen 4.
#define RNNCORE_VECTOR_BYTES 64
#define RNNCORE_TILE_ROWS 6
#define RNNCORE_PANEL_VECTORS 4
// The weight gradients' GEMMs (gemm_tn_impl.h) on these tiles, where C is 64x64 to 256 KiB: the
// char model's training step (rnncore bench --model-step) took 0.95-0.96x the time it took with
// OpenBLAS, S2's RNN training 0.96x, S3's 0.94-0.99x, T37 B256 I61 H97 1.01x, T50 B50 I100 H200
// 1.01x (Xeon, paired processes, 7 rounds, 2026-12-07). Not measured on AMD Zen 4.
#define RNNCORE_TN_TILES 1
// The head's GEMMs (gemm_rows_impl.h: z = a w^T + b and da = dz w) on the forward tiles: the
// char model's training step took 0.973x the time it took with OpenBLAS (0.92-1.02; in-process
// toggle, 11 rounds of 500 steps, Xeon, 2026-12-07). The AVX2 set's tiles were slower than OpenBLAS
// there (1.13-1.46x on the same shapes, RNNCORE_ISA=avx2 on the Xeon), so that set keeps BLAS.
// Not measured on AMD Zen 4.
#define RNNCORE_ROWS_TILES 1
#include "recurrent_impl.h"

namespace rnncore {

template <typename F>
const RecurrentKernels<F>& recurrent_avx512() {
    static const RecurrentKernels<F> k = make_recurrent_kernels<F>("avx512");
    return k;
}

template const RecurrentKernels<float>& recurrent_avx512<float>();
template const RecurrentKernels<double>& recurrent_avx512<double>();

}  // namespace rnncore
