// Forward and backward (BPTT) of one RNN layer in one direction; see rnncore/rnn.h.
#include "rnncore/rnn.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rnncore/blas.h"
#include "rnncore/elementwise.h"
#include "rnncore/recurrent.h"
#include "rnncore/thread_pool.h"

namespace rnncore {
namespace {

using blas::Op;

// Throws std::invalid_argument(what); `what` is only built when the check fails (this runs on
// every call, streaming steps included).
#define REQUIRE(ok, what)                                     \
    do {                                                      \
        if (!(ok)) throw std::invalid_argument(what);         \
    } while (0)

void check_dims(const Dims& d, std::int64_t ldx, std::int64_t ldh) {
    REQUIRE(d.T >= 0 && d.B >= 0 && d.I >= 1 && d.H >= 1,
            "rnn: expected T >= 0, B >= 0, I >= 1, H >= 1, got T=" + std::to_string(d.T) +
                " B=" + std::to_string(d.B) + " I=" + std::to_string(d.I) + " H=" + std::to_string(d.H));
    REQUIRE(ldx >= d.I, "rnn: expected ldx >= I = " + std::to_string(d.I) + ", got " + std::to_string(ldx));
    REQUIRE(ldh >= d.H, "rnn: expected ldh >= H = " + std::to_string(d.H) + ", got " + std::to_string(ldh));
}

// Contiguous ranges of `rows` split `parts` ways, every boundary a multiple of `align`.
struct Split {
    std::int64_t rows, parts, align;
    std::int64_t begin(std::int64_t i) const {
        const std::int64_t blocks = (rows + align - 1) / align;
        return std::min(rows, (blocks * i / parts) * align);
    }
    std::int64_t end(std::int64_t i) const { return begin(i + 1); }
};

// The batch sorted by length, longest first (stable), so the sequences still running at any
// loop step are a prefix of positions: the BatchOrder the loops walk.
struct SortedBatch {
    std::vector<std::int64_t> rows, steps;  // empty: batch order, every sequence T steps
    std::int64_t max_steps = 0, total_steps = 0;
    BatchOrder order() const { return rows.empty() ? BatchOrder{} : BatchOrder{rows.data(), steps.data()}; }
};

SortedBatch sort_batch(const Dims& d, const std::int64_t* lengths) {
    SortedBatch s;
    s.max_steps = d.B > 0 ? d.T : 0;
    s.total_steps = d.T * d.B;
    if (!lengths) return s;
    bool all_full = true;
    for (std::int64_t b = 0; b < d.B; ++b) {
        REQUIRE(lengths[b] >= 1 && lengths[b] <= d.T,
                "rnn: expected 1 <= lengths[b] <= T = " + std::to_string(d.T) + ", got lengths[" +
                    std::to_string(b) + "] = " + std::to_string(lengths[b]));
        all_full = all_full && lengths[b] == d.T;
    }
    if (all_full) return s;  // the plain loop, bit for bit
    s.rows.resize(static_cast<size_t>(d.B));
    for (std::int64_t b = 0; b < d.B; ++b) s.rows[b] = b;
    std::stable_sort(s.rows.begin(), s.rows.end(),
                     [&](std::int64_t a, std::int64_t b) { return lengths[a] > lengths[b]; });
    s.steps.resize(s.rows.size());
    s.total_steps = 0;
    for (std::int64_t j = 0; j < d.B; ++j) s.total_steps += s.steps[j] = lengths[s.rows[j]];
    s.max_steps = s.steps[0];
    return s;
}

// What a time-loop slice of `rows` batch rows costs, in full micro-tiles: a trailing partial
// tile costs 0.86 of a full one (as measured for 4 rows).
template <typename F>
double tile_cost(const RecurrentKernels<F>& k, std::int64_t rows) {
    const std::int64_t MR = k.mr;
    return static_cast<double>(rows / MR) + (rows % MR ? 0.86 : 0.0);
}

// Batch slices for the time loops over the loop steps [s_lo, s_hi), as position bounds
// [bounds[i], bounds[i+1]), each starting at a multiple of MR (so every row lands in the same
// kind of micro-tile however the batch is split: results independent of the thread count), when
// there is enough work (flop) to be worth waking a thread for (~100 us):
// - without lengths, one slice per thread with equal shares of tile_cost; B=64 on 2 threads
//   splits 5 | 5 tiles + 4 rows, not 6 | 4 + 4 (5% faster training at S4);
// - with lengths, one slice per micro-tile, longest sequences first: parallel_for hands them out
//   in that order, so the threads finish within a short tile's work of each other. (Two
//   contiguous slices of equal sequence steps took 19.0 and 14.7 ms in `rnncore bench --lengths`
//   on 2 threads: a tile whose sequences have partly ended costs nearly a full tile's time.)
//   The backward's chunks each get their own.
template <typename F>
std::vector<std::int64_t> batch_slices(const RecurrentKernels<F>& k, const Dims& d, const SortedBatch& sb, std::int64_t s_lo,
                                       std::int64_t s_hi) {
    const std::int64_t MR = k.mr, tiles = (d.B + MR - 1) / MR;
    const BatchOrder order = sb.order();
    auto steps = [&](std::int64_t j) {  // position j's steps in [s_lo, s_hi)
        return std::max<std::int64_t>(0, std::min(order.length(j, d.T), s_hi) - s_lo);
    };
    std::int64_t total = 0;
    for (std::int64_t j = 0; j < d.B; ++j) total += steps(j);
    const std::int64_t flop = 2 * total * d.H * (d.I + d.H), per_slice = 8'000'000;
    const std::int64_t parts =
        std::max<std::int64_t>(1, std::min<std::int64_t>({get_num_threads(), tiles, flop / per_slice}));
    std::vector<std::int64_t> bounds{0};
    if (parts > 1 && order.steps) {
        std::int64_t live = 0;  // positions with steps in [s_lo, s_hi): a prefix
        while (live < d.B && steps(live) > 0) ++live;
        // a trailing partial tile stays with the tile before it, as tile_heights runs them
        for (std::int64_t j = MR; live - j >= MR; j += MR) bounds.push_back(j);
    } else if (parts > 1) {
        const double cost = tile_cost(k, d.B);
        for (std::int64_t i = 1; i < parts; ++i) {  // each boundary at the tile nearest its share
            const std::int64_t tile = std::max<std::int64_t>(std::llround(cost * i / parts), bounds.back() / MR + 1);
            if (tile * MR >= d.B) break;
            bounds.push_back(tile * MR);
        }
    }
    bounds.push_back(d.B);
    return bounds;
}

// Instead of batch slices, a time loop without lengths can share every step among the threads
// by columns, each step waiting for the one before (StepBlocks). Every thread then gets an equal
// share however the batch divides into micro-tiles (B=64 is 10 tiles and 4 rows, which two slices
// split 5 | 5 + 4), and reads only its own columns' packed weights, at the cost of a hand-over
// between the threads at every step and of both reading every row. Returns the number of column
// blocks (one per thread), or 0 to keep the slices:
// The loop's packed weights are K rows (forward: I + H; backward: H) of panels over H columns.
// - when those weights fit in the cache budget (weight_block_bytes): then
//   each slice runs over all of them from its own core's L2, and the hand-over costs more than the
//   uneven split. Paired in one process on 2 threads of a Xeon (Sapphire Rapids class,
//   2026-12-07), slices' time / blocks', forward / training: S3 (0.5 MB of weights) 0.80-0.82 /
//   0.89-0.91, T50 B50 I100 H200 0.76 / 0.88; with the AVX2 set 0.92 / 0.96 and 0.86 / 0.93.
//   Where the weights do not fit, each core streams only its columns' share of them: S4
//   (6.3 MB) 1.08 / 1.03, with the AVX2 set 1.08 / 1.04;
// - when the slices are nearly even;
// - when there are more threads than cores (a thread waiting at a step for one that lost its core
//   would wait a whole time slice);
// - when a step is short (2 * B * H * K under 1 Mflop, ~15 us on one core here). Short steps hand
//   over so often that every stall of either core (this shared VM's cores pause now and then)
//   stops both threads: at T=1000 B=8 I=H=64 (131 kflop a step), the paired 2-thread speedup of
//   the forward read 1.21, 1.18 and 0.61 in three runs by columns, and 1.34, 1.24, 1.17, 1.35 and
//   0.99 in five by slices (which never wait for each other: a stall holds up one slice only).
// Blocks start at whole panels and every row lands in the same tile as in a single slice: the
// results stay bit for bit the same.
template <typename F>
std::int64_t column_blocks(const RecurrentKernels<F>& k, const Dims& d, const SortedBatch& sb, const std::vector<std::int64_t>& slices,
                           std::int64_t K) {
    const std::int64_t step_flop = 2 * d.B * d.H * K;
    const std::int64_t weight_bytes = K * k.panels(d.H) * k.nr * static_cast<std::int64_t>(sizeof(F));
    const std::int64_t threads = get_num_threads();
    // Asked once: glibc reads /sys/devices/system/cpu/online at every call (four opens, reads and
    // closes a training step of a two-layer model, ~4% of the forecaster's step).
    static const std::int64_t cores = std::max<std::int64_t>(1, std::thread::hardware_concurrency());
    if (sb.order().steps || threads < 2 || threads > cores || k.panels(d.H) < threads ||
        step_flop < 1'000'000 || slices.size() < 3 || weight_bytes <= weight_block_bytes())
        return 0;
    double widest = 0;
    for (size_t i = 0; i + 1 < slices.size(); ++i)
        widest = std::max(widest, tile_cost(k, slices[i + 1] - slices[i]));
    return widest > 1.04 * tile_cost(k, d.B) / static_cast<double>(threads) ? threads : 0;
}

// Loop steps per chunk of the backward: about kChunkRows rows of dz, balanced over T.
constexpr std::int64_t kChunkRows = 2048;
std::int64_t chunk_steps(const Dims& d) {
    const std::int64_t per = std::max<std::int64_t>(1, kChunkRows / std::max<std::int64_t>(d.B, 1));
    const std::int64_t chunks = (d.T + per - 1) / per;
    return chunks > 0 ? (d.T + chunks - 1) / chunks : 1;
}

// The rows of one chunk of the backward for its weight gradients' GEMMs: row r pairs dz[r] with
// x[r], and (among the rows that have a previous state in h) dz_h[r] with h_prev[r].
template <typename F>
struct ChunkRows {
    std::int64_t n = 0;                                     // rows
    const F* dz = nullptr;                                  // [n, H] contiguous
    const F* x = nullptr;                                   // [n, I] row stride ldx
    std::int64_t ldx = 0;
    std::int64_t n_h = 0;                                   // rows with h_prev in h
    const F* dz_h = nullptr;                                // [n_h, H] contiguous
    const F* h_prev = nullptr;                              // [n_h, H] row stride ldh
    std::int64_t ldh = 0;
    const F* dz_h0 = nullptr;                               // [B, H] rows whose h_prev is h0, or null
    F* dx = nullptr;                                        // [n, I] row stride lddx, or null
    std::int64_t lddx = 0;
    bool accumulate_dx = false;
};

// One chunk's share of the sums over all steps:
//   dW_ih += dz^T x;  dW_hh += dz^T h_prev;  bias_sum += sum dz;  dx (+)= dz W_ih (when c.dx)
// as six independent tasks: dW_ih with the bias sums, dW_hh, and dx in four quarters of rows (in
// one piece for small chunks, which run on the calling thread), taken in that order; on two
// threads they come out even for I = H/2, H and 2H (one thread takes dW_ih, the other dW_hh, and
// the quarters of dx fill up the difference). Splitting each weight gradient in two by its
// columns instead made training at S2 and S3 on 1 thread 3-4% slower. The tasks are a function
// of the problem only, never of the thread count: the threads only decide who runs which, so the
// sums come out bit for bit the same on any number of threads.
template <typename F>
void chunk_gradients(const Dims& d, const ChunkRows<F>& c, const F* h0, const F* W_ih, F* dW_ih,
                     F* dW_hh, F* bias_sum) {
    const std::int64_t H = d.H, I = d.I;
    const std::int64_t flop = 2 * c.n * H * ((c.dx ? 2 : 1) * I + H);
    const bool threads = flop >= 4'000'000;  // else all on this thread, and dx in one call
    const Split dx_rows{c.n, threads ? 4 : 1, 1};
    const auto& ew = elementwise<F>();
    const auto& rk = recurrent<F>();
    parallel_for(6, [&](int task) {
        switch (task) {
            case 0:
                if (c.n > 0) rk.gemm_tn(H, I, c.n, c.dz, H, c.x, c.ldx, dW_ih, I);
                if (bias_sum && c.n > 0) ew.add_column_sums(c.n, H, c.dz, H, bias_sum);
                break;
            case 1:
                if (c.n_h > 0) rk.gemm_tn(H, H, c.n_h, c.dz_h, H, c.h_prev, c.ldh, dW_hh, H);
                if (c.dz_h0 && h0) rk.gemm_tn(H, H, d.B, c.dz_h0, H, h0, H, dW_hh, H);
                break;
            default: {
                const std::int64_t r0 = dx_rows.begin(task - 2), nr = dx_rows.end(task - 2) - r0;
                if (c.dx && nr > 0)
                    blas::gemm<F>(Op::N, Op::N, nr, I, H, F(1), c.dz + r0 * H, H, W_ih, I,
                                  c.accumulate_dx ? F(1) : F(0), c.dx + r0 * c.lddx, c.lddx);
            }
        }
    }, threads);
}

// Zeros at the padded steps (t >= length) of a [T,B,width] array, as parallel ranges of positions
// with equal numbers of padded rows (the sequences in the loops' batch slices are balanced by
// their steps, and the short ones would also get all of the padding).
template <typename F>
void zero_padded_rows(const Dims& d, const SortedBatch& sb, std::int64_t width, F* p, std::int64_t ld) {
    const BatchOrder order = sb.order();
    if (!order.steps) return;
    const std::int64_t padded = d.T * d.B - sb.total_steps;
    const int parts = static_cast<int>(
        std::max<std::int64_t>(1, std::min<std::int64_t>(get_num_threads(), padded * width / 250'000)));
    std::vector<std::int64_t> bounds{0};
    for (std::int64_t j = 0, done = 0; j < d.B; ++j) {
        done += d.T - order.steps[j];
        if (std::int64_t(bounds.size()) < parts && done * parts >= padded * std::int64_t(bounds.size()))
            bounds.push_back(j + 1);
    }
    bounds.push_back(d.B);
    const auto& k = recurrent<F>();
    parallel_for(static_cast<int>(bounds.size() - 1), [&](int i) {
        k.zero_padding(d.T, order, bounds[i], bounds[i + 1], width, p, ld, d.B * ld);
    });
}

}  // namespace

template <typename F>
std::int64_t rnn_forward_workspace_size(const Dims& d) {
    return packed_forward_size<F>(d.I, d.H);
}

template <typename F>
std::int64_t rnn_backward_workspace_size(const Dims& d, bool with_lengths) {
    const std::int64_t chunk_rows = chunk_steps(d) * d.B;
    // packed W_hh (with lengths, [W_hh | W_ih]), the bias sum, dz for a chunk and one step of
    // it carried over; with lengths, a chunk's x and h_prev rows
    return packed_backward_size<F>(with_lengths ? d.I : 0, d.H) + d.H + (chunk_rows + d.B) * d.H +
           (with_lengths ? chunk_rows * (d.I + d.H) : 0);
}

template <typename F>
void rnn_forward(const Dims& d, Activation act, bool reverse,
                 const F* x, std::int64_t ldx, const F* h0,
                 const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
                 F* h, std::int64_t ldh, const std::int64_t* lengths, F* work) {
    check_dims(d, ldx, ldh);
    REQUIRE(x && W_ih && W_hh && h && work, "rnn_forward: x, W_ih, W_hh, h and work must not be null");
    REQUIRE((b_ih == nullptr) == (b_hh == nullptr), "rnn_forward: b_ih and b_hh must both be given or both be null");
    if (d.T == 0 || d.B == 0) return;
    const SortedBatch sb = sort_batch(d, lengths);
    const BatchOrder order = sb.order();
    const auto& k = recurrent<F>();
    k.pack_forward(d.I, d.H, W_ih, W_hh, b_ih, b_hh, work);
    zero_padded_rows<F>(d, sb, d.H, h, ldh);  // padded steps of the output
    const std::vector<std::int64_t> slices = batch_slices(k, d, sb, 0, d.T);
    const std::int64_t blocks = column_blocks(k, d, sb, slices, d.I + d.H);
    StepBlocks shared(d.T, std::max<std::int64_t>(blocks, 1), k.panels(d.H));
    parallel_for(static_cast<int>(blocks ? blocks : slices.size() - 1), [&](int i) {
        const std::int64_t begin = blocks ? 0 : slices[i], end = blocks ? d.B : slices[i + 1];
        k.forward_loop(act, reverse, d.T, order, begin, end, d.I, d.H, x, ldx, d.B * ldx, h0, work,
                       h, ldh, d.B * ldh, blocks ? &shared : nullptr);
    });
}

template <typename F>
void rnn_step(const Dims& d, Activation act, const F* x, std::int64_t ldx, const F* h,
              std::int64_t ldh, const F* W_ih, const F* W_hh, const F* b_ih, const F* b_hh,
              F* out, std::int64_t ldo) {
    check_dims(d, ldx, ldo);
    REQUIRE(d.T == 1, "rnn_step: expected T = 1, got " + std::to_string(d.T));
    REQUIRE(!h || ldh >= d.H, "rnn_step: expected ldh >= H");
    REQUIRE(x && W_ih && W_hh && out, "rnn_step: x, W_ih, W_hh and out must not be null");
    REQUIRE((b_ih == nullptr) == (b_hh == nullptr), "rnn_step: b_ih and b_hh must both be given or both be null");
    recurrent<F>().step(act, d.B, d.I, d.H, x, ldx, h, ldh, W_ih, W_hh, b_ih, b_hh, out, ldo);
}

template <typename F>
void rnn_backward(const Dims& d, Activation act, bool reverse,
                  const F* x, std::int64_t ldx, const F* h0,
                  const F* W_ih, const F* W_hh,
                  const F* h, std::int64_t ldh,
                  const F* dh, std::int64_t lddh, const F* dh_n,
                  F* dx, std::int64_t lddx, bool accumulate_dx, F* dh0,
                  F* dW_ih, F* dW_hh, F* db_ih, F* db_hh,
                  const std::int64_t* lengths, F* work) {
    check_dims(d, ldx, ldh);
    REQUIRE(lddh >= d.H && lddx >= d.I,
            "rnn_backward: expected lddh >= H, lddx >= I, got lddh=" + std::to_string(lddh) +
                " lddx=" + std::to_string(lddx));
    REQUIRE(x && W_ih && W_hh && h && dh && dh0 && dW_ih && dW_hh && work,
            "rnn_backward: only h0, dh_n, dx and the bias gradients may be null");
    REQUIRE((db_ih == nullptr) == (db_hh == nullptr), "rnn_backward: db_ih and db_hh must both be given or both be null");
    const std::int64_t T = d.T, B = d.B, H = d.H, I = d.I;
    if (B == 0) return;  // nothing flows; dh0 and dx are empty
    if (T == 0) {        // no step ran: the final state is h0 itself
        for (std::int64_t i = 0; i < B * H; ++i) dh0[i] = dh_n ? dh_n[i] : F(0);
        return;
    }
    const SortedBatch sb = sort_batch(d, lengths);
    const BatchOrder order = sb.order();
    const bool ragged = order.steps != nullptr;
    const auto& k = recurrent<F>();
    // Our threads make the BLAS calls below, each of which must stay on its thread: undo any
    // thread count set on this OpenBLAS from outside (threadpoolctl, for one).
    if (blas::get_num_threads() != 1) blas::set_num_threads(1);

    // Scratch: packed [W_hh | W_ih] | bias sum [H] | dz of a chunk | dz carried [B, H] | (ragged)
    // x, h_prev rows of a chunk.
    const std::int64_t Tc = chunk_steps(d), chunk_rows = Tc * B;
    k.pack_backward(I, H, ragged ? W_ih : nullptr, W_hh, work);
    F* bias_sum = work + packed_backward_size<F>(ragged ? I : 0, H);
    F* dz_chunk = bias_sum + H;                 // [chunk_rows, H]
    F* dz_carry = dz_chunk + chunk_rows * H;    // [B, H]
    F* xs = dz_carry + B * H;                   // [chunk_rows, I]
    F* hs = xs + chunk_rows * I;                // [chunk_rows, H]
    for (std::int64_t j = 0; j < H; ++j) bias_sum[j] = F(0);
    if (dx && !accumulate_dx) zero_padded_rows<F>(d, sb, I, dx, lddx);  // the gradient into padded inputs

    // The loop steps in chunks of at most chunk_rows rows of dz: chunk c is the steps
    // [chunk_start[c], chunk_start[c + 1]), its dz in dz_chunk. Without lengths every chunk is Tc
    // steps; with lengths, later chunks take more steps as sequences end.
    const std::int64_t S = sb.max_steps;
    std::vector<std::int64_t> chunk_start{0}, chunk_n;  // chunk_n: rows in each chunk
    std::vector<std::int64_t> first_row(static_cast<size_t>(S));  // step s's first row in its chunk
    for (std::int64_t s = 0, n = 0, running = B; s < S; ++s) {
        running = order.running_end(0, running, s, T);
        if (n + running > chunk_rows) chunk_start.push_back(s), chunk_n.push_back(n), n = 0;
        first_row[s] = n;
        n += running;
        if (s + 1 == S) chunk_start.push_back(S), chunk_n.push_back(n);
    }
    const std::int64_t chunks = static_cast<std::int64_t>(chunk_n.size());

    // Where each loop step's rows live in its chunk's buffers. Batch order: time-major by t
    // within the chunk (row (t - t_first) * B + b), so x, h and dx of the chunk are plain
    // strided blocks. Ragged: the running positions of each step, packed (row first_row[s] + j),
    // with the rows of x and h_prev gathered at the same rows by the loop itself.
    std::vector<F*> dz(static_cast<size_t>(S)), x_rows(ragged ? S : 0), h_rows(ragged ? S : 0);
    for (std::int64_t c = 0; c < chunks; ++c) {
        const std::int64_t s_lo = chunk_start[c], s_hi = chunk_start[c + 1];
        for (std::int64_t s = s_lo; s < s_hi; ++s) {
            if (ragged) {
                dz[s] = dz_chunk + first_row[s] * H;
                x_rows[s] = xs + first_row[s] * I;
                h_rows[s] = hs + first_row[s] * H;
            } else {
                const std::int64_t t_first = reverse ? T - s_hi : s_lo, t = reverse ? T - 1 - s : s;
                dz[s] = dz_chunk + (t - t_first) * B * H;
            }
        }
    }
    const GatherRows<F> gather{x, ldx, B * ldx, I, x_rows.data(), h_rows.data()};

    // A chunk's pass also writes dz(s_lo - 1), the last step of the chunk before, while the
    // chunk's own dz still waits for its GEMMs: into dz_carry, moved to its place after them (one
    // chunk's buffer instead of two: a training step at S4 adds 29.4 MB, not 35.3).
    F* carried = nullptr;  // where the rows in dz_carry belong
    std::int64_t carried_rows = 0;
    for (std::int64_t c = chunks - 1; c >= 0; --c) {
        const std::int64_t s_lo = chunk_start[c], s_hi = chunk_start[c + 1];
        if (carried) {
            std::copy(dz_carry, dz_carry + carried_rows * H, carried);
            dz[s_hi - 1] = carried;
        }
        carried = nullptr;
        if (s_lo > 0) {  // the rows of the sequences still running at s_lo
            carried = dz[s_lo - 1], carried_rows = order.running_end(0, B, s_lo, T);
            dz[s_lo - 1] = dz_carry;
        }
        // The time loop back through the chunk, batch slices in parallel:
        //   h[t] = act(z[t]),  z[t] = x[t] W_ih^T + b + h_prev W_hh^T
        //   dz[t] = (dh[t] + dz[next] W_hh) * act'(h[t]);   dh0 = dz[first] W_hh
        // and, with lengths, dx[t] = dz[t] W_ih straight into the sequences' rows of dx (without,
        // dx is made by OpenBLAS in chunk_gradients below, a little faster there).
        const std::vector<std::int64_t> slices = batch_slices(k, d, sb, s_lo, s_hi);
        const std::int64_t blocks = column_blocks(k, d, sb, slices, H);
        StepBlocks shared(s_hi - s_lo + 1, std::max<std::int64_t>(blocks, 1), k.panels(H));
        parallel_for(static_cast<int>(blocks ? blocks : slices.size() - 1), [&](int i) {
            const std::int64_t begin = blocks ? 0 : slices[i], end = blocks ? B : slices[i + 1];
            k.backward_loop(act, reverse, T, order, begin, end, H, h, ldh, B * ldh,
                            dh, lddh, B * lddh, dh_n, work, dz.data(), s_lo, s_hi, dh0, I,
                            ragged ? dx : nullptr, lddx, B * lddx, accumulate_dx,
                            ragged ? &gather : nullptr, blocks ? &shared : nullptr);
        });

        // The chunk's sums. h_prev of a step is the state one step back in loop order (forward
        // direction: t-1; reverse: t+1); the first loop step's h_prev is h0 (no term when h0 is
        // zero).
        ChunkRows<F> rows;
        if (!ragged) {
            const std::int64_t t0 = reverse ? T - s_hi : s_lo, t1 = reverse ? T - s_lo : s_hi;
            rows.n = (t1 - t0) * B;
            rows.dz = dz_chunk;
            rows.x = x + t0 * B * ldx, rows.ldx = ldx;
            if (!reverse) {
                const std::int64_t t_h = std::max<std::int64_t>(t0, 1);  // first step with h_prev in h
                rows.n_h = (t1 - t_h) * B;
                rows.dz_h = dz_chunk + (t_h - t0) * B * H;
                rows.h_prev = h + (t_h - 1) * B * ldh;
                rows.dz_h0 = t0 == 0 ? dz_chunk : nullptr;
            } else {
                const std::int64_t t_h = std::min<std::int64_t>(t1, T - 1);  // steps [t0, t_h) have h[t+1]
                rows.n_h = (t_h - t0) * B;
                rows.dz_h = dz_chunk;
                rows.h_prev = h + (t0 + 1) * B * ldh;
                rows.dz_h0 = t1 == T ? dz_chunk + (T - 1 - t0) * B * H : nullptr;
            }
            rows.ldh = ldh;
            rows.dx = dx ? dx + t0 * B * lddx : nullptr, rows.lddx = lddx, rows.accumulate_dx = accumulate_dx;
            chunk_gradients<F>(d, rows, h0, W_ih, dW_ih, dW_hh, db_ih ? bias_sum : nullptr);
            continue;
        }
        // Ragged: the loop gathered the chunk's rows of x and of h_prev past the first step; the
        // first step's h_prev is h0 (zeros when there is none).
        if (s_lo == 0)
            for (std::int64_t j = 0; j < B; ++j) {
                F* out = h_rows[0] + j * H;
                if (h0)
                    std::copy(h0 + order.rows[j] * H, h0 + (order.rows[j] + 1) * H, out);
                else
                    std::fill(out, out + H, F(0));
            }
        rows.n = chunk_n[c], rows.dz = dz_chunk, rows.x = xs, rows.ldx = I;
        rows.n_h = chunk_n[c], rows.dz_h = dz_chunk, rows.h_prev = hs, rows.ldh = H;
        chunk_gradients<F>(d, rows, h0, W_ih, dW_ih, dW_hh, db_ih ? bias_sum : nullptr);
    }
    if (db_ih)  // summed once, added to both (as torch adds dz.sum(0) to both .grad)
        for (std::int64_t j = 0; j < H; ++j) db_ih[j] += bias_sum[j], db_hh[j] += bias_sum[j];
}

#define RNNCORE_INSTANTIATE(F)                                                                          \
    template std::int64_t rnn_forward_workspace_size<F>(const Dims&);                                   \
    template std::int64_t rnn_backward_workspace_size<F>(const Dims&, bool);                            \
    template void rnn_step<F>(const Dims&, Activation, const F*, std::int64_t, const F*, std::int64_t, \
                              const F*, const F*, const F*, const F*, F*, std::int64_t);             \
    template void rnn_forward<F>(const Dims&, Activation, bool, const F*, std::int64_t, const F*,       \
                                 const F*, const F*, const F*, const F*, F*, std::int64_t,               \
                                 const std::int64_t*, F*);                                              \
    template void rnn_backward<F>(const Dims&, Activation, bool, const F*, std::int64_t, const F*,      \
                                  const F*, const F*, const F*, std::int64_t, const F*, std::int64_t,   \
                                  const F*, F*, std::int64_t, bool, F*, F*, F*, F*, F*,                 \
                                  const std::int64_t*, F*);
RNNCORE_INSTANTIATE(float)
RNNCORE_INSTANTIATE(double)
#undef RNNCORE_INSTANTIATE

}  // namespace rnncore
