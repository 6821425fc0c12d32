// The time loops of the forward and backward passes for one slice of the batch, built on a
// register-blocked micro-kernel over weights packed once per call. Compiled once per instruction
// set (recurrent_baseline.cpp, recurrent_avx2.cpp); everything here has internal linkage.
//
// GEMM blocking: C[rows, H] = A[rows, K] @ Wp[K, H] where Wp is packed in panels of NR columns,
// each panel K rows of NR contiguous values (zero-padded past H), NR = kPanelVectors vectors (2;
// 4 in the AVX-512 set). A micro-tile computes ROWS <= MR rows by one panel, ROWS * NV
// accumulators in registers, NV the vectors the panel's columns need. The order of the sum
// over k depends only on the tile's height (in order; two interleaved chains for 2- and 3-row
// tiles, four for 1-row tiles),
// and tiles always start at rows that are multiples of MR, so a row always lands in the same
// kind of tile: results do not depend on how the batch is split across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "elementwise_impl.h"
#include "rnncore/recurrent.h"
#include "rnncore/thread_pool.h"

namespace rnncore {
namespace {

// The including file defines the vector width and the micro-tile height of its set:
// RNNCORE_VECTOR_BYTES (32: baseline and AVX2; 64: AVX-512) and RNNCORE_TILE_ROWS (the rows of
// a full tile, whose 2 * rows accumulators and two panel vectors fit the set's registers: 16 of
// them with AVX2, 32 with AVX-512).
#ifndef RNNCORE_VECTOR_BYTES
#error "define RNNCORE_VECTOR_BYTES and RNNCORE_TILE_ROWS before including recurrent_impl.h"
#endif
constexpr int kVectorBytes = RNNCORE_VECTOR_BYTES;
// Lanes-vectors per panel: RNNCORE_PANEL_VECTORS where the set defines it, else 2.
#ifndef RNNCORE_PANEL_VECTORS
#define RNNCORE_PANEL_VECTORS 2
#endif
constexpr int kPanelVectors = RNNCORE_PANEL_VECTORS;
template <typename F>
struct VecOf {
    typedef F type __attribute__((vector_size(kVectorBytes)));
};

template <typename F>
using Vec = typename VecOf<F>::type;
template <typename F>
constexpr int kLanes = static_cast<int>(kVectorBytes / sizeof(F));
template <typename F>
constexpr int kNR = kPanelVectors * kLanes<F>;  // columns per panel
constexpr int kMR = RNNCORE_TILE_ROWS;  // rows per full micro-tile
template <typename F>
constexpr std::int64_t panel_count(std::int64_t n) { return (n + kNR<F> - 1) / kNR<F>; }
static_assert(kNR<float> * sizeof(float) <= 256, "recurrent.h sizes workspaces for panels of at most 256 bytes");

template <typename F>
inline Vec<F> load(const F* p) {
    Vec<F> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <typename F>
inline void store(F* p, Vec<F> v) {
    std::memcpy(p, &v, sizeof v);
}
// One broadcast instruction (a loop over lanes or `Vec{} + s` compile to more).
#if RNNCORE_VECTOR_BYTES == 64
inline Vec<float> splat(float s) { return Vec<float>{s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s}; }
inline Vec<double> splat(double s) { return Vec<double>{s, s, s, s, s, s, s, s}; }
#else
inline Vec<float> splat(float s) { return Vec<float>{s, s, s, s, s, s, s, s}; }
inline Vec<double> splat(double s) { return Vec<double>{s, s, s, s}; }
#endif

// Pack columns of a [K, N] operand given as op(W) into panels of kNR columns.
// get(k, n) returns op(W)[k, n]; n >= N is zero padding.
template <typename F, typename Get>
void pack_panels(std::int64_t K, std::int64_t N, Get get, F* out) {
    const int NR = kNR<F>;
    for (std::int64_t n0 = 0; n0 < N; n0 += NR)
        for (std::int64_t k = 0; k < K; ++k)
            for (int j = 0; j < NR; ++j) *out++ = n0 + j < N ? get(k, n0 + j) : F(0);
}

template <typename F>
void pack_forward(std::int64_t I, std::int64_t H, const F* W_ih, const F* W_hh, const F* b_ih,
                  const F* b_hh, F* packed) {
    // op(W)[k, n] = [W_ih | W_hh]^T: rows 0..I-1 multiply x_t, rows I..I+H-1 multiply h_prev.
    pack_panels<F>(I + H, H, [&](std::int64_t k, std::int64_t n) {
        return k < I ? W_ih[n * I + k] : W_hh[n * H + (k - I)];
    }, packed);
    // After the panels: the summed bias, one padded row of kNR per panel.
    F* bias = packed + panel_count<F>(H) * kNR<F> * (I + H);
    for (std::int64_t n = 0; n < panel_count<F>(H) * kNR<F>; ++n)
        bias[n] = (b_ih && n < H) ? b_ih[n] + b_hh[n] : F(0);
}

template <typename F>
void pack_backward(std::int64_t I, std::int64_t H, const F* W_ih, const F* W_hh, F* packed) {
    // [W_hh | W_ih] as panels over its H + I columns: dz @ W_hh (into the previous step), then
    // dz @ W_ih (dx), each padded to whole panels.
    pack_panels<F>(H, H, [&](std::int64_t k, std::int64_t n) { return W_hh[k * H + n]; }, packed);
    if (W_ih) pack_panels<F>(H, I, [&](std::int64_t k, std::int64_t n) { return W_ih[k * I + n]; },
                   packed + panel_count<F>(H) * kNR<F> * H);
}

// Packed weights to bring into L2 while full tiles compute over other panels: `per` lines at
// every kStride k of a tile, until the range is done (spread evenly by `spread`).
struct WeightPrefetch {
    static constexpr int kStride = 4;
    const char* next = nullptr;
    const char* end = nullptr;
    int per = 0;
    // The lines of [p, p + bytes), over `tiles` tile-panel products of K rows each.
    void spread(const void* p, std::int64_t bytes, std::int64_t tiles, std::int64_t K) {
        next = static_cast<const char*>(p);
        end = next + (bytes > 0 ? bytes : 0);
        const std::int64_t lines = (bytes + 63) / 64, slots = std::max<std::int64_t>(1, tiles * (K / kStride));
        per = static_cast<int>(std::min<std::int64_t>(8, (lines + slots - 1) / slots));
    }
    inline void some() {
        for (int i = 0; i < per && next < end; ++i, next += 64) __builtin_prefetch(next, 0, 2);
    }
};

// acc[r] += A[r][0:K] @ panel[0:K, 0:NV lanes-vectors] for ROWS rows of A given by pointers
// (panel rows kNR apart); returns the panel advanced by K rows. The order of the sum of each
// output depends only on ROWS: in order of k for full tiles.
template <typename F, int ROWS, int NV>
__attribute__((always_inline)) inline const F* accumulate(Vec<F> (&acc)[ROWS][NV], std::int64_t K, const F* const* rows,
                           const F* panel) {
    if constexpr (ROWS == 1) {
        // One row has only NV FMA chains, too few to hide the FMA latency: sum k = 0, 1, 2, 3
        // (mod 4) in separate chains and add them at the end. This order depends only on the
        // tile height, which depends only on the batch, never on the thread count.
        const F* A = rows[0];
        Vec<F> part[4][NV] = {};
        std::int64_t k = 0;
        for (; k + 4 <= K; k += 4, panel += 4 * kNR<F>) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const Vec<F> a = splat(A[k + j]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) part[j][v] += a * load(panel + j * kNR<F> + v * kLanes<F>);
            }
        }
        for (; k < K; ++k, panel += kNR<F>) {
            const Vec<F> a = splat(A[k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) part[0][v] += a * load(panel + v * kLanes<F>);
        }
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[0][v] += (part[0][v] + part[1][v]) + (part[2][v] + part[3][v]);
        return panel;
    }
    const F* A[ROWS];
    for (int r = 0; r < ROWS; ++r) A[r] = rows[r];
    if constexpr (ROWS == 2 || ROWS == 3) {
        // 2 or 3 rows of two vectors are still too few chains (the FMA latency needs ~10): sum
        // even and odd k separately and add them at the end.
        Vec<F> odd[ROWS][NV] = {};
        std::int64_t k = 0;
        for (; k + 2 <= K; k += 2, panel += 2 * kNR<F>) {
            // the even k's panel row, then the odd k's in the same registers: 3 rows of 4
            // vectors hold 24 accumulators, too many to keep both rows' vectors beside them
            Vec<F> b[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) b[v] = load(panel + v * kLanes<F>);
            for (int r = 0; r < ROWS; ++r) {
                const Vec<F> a = splat(A[r][k]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
            }
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) b[v] = load(panel + kNR<F> + v * kLanes<F>);
            for (int r = 0; r < ROWS; ++r) {
                const Vec<F> a1 = splat(A[r][k + 1]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) odd[r][v] += a1 * b[v];
            }
        }
        for (; k < K; ++k, panel += kNR<F>) {
            Vec<F> b[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) b[v] = load(panel + v * kLanes<F>);
            for (int r = 0; r < ROWS; ++r) {
                const Vec<F> a = splat(A[r][k]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
            }
        }
        for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[r][v] += odd[r][v];
        return panel;
    }
    for (std::int64_t k = 0; k < K; ++k, panel += kNR<F>) {
        Vec<F> b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) b[v] = load(panel + v * kLanes<F>);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
            const Vec<F> a = splat(A[r][k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
        }
    }
    return panel;
}

// accumulate for full tiles (ROWS > 3), issuing pf's prefetches as it goes; a loop of its own, so
// that the plain one (every tile of weights that fit in one group) compiles as it did before.
template <typename F, int ROWS, int NV>
__attribute__((always_inline)) inline const F* accumulate_prefetching(Vec<F> (&acc)[ROWS][NV], std::int64_t K, const F* const* rows,
                                       const F* panel, WeightPrefetch& pf) {
    static_assert(ROWS > 3, "the in-order sum of full tiles");
    constexpr int S = WeightPrefetch::kStride;
    const F* A[ROWS];
    for (int r = 0; r < ROWS; ++r) A[r] = rows[r];
    std::int64_t k = 0;
    for (; k + S <= K; k += S) {
        pf.some();
#pragma GCC unroll 4
        for (int j = 0; j < S; ++j, panel += kNR<F>) {
            Vec<F> b[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) b[v] = load(panel + v * kLanes<F>);
#pragma GCC unroll 16
            for (int r = 0; r < ROWS; ++r) {
                const Vec<F> a = splat(A[r][k + j]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
            }
        }
    }
    const F* tail[ROWS];
    for (int r = 0; r < ROWS; ++r) tail[r] = A[r] + k;
    return accumulate<F, ROWS, NV>(acc, K - k, tail, panel);
}

// Full tiles prefetch while pf has lines left; the rest accumulate plainly.
template <typename F, int ROWS, int NV>
__attribute__((always_inline)) inline const F* accumulate_tile(Vec<F> (&acc)[ROWS][NV], std::int64_t K, const F* const* rows,
                                const F* panel, WeightPrefetch* pf) {
    if constexpr (ROWS > 3) {
        if (pf && pf->next < pf->end) return accumulate_prefetching<F, ROWS, NV>(acc, K, rows, panel, *pf);
    }
    return accumulate<F, ROWS, NV>(acc, K, rows, panel);
}

// Write a tile's ncols <= NV * kLanes columns through `emit(row, col0, lanes-vector, lanes)`;
// partial vectors go through a small buffer. Inlining is forced (here and on backward_tile's
// epilogue): GCC left the fused epilogue out of line, a call per vector, and the lengths backward
// took ~5% longer.
template <typename F, int ROWS, int NV, typename Emit>
__attribute__((always_inline)) inline void emit_tile(Vec<F> (&acc)[ROWS][NV], int ncols, Emit emit) {
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            const int lanes = ncols - v * kLanes<F>;
            emit(r, v * kLanes<F>, acc[r][v], lanes < kLanes<F> ? lanes : kLanes<F>);
        }
}

// Store `n` lanes of v at p (all of them when n == lanes).
template <typename F>
inline void store_n(F* p, Vec<F> v, int n) {
    if (n == kLanes<F>) return store(p, v);
    F tmp[kLanes<F>];
    store(tmp, v);
    for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
template <typename F>
inline Vec<F> load_n(const F* p, int n) {
    if (n == kLanes<F>) return load(p);
    F tmp[kLanes<F>] = {};
    for (int i = 0; i < n; ++i) tmp[i] = p[i];
    return load(tmp);
}

// Rows to bring into the cache while a tile computes, a share of their lines at each of its
// panels (part i of parts brings the lines up to total * (i + 1) / parts). Asked for all at once
// at the tile's start, as the backward did, ~200 lines of h and dh outrun the core's miss buffers
// and the panels streaming through L1 push them out before the epilogue reads them: spread, the
// S3 training step takes 1.8% less time on 1 and on 2 threads.
struct SpreadPrefetch {
    static constexpr int kMaxRows = 3 * 2 * kMR;  // three arrays' rows of two tiles
    std::uintptr_t first[kMaxRows];  // each row's first cache line
    std::int64_t lines[kMaxRows];
    int rows = 0, row = 0;
    std::int64_t total = 0, done = 0, line = 0;
    template <typename F>
    void add(const F* p, std::int64_t n) {
        if (n <= 0) return;
        const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p), b = a + n * sizeof(F);
        first[rows] = a & ~std::uintptr_t(63);
        lines[rows] = static_cast<std::int64_t>((b - first[rows] + 63) / 64);
        total += lines[rows++];
    }
    void part(std::int64_t i, std::int64_t parts) {
        for (const std::int64_t until = total * (i + 1) / parts; done < until; ++done) {
            __builtin_prefetch(reinterpret_cast<const void*>(first[row] + 64 * line));
            if (++line == lines[row]) ++row, line = 0;
        }
    }
};

// Row pointers of one micro-tile (at most kMR rows).
template <typename F>
struct TileRows {
    const F* a[kMR];   // rows of the left operand (x, or dz)
    const F* a2[kMR];  // forward: second left operand (h_prev); backward: x to gather
    const F* dh[kMR];  // backward: dh at the previous step
    const F* h[kMR];   // backward: h at the previous step
    F* h_copy[kMR];    // backward: where to copy that h (GatherRows), or nullptr
    F* dx[kMR];        // backward: the row of dx
    F* out[kMR];
};

// Forward tile: z[r, cols] = bias + x[r] @ W_ih^T + h_prev[r] @ W_hh^T (pre-activation), written
// at out[r] + col. Hk = 0 when the previous state is zero.
template <typename F, int ROWS, int NV>
void forward_tile(std::int64_t I, std::int64_t Hk, const TileRows<F>& t, const F* panel,
                  const F* bias, std::int64_t col, int ncols, WeightPrefetch* pf) {
    Vec<F> acc[ROWS][NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const Vec<F> b = load(bias + v * kLanes<F>);
        for (int r = 0; r < ROWS; ++r) acc[r][v] = b;
    }
    panel = accumulate_tile<F, ROWS, NV>(acc, I, t.a, panel, pf);
    if (Hk) accumulate_tile<F, ROWS, NV>(acc, Hk, t.a2, panel, pf);
    emit_tile<F, ROWS, NV>(acc, ncols, [&](int r, int c, Vec<F> v, int n) { store_n(t.out[r] + col + c, v, n); });
}

// What a backward tile does with its product g = dz[r] @ panel.
enum class Epilogue {
    Fused,  // g = dz @ W_hh: out[r] = dz_prev = (dh_prev[r] + g) * act'(h_prev[r])
    FusedCopy,  // Fused, and h_prev[r] copied to h_copy[r] (GatherRows)
    Dh0,    // g = dz @ W_hh at the first step: out[r] = dh0 = g
    Dx,     // g = dz @ W_ih: dx[r] = g
    DxAdd,  // g = dz @ W_ih: dx[r] += g
};

template <typename F, int ROWS, int NV>
void backward_tile(Activation act, std::int64_t H, const TileRows<F>& t, const F* panel,
                   Epilogue epilogue, std::int64_t col, int ncols, WeightPrefetch* pf) {
    Vec<F> acc[ROWS][NV];
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = Vec<F>{};
    accumulate_tile<F, ROWS, NV>(acc, H, t.a, panel, pf);
    auto fused = [&](auto copy) __attribute__((always_inline)) {
        emit_tile<F, ROWS, NV>(acc, ncols, [&](int r, int c, Vec<F> g, int n) __attribute__((always_inline)) {
            const Vec<F> h = load_n(t.h[r] + col + c, n);
            if constexpr (decltype(copy)::value) store_n(t.h_copy[r] + col + c, h, n);
            const Vec<F> dh = load_n(t.dh[r] + col + c, n) + g;
            // forward: h = tanh(z) -> dz = dh * (1 - h^2);  h = relu(z) -> dz = dh * (h > 0)
            const Vec<F> dz_prev = act == Activation::Tanh ? dh * (splat(F(1)) - h * h)
                                                           : (h <= splat(F(0)) ? splat(F(0)) : dh);
            store_n(t.out[r] + col + c, dz_prev, n);
        });
    };
    switch (epilogue) {
        case Epilogue::Fused:
            return fused(std::false_type{});
        case Epilogue::FusedCopy:
            return fused(std::true_type{});
        case Epilogue::Dh0:
            return emit_tile<F, ROWS, NV>(acc, ncols, [&](int r, int c, Vec<F> g, int n) { store_n(t.out[r] + col + c, g, n); });
        case Epilogue::Dx:
            return emit_tile<F, ROWS, NV>(acc, ncols, [&](int r, int c, Vec<F> g, int n) { store_n(t.dx[r] + col + c, g, n); });
        case Epilogue::DxAdd:
            return emit_tile<F, ROWS, NV>(acc, ncols, [&](int r, int c, Vec<F> g, int n) {
                store_n(t.dx[r] + col + c, load_n(t.dx[r] + col + c, n) + g, n);
            });
    }
}

// The heights of the next tiles of a step with `left` rows still to do: a full tile (or what is
// left), and when fewer than kMR rows would remain after it, those too as a partial tile that
// runs panel by panel with it (n[1] = 0 otherwise). Alone, a partial tile of a row or two would
// stream all the packed weights from L3.
inline void tile_heights(std::int64_t left, std::int64_t (&n)[2]) {
    n[0] = left < kMR ? left : kMR;
    n[1] = left - n[0] < kMR ? left - n[0] : 0;
}

// Calls tile(std::integral_constant<int, ROWS>) for the tile height `rows` (1..kMR).
template <int R = 1, typename Tile>
inline void by_height(std::int64_t rows, Tile tile) {
    if constexpr (R < kMR) {
        if (rows > R) return by_height<R + 1>(rows, tile);
    }
    tile(std::integral_constant<int, R>{});
}

// Calls tile(std::integral_constant<int, NV>) for the lanes-vectors of a panel's ncols columns
// (1..kPanelVectors): a last panel of few columns computes only the vectors it has.
template <typename F, int NV = 1, typename Tile>
inline void by_vectors(int ncols, Tile tile) {
    if constexpr (NV < kPanelVectors) {
        if (ncols > NV * kLanes<F>) return by_vectors<F, NV + 1>(ncols, tile);
    }
    tile(std::integral_constant<int, NV>{});
}

// Panels of K rows per group (PanelGroups) out of `panels`: all of them when they fit in the
// cache budget for packed weights (weight_block_bytes), else half the budget's worth (at least
// one), so that the group in use and the next, prefetched meanwhile (WeightPrefetch), fit in it
// together.
template <typename F>
std::int64_t panels_per_group(std::int64_t K, std::int64_t panels) {
    const std::int64_t panel_bytes = K * kNR<F> * static_cast<std::int64_t>(sizeof(F));
    const std::int64_t fit = weight_block_bytes() / panel_bytes;
    return panels <= fit ? std::max<std::int64_t>(1, panels) : std::max<std::int64_t>(1, fit / 2);
}

// The panels [p_lo, p_hi) in `count` groups of at most `most` panels, as even as they come (32
// panels of at most 5: 4 or 5 each). A step runs all its tiles over one group before the next,
// so each group streams from memory once per step and then from L2 for every tile; weights that
// fit in the budget are one group, tile by tile over all panels. At S4 (I=512, H=1024: 6.3 MB of
// packed weights, 2 MB of L2) over all panels per tile, the forward read 80 GFLOP/s, against 138
// at S3 (0.5 MB), on 1 thread of a Xeon (Sapphire Rapids class, 2026-12-07); in groups, 108; in
// groups of half the budget, each prefetching the next into L2 while its tiles run
// (WeightPrefetch), 136 (the forward's time 0.78 of the groups' alone, training 0.90; on 2
// threads 0.88 and 0.92; paired in one process). The first tile over a group waited for it to
// come from L3. The order of each output's sum does not change: the same bits.
struct PanelGroups {
    std::int64_t p_lo, p_hi, count;
    PanelGroups(std::int64_t lo, std::int64_t hi, std::int64_t most)
        : p_lo(lo), p_hi(hi), count(hi > lo ? (hi - lo + most - 1) / most : 0) {}
    std::int64_t begin(std::int64_t g) const { return p_lo + (p_hi - p_lo) * g / count; }
    std::int64_t end(std::int64_t g) const { return begin(g + 1); }
};

// Zeros in the padded steps t >= length of the positions [begin, end), in a [T,B,width] array
// (row stride ld, step stride step). Nothing reads these rows here, so streaming stores write
// them without first reading each line into the cache as memset's stores do.
template <typename F>
void zero_padding(std::int64_t T, const BatchOrder& order, std::int64_t begin, std::int64_t end,
                  std::int64_t width, F* p, std::int64_t ld, std::int64_t step) {
    if (!order.steps) return;
    for (std::int64_t j = begin; j < end; ++j)
        for (std::int64_t t = order.steps[j]; t < T; ++t) {
            F* row = p + t * step + order.row(j) * ld;
            std::int64_t i = 0;
#if defined(__SSE2__)
            constexpr std::int64_t lanes = 16 / sizeof(F);
            for (; i < width && reinterpret_cast<std::uintptr_t>(row + i) % 16 != 0; ++i) row[i] = F(0);
            for (; i + lanes <= width; i += lanes) _mm_stream_si128(reinterpret_cast<__m128i*>(row + i), _mm_setzero_si128());
#endif
            for (; i < width; ++i) row[i] = F(0);
        }
#if defined(__SSE2__)
    _mm_sfence();  // streaming stores are weakly ordered: finish them before anyone reads
#endif
}

template <typename F>
void forward_loop(Activation act, bool reverse, std::int64_t T, const BatchOrder& order,
                  std::int64_t begin, std::int64_t end, std::int64_t I, std::int64_t H,
                  const F* x, std::int64_t ldx, std::int64_t x_step, const F* h0,
                  const F* packed, F* h, std::int64_t ldh, std::int64_t h_step, StepBlocks* blocks) {
    const int NR = kNR<F>;
    const std::int64_t panels = panel_count<F>(H);
    const F* bias = packed + panels * NR * (I + H);
    if (begin >= end) return;
    const std::int64_t steps = order.length(begin, T);  // the longest sequence comes first
    std::int64_t running = end;
    const std::int64_t group_panels = panels_per_group<F>(I + H, panels);
    TileRows<F> tile[2];
    // Loop step s for the panels [p_lo, p_hi) of the rows still running.
    // Loop step s for the panels [p_lo, p_hi) of the rows still running, in groups of panels
    // that stay in the cache while every tile of the step runs over them (panel_groups).
    auto step = [&](std::int64_t s, std::int64_t p_lo, std::int64_t p_hi) {
        running = order.running_end(begin, running, s, T);
        const std::int64_t Hk = (s > 0 || h0) ? H : 0;
        auto rows_of = [&](std::int64_t r0, std::int64_t n, TileRows<F>& t) {
            for (std::int64_t r = 0; r < n; ++r) {
                const std::int64_t j = r0 + r, b = order.row(j);
                const std::int64_t tt = reverse ? order.length(j, T) - 1 - s : s;
                t.a[r] = x + tt * x_step + b * ldx;
                t.a2[r] = s > 0 ? h + (reverse ? tt + 1 : tt - 1) * h_step + b * ldh
                                : (h0 ? h0 + b * H : nullptr);
                t.out[r] = h + tt * h_step + b * ldh;
            }
        };
        const PanelGroups groups(p_lo, p_hi, group_panels);
        const std::int64_t full_tiles = (running - begin) / kMR;
        for (std::int64_t g = 0; g < groups.count; ++g) {
            const std::int64_t g_lo = groups.begin(g), g_hi = groups.end(g);
            const std::int64_t c0 = g_lo * NR, c1 = std::min(H, g_hi * NR);
            const bool last_group = g + 1 == groups.count;
            // While the tiles run over this group, the next group's panels (or, after the last,
            // the next step's first group) come into L2.
            WeightPrefetch pf;
            if (groups.count > 1 && (!last_group || (!blocks && s + 1 < steps))) {
                const std::int64_t n_lo = last_group ? p_lo : groups.begin(g + 1);
                const std::int64_t n_hi = last_group ? groups.end(0) : groups.end(g + 1);
                pf.spread(packed + n_lo * NR * (I + H), (n_hi - n_lo) * NR * (I + H) * std::int64_t(sizeof(F)),
                          full_tiles * (g_hi - g_lo), I + Hk);
            }
            for (std::int64_t r0 = begin; r0 < running;) {  // a tile's rows stay in L1
                std::int64_t n[2];
                tile_heights(running - r0, n);
                rows_of(r0, n[0], tile[0]);
                rows_of(r0 + n[0], n[1], tile[1]);
                // The x rows of the next tiles (this step's, or the next step's first) come from
                // memory: prefetched a share at each panel of this tile (3-5% off the forward at
                // S3; their h_prev rows, written a step before, gain nothing). Before another
                // group of the same step, the step's first rows are still in the cache.
                SpreadPrefetch pre;
                const std::int64_t r1 = r0 + n[0] + n[1];
                const std::int64_t s_next = r1 < running ? s : s + 1, j0 = r1 < running ? r1 : begin;
                if (s_next < steps && (r1 < running || last_group)) {
                    std::int64_t m[2];
                    tile_heights(order.running_end(begin, end, s_next, T) - j0, m);
                    for (std::int64_t j = j0; j < j0 + m[0] + m[1]; ++j) {
                        const std::int64_t tt = reverse ? order.length(j, T) - 1 - s_next : s_next;
                        pre.add(x + tt * x_step + order.row(j) * ldx, I);
                    }
                }
                for (std::int64_t p = g_lo; p < g_hi; ++p) {
                    pre.part(p - g_lo, g_hi - g_lo);
                    const F* panel = packed + p * NR * (I + H);
                    const int ncols = static_cast<int>(H - p * NR < NR ? H - p * NR : NR);
                    for (int i = 0; i < 2 && n[i]; ++i)
                        by_height(n[i], [&](auto R) {
                            by_vectors<F>(ncols, [&](auto V) {
                                forward_tile<F, decltype(R)::value, decltype(V)::value>(I, Hk, tile[i], panel, bias + p * NR, p * NR, ncols, &pf);
                            });
                        });
                }
                for (std::int64_t r = 0; r < n[0] + n[1]; ++r)  // still in cache
                    activate<F>(act, 1, c1 - c0, tile[r / kMR].out[r % kMR] + c0, H);
                r0 = r1;
            }
        }
    };
    if (!blocks) {
        for (std::int64_t s = 0; s < steps; ++s) step(s, 0, panels);
        return;
    }
    for (std::int64_t s, p_lo, p_hi; blocks->claim(s, p_lo, p_hi); blocks->finish()) step(s, p_lo, p_hi);
}

template <typename F>
void backward_loop(Activation act, bool reverse, std::int64_t T, const BatchOrder& order,
                   std::int64_t begin, std::int64_t end, std::int64_t H,
                   const F* h, std::int64_t ldh, std::int64_t h_step,
                   const F* dh, std::int64_t lddh, std::int64_t dh_step, const F* dh_n,
                   const F* packed, F* const* dz, std::int64_t s_lo, std::int64_t s_hi, F* dh0,
                   std::int64_t I, F* dx, std::int64_t lddx, std::int64_t dx_step, bool accumulate_dx,
                   const GatherRows<F>* gather, StepBlocks* blocks) {
    const int NR = kNR<F>;
    const std::int64_t panels_h = panel_count<F>(H), panels = panels_h + (dx ? panel_count<F>(I) : 0);
    const Epilogue to_dx = accumulate_dx ? Epilogue::DxAdd : Epilogue::Dx;
    const std::int64_t group_panels = panels_per_group<F>(H, panels);
    auto time = [&](std::int64_t j, std::int64_t s) { return reverse ? order.length(j, T) - 1 - s : s; };
    TileRows<F> tile[2];
    // The columns [c0, c1) of dz(s) of the sequences whose last step is s:
    // dz = (dh + dh_n) * act'(h).
    auto starts = [&](std::int64_t s, std::int64_t c0, std::int64_t c1) {
        for (std::int64_t j = order.running_end(begin, end, s + 1, T); j < order.running_end(begin, end, s, T); ++j) {
            const std::int64_t b = order.row(j), t = time(j, s);
            activation_grad<F>(act, 1, c1 - c0, dh + t * dh_step + b * lddh + c0, lddh,
                               dh_n ? dh_n + b * H + c0 : nullptr, h + t * h_step + b * ldh + c0, ldh,
                               dz[s] + j * H + c0, H);
        }
    };
    // Loop step s for the panels [p_lo, p_hi) (of dz's H columns when blocks share the loop: no
    // dx, no gather) of the rows running at s, whose dz(s) is complete.
    auto step = [&](std::int64_t s, std::int64_t p_lo, std::int64_t p_hi) {
        const std::int64_t running = order.running_end(begin, end, s, T);
        // dz(s) @ W_hh into the previous step's dz (fused), or into dh0 after the first step;
        // dz(s) @ W_ih into dx.
        const bool fused = s > 0;
        const Epilogue to_h = !fused ? Epilogue::Dh0 : gather ? Epilogue::FusedCopy : Epilogue::Fused;
        // A tile's rows: dz(s) in, h and dh of step s - 1 for the epilogue; with gather, x of
        // step s to copy.
        auto rows_of = [&](std::int64_t r0, std::int64_t n, TileRows<F>& t) {
            for (std::int64_t r = 0; r < n; ++r) {
                const std::int64_t j = r0 + r, b = order.row(j);
                t.a[r] = dz[s] + j * H;
                t.dx[r] = dx ? dx + time(j, s) * dx_step + b * lddx : nullptr;
                t.a2[r] = gather ? gather->x + time(j, s) * gather->x_step + b * gather->ldx : nullptr;
                if (fused) {
                    const std::int64_t tp = time(j, s - 1);
                    t.dh[r] = dh + tp * dh_step + b * lddh;
                    t.h[r] = h + tp * h_step + b * ldh;
                    t.h_copy[r] = gather ? gather->h_rows[s] + j * H : nullptr;
                    t.out[r] = dz[s - 1] + j * H;
                } else {
                    t.out[r] = dh0 + b * H;
                }
            }
        };
        // Tiles as in forward_loop (tile_heights), over one group of panels after another
        // (PanelGroups). The rows of the next tiles (after the last of a step, the next group's
        // first, or the next step's) are prefetched while these compute, a share at each panel:
        // x, h and dh come from memory (they are far larger than the caches).
        auto tiles_at = [&](std::int64_t r0, std::int64_t (&n)[2], TileRows<F> (&t)[2]) {
            tile_heights(running - r0, n);
            rows_of(r0, n[0], t[0]);
            rows_of(r0 + n[0], n[1], t[1]);
        };
        // The lines of dh and h at step s - 1 (fused) in the columns [a, b) of dz's H, and with
        // gather the x row, of the tiles' rows.
        auto prefetch_rows = [&](SpreadPrefetch& pre, const TileRows<F> (&t)[2], const std::int64_t (&m)[2],
                                 std::int64_t a, std::int64_t b, bool with_x) {
            for (int i = 0; i < 2; ++i)
                for (std::int64_t r = 0; r < m[i]; ++r) {
                    if (fused && b > a) pre.add(t[i].dh[r] + a, b - a), pre.add(t[i].h[r] + a, b - a);
                    if (gather && with_x) pre.add(t[i].a2[r], gather->I);
                }
        };
        const PanelGroups groups(p_lo, p_hi, group_panels);
        const std::int64_t full_tiles = (running - begin) / kMR;
        for (std::int64_t g = 0; g < groups.count; ++g) {
            const std::int64_t g_lo = groups.begin(g), g_hi = groups.end(g);
            const std::int64_t c0 = std::min(H, g_lo * NR), c1 = std::min(H, g_hi * NR);  // of dz's H
            const bool last_group = g + 1 == groups.count;
            // The next group's panels into L2 (as in forward_loop).
            WeightPrefetch pf;
            if (groups.count > 1 && (!last_group || (!blocks && s > s_lo))) {
                const std::int64_t n_lo = last_group ? p_lo : groups.begin(g + 1);
                const std::int64_t n_hi = last_group ? groups.end(0) : groups.end(g + 1);
                pf.spread(packed + n_lo * NR * H, (n_hi - n_lo) * NR * H * std::int64_t(sizeof(F)),
                          full_tiles * (g_hi - g_lo), H);
            }
            TileRows<F> next[2];
            std::int64_t n[2] = {0, 0}, n_next[2] = {0, 0};
            if (begin < running) tiles_at(begin, n, tile);
            for (std::int64_t r0 = begin; r0 < running;) {  // a tile's rows of dz stay in L1
                const std::int64_t r1 = r0 + n[0] + n[1];
                n_next[0] = n_next[1] = 0;
                if (r1 < running) tiles_at(r1, n_next, next);
                SpreadPrefetch pre;
                prefetch_rows(pre, next, n_next, c0, c1, g == 0);
                if (r1 >= running && !last_group) {  // the next group's first tiles
                    const std::int64_t n0 = std::min(H, groups.end(g + 1) * NR);
                    std::int64_t m[2];
                    TileRows<F> first[2];
                    tiles_at(begin, m, first);
                    prefetch_rows(pre, first, m, c1, n0, false);
                } else if (r1 >= running && s > s_lo) {  // the last tiles of step s: the next step's first
                    std::int64_t m[2];
                    tile_heights(order.running_end(begin, end, s - 1, T) - begin, m);
                    const std::int64_t n1 = std::min(H, groups.end(0) * NR);  // its first group's columns
                    for (std::int64_t j = begin; j < begin + m[0] + m[1]; ++j) {
                        const std::int64_t b = order.row(j);
                        if (s - 1 > 0) {
                            const std::int64_t tp = time(j, s - 2);
                            pre.add(dh + tp * dh_step + b * lddh + p_lo * NR, n1 - p_lo * NR);
                            pre.add(h + tp * h_step + b * ldh + p_lo * NR, n1 - p_lo * NR);
                        }
                        if (gather) pre.add(gather->x + time(j, s - 1) * gather->x_step + b * gather->ldx, gather->I);
                    }
                }
                for (std::int64_t r = 0; gather && g == 0 && r < n[0] + n[1]; ++r)
                    std::memcpy(gather->x_rows[s] + (r0 + r) * gather->I, tile[r / kMR].a2[r % kMR],
                                sizeof(F) * gather->I);
                for (std::int64_t p = g_lo; p < g_hi; ++p) {
                    pre.part(p - g_lo, g_hi - g_lo);
                    const F* panel = packed + p * NR * H;
                    const bool into_h = p < panels_h;
                    const std::int64_t col = (into_h ? p : p - panels_h) * NR, width = into_h ? H : I;
                    const int ncols = static_cast<int>(width - col < NR ? width - col : NR);
                    for (int i = 0; i < 2 && n[i]; ++i)
                        by_height(n[i], [&](auto R) {
                            by_vectors<F>(ncols, [&](auto V) {
                                backward_tile<F, decltype(R)::value, decltype(V)::value>(act, H, tile[i], panel, into_h ? to_h : to_dx, col, ncols, &pf);
                            });
                        });
                }
                r0 = r1;
                tile[0] = next[0], tile[1] = next[1], n[0] = n_next[0], n[1] = n_next[1];
            }
        }
    };
    if (!blocks) {
        for (std::int64_t s = s_hi - 1; s >= s_lo; --s) starts(s, 0, H), step(s, 0, panels);
        return;
    }
    // Shared: a step's tiles read all of dz(s), so the starts of step s are made with the block's
    // columns of the step before (s + 1), and those of s_hi - 1 in a first step of their own.
    for (std::int64_t i, p_lo, p_hi; blocks->claim(i, p_lo, p_hi); blocks->finish()) {
        const std::int64_t s = s_hi - i, c0 = p_lo * NR, c1 = std::min(H, p_hi * NR);
        if (i > 0) step(s, p_lo, p_hi);
        if (s - 1 >= s_lo) starts(s - 1, c0, c1);
    }
}

// The step's lane sums work on 32-byte vectors; a 64-byte one is first folded to its two halves'
// sum.
template <typename F>
struct Vec32Of {
    typedef F type __attribute__((vector_size(32)));
};
template <typename F>
using Vec32 = typename Vec32Of<F>::type;
template <typename F>
inline Vec32<F> fold32(Vec<F> v) {
    if constexpr (sizeof(Vec<F>) == 32) {
        return v;
    } else {
        Vec32<F> lo, hi;
        std::memcpy(&lo, &v, 32);
        std::memcpy(&hi, reinterpret_cast<const char*>(&v) + 32, 32);
        return lo + hi;
    }
}

// Pairwise sums of neighbouring lanes of a and b, interleaved as x86's hadd:
// float [a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7]; double [a0+a1, b0+b1, a2+a3, b2+b3].
inline Vec32<float> hadd(Vec32<float> a, Vec32<float> b) {
    typedef int Mask __attribute__((vector_size(32)));
    return __builtin_shuffle(a, b, Mask{0, 2, 8, 10, 4, 6, 12, 14}) +
           __builtin_shuffle(a, b, Mask{1, 3, 9, 11, 5, 7, 13, 15});
}
inline Vec32<double> hadd(Vec32<double> a, Vec32<double> b) {
    typedef long long Mask __attribute__((vector_size(32)));
    return __builtin_shuffle(a, b, Mask{0, 4, 2, 6}) + __builtin_shuffle(a, b, Mask{1, 5, 3, 7});
}

// The lane sums of 8 vectors: out[g] = sum over lanes of v[g], by a transposing tree of hadds.
inline void lane_sums(const Vec<float> (&w)[8], float* out) {
    typedef int Mask __attribute__((vector_size(32)));
    Vec32<float> v[8];
    for (int g = 0; g < 8; ++g) v[g] = fold32<float>(w[g]);
    const Vec32<float> q0 = hadd(hadd(v[0], v[1]), hadd(v[2], v[3]));  // [v0..v3 lanes 0-3, v0..v3 lanes 4-7]
    const Vec32<float> q1 = hadd(hadd(v[4], v[5]), hadd(v[6], v[7]));
    const Vec32<float> sums = __builtin_shuffle(q0, q1, Mask{0, 1, 2, 3, 8, 9, 10, 11}) +
                              __builtin_shuffle(q0, q1, Mask{4, 5, 6, 7, 12, 13, 14, 15});
    std::memcpy(out, &sums, sizeof sums);
}
inline void lane_sums(const Vec<double> (&w)[8], double* out) {
    typedef long long Mask __attribute__((vector_size(32)));
    Vec32<double> v[8];
    for (int g = 0; g < 8; ++g) v[g] = fold32<double>(w[g]);
    for (int half = 0; half < 2; ++half) {
        const Vec32<double> a = hadd(v[4 * half], v[4 * half + 1]), b = hadd(v[4 * half + 2], v[4 * half + 3]);
        const Vec32<double> sums = __builtin_shuffle(a, b, Mask{0, 1, 4, 5}) + __builtin_shuffle(a, b, Mask{2, 3, 6, 7});
        std::memcpy(out + 4 * half, &sums, sizeof sums);
    }
}
template <typename F>
inline void lane_sums(const Vec<F> (&v)[1], F* out) {
    F s = 0;
    for (int i = 0; i < kLanes<F>; ++i) s += v[0][i];
    out[0] = s;
}

// acc[g] += W[g, 0:K] . a[0:K] (lane-wise partial sums) for G rows of W (row stride K); the
// tail past the last full vector goes to tail[g].
template <typename F, int G>
inline void dot_rows(std::int64_t K, const F* a, const F* W, Vec<F> (&acc)[G], F (&tail)[G]) {
    std::int64_t k = 0;
    for (; k + kLanes<F> <= K; k += kLanes<F>) {
        const Vec<F> av = load(a + k);
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) acc[g] += av * load(W + g * K + k);
    }
    for (; k < K; ++k)
        for (int g = 0; g < G; ++g) tail[g] += a[k] * W[g * K + k];
}

// out[n0 + g] = bias + W_ih[n0 + g] . x + W_hh[n0 + g] . h for G consecutive outputs.
template <typename F, int G>
inline void step_outputs(std::int64_t n0, std::int64_t I, std::int64_t H, const F* x, const F* h,
                         const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh, F* out) {
    Vec<F> acc[G] = {};
    F tail[G] = {};
    dot_rows<F, G>(I, x, W_ih + n0 * I, acc, tail);
    if (h) dot_rows<F, G>(H, h, W_hh + n0 * H, acc, tail);
    F sums[G];
    lane_sums(acc, sums);
    for (int g = 0; g < G; ++g)
        out[n0 + g] = (b_ih ? b_ih[n0 + g] + b_hh[n0 + g] : F(0)) + sums[g] + tail[g];
}

template <typename F>
void step(Activation act, std::int64_t rows, std::int64_t I, std::int64_t H, const F* x,
          std::int64_t ldx, const F* h, std::int64_t ldh, const F* W_ih, const F* W_hh,
          const F* b_ih, const F* b_hh, F* out, std::int64_t ldo) {
    constexpr int G = 8;  // rows of W per pass: 8 independent FMA chains
    for (std::int64_t r = 0; r < rows; ++r) {
        const F* xr = x + r * ldx;
        const F* hr = h ? h + r * ldh : nullptr;
        F* o = out + r * ldo;
        std::int64_t n = 0;
        for (; n + G <= H; n += G) step_outputs<F, G>(n, I, H, xr, hr, W_ih, W_hh, b_ih, b_hh, o);
        for (; n < H; ++n) step_outputs<F, 1>(n, I, H, xr, hr, W_ih, W_hh, b_ih, b_hh, o);
        activate<F>(act, 1, H, o, ldo);
    }
}

}  // namespace
}  // namespace rnncore

#include "gemm_tn_impl.h"
#include "gemm_rows_impl.h"

namespace rnncore {
namespace {

template <typename F>
RecurrentKernels<F> make_recurrent_kernels(const char* isa) {
    return {isa, kMR, kNR<F>, pack_forward<F>, pack_backward<F>, forward_loop<F>, backward_loop<F>, step<F>,
            zero_padding<F>, gemm_tn<F>, gemm_rows<F>};
}

}  // namespace
}  // namespace rnncore
