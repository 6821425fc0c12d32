// The C++ test of the core, without a framework: the fast forward and backward against the naive
// reference over every combination of options, the element-wise kernels of each instruction set
// (against std::tanh and each other), and the argument checks. CHECK counts failures and prints
// each one; main prints a one-line summary and returns nonzero if anything failed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "reference.h"
#include "rnncore/elementwise.h"
#include "rnncore/isa.h"
#include "rnncore/linear.h"
#include "rnncore/losses.h"
#include "rnncore/optim.h"
#include "rnncore/recurrent.h"
#include "rnncore/rnn.h"
#include "rnncore/thread_pool.h"


namespace {

using namespace rnncore;
using i64 = std::int64_t;

int checks = 0, failures = 0;
std::string context;  // what is under test, printed with each failure

void check(bool ok, const char* what, const std::string& detail, int line) {
    static std::map<int, int> failures_at;  // line -> count: print the first few of each
    ++checks;
    if (ok) return;
    ++failures;
    if (++failures_at[line] <= (std::getenv("RNNCORE_TEST_VERBOSE") ? 100000 : 5))
        std::fprintf(stderr, "FAIL test_core.cpp:%d: %s %s [%s]\n", line, what, detail.c_str(),
                     context.c_str());
}
#define CHECK(cond) check((cond), #cond, "", __LINE__)
#define CHECK_MSG(cond, detail) check((cond), #cond, (detail), __LINE__)
#define CHECK_EMPTY(error) \
    do { const std::string e_ = (error); check(e_.empty(), #error, e_, __LINE__); } while (0)

// The recurrent loops of every set this CPU runs (available_isas), slowest first.
template <typename F>
std::vector<const RecurrentKernels<F>*> recurrent_sets() {
    std::vector<const RecurrentKernels<F>*> sets;
    for (const std::string& name : available_isas()) {
        if (name == "baseline") sets.push_back(&recurrent_baseline<F>());
#ifdef RNNCORE_HAVE_AVX2
        if (name == "avx2") sets.push_back(&recurrent_avx2<F>());
#endif
#ifdef RNNCORE_HAVE_AVX512
        if (name == "avx512") sets.push_back(&recurrent_avx512<F>());
#endif
    }
    return sets;
}

// True when this CPU and build run the kernel set `name` (dispatch.cpp's list).
bool runs_set(const char* name) {
    const std::vector<std::string> sets = available_isas();
    return std::find(sets.begin(), sets.end(), name) != sets.end();
}

template <typename F>
const char* type_name() { return sizeof(F) == 4 ? "float32" : "float64"; }

template <typename F>
const F nan = std::numeric_limits<F>::quiet_NaN();

struct Rng {
    std::mt19937_64 gen;
    double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen); }
};

// A [rows, cols] window at column offset `off` in rows of stride ld. Everything starts NaN: an
// output left unwritten, or padding read as input, shows up in the results.
template <typename F>
struct Mat {
    i64 rows, cols, ld, off;
    std::vector<F> buf;
    Mat(i64 r, i64 c, i64 ld_ = 0, i64 off_ = 0)
        : rows(r), cols(c), ld(ld_ ? ld_ : c), off(off_), buf(std::max<i64>(r, 1) * ld, nan<F>) {}
    F* p() { return buf.data() + off; }
    const F* p() const { return buf.data() + off; }
    F at(i64 r, i64 j) const { return buf[r * ld + off + j]; }
    bool in_window(i64 k) const { return k / ld < rows && k % ld >= off && k % ld < off + cols; }
    void randomize(Rng& rng, double scale) {
        for (i64 r = 0; r < rows; ++r)
            for (i64 j = 0; j < cols; ++j) buf[r * ld + off + j] = F(rng.uniform(-scale, scale));
    }
};

// "" when got's window matches want's and got's padding is still init's (bitwise); else the first
// difference. |got - want| <= rtol * (|want| + max|want|): relative, except that sums which cancel
// are judged on the array's scale.
template <typename F>
std::string compare(const char* name, const Mat<F>& got, const Mat<F>& want, const Mat<F>& init,
                    double rtol) {
    double scale = 0.0;
    for (i64 r = 0; r < want.rows; ++r)
        for (i64 j = 0; j < want.cols; ++j) scale = std::max(scale, std::fabs(double(want.at(r, j))));
    for (i64 r = 0; r < got.rows; ++r)
        for (i64 j = 0; j < got.cols; ++j) {
            const double g = got.at(r, j), w = want.at(r, j);
            if (!(std::fabs(g - w) <= rtol * (std::fabs(w) + scale)))
                return std::string(name) + "[" + std::to_string(r) + "," + std::to_string(j) +
                       "]: got " + std::to_string(g) + ", want " + std::to_string(w) +
                       " (diff " + std::to_string(g - w) + ")";
        }
    for (std::size_t k = 0; k < got.buf.size(); ++k)
        if (!got.in_window(i64(k)) && std::memcmp(&got.buf[k], &init.buf[k], sizeof(F)) != 0)
            return std::string(name) + ": padding element " + std::to_string(k) + " was written";
    return "";
}

// --- the fast path against the naive reference ---------------------------------------------------

struct Case {
    Dims d;
    Activation act;
    bool reverse, h0, bias, dh_n, strided, ragged, accumulate_dx;
};

template <typename F>
std::string describe(const Case& c) {
    char s[256];
    std::snprintf(s, sizeof s, "%s T=%lld B=%lld I=%lld H=%lld %s%s%s%s%s%s%s%s", type_name<F>(),
                  (long long)c.d.T, (long long)c.d.B, (long long)c.d.I, (long long)c.d.H,
                  c.act == Activation::Tanh ? "tanh" : "relu", c.reverse ? " reverse" : "",
                  c.h0 ? " h0" : "", c.bias ? " bias" : "", c.dh_n ? " dh_n" : "",
                  c.strided ? " strided" : "", c.ragged ? " lengths" : "",
                  c.accumulate_dx ? " accumulate_dx" : "");
    return s;
}

// One case's inputs, and its outputs as they are before a call. Strided layouts: x with spare
// columns; h and dh as one direction (columns H..2H) of a bidirectional [T,B,2H] output; dx
// inside wider rows at another offset. Written outputs start NaN, accumulated ones random.
// Ragged: random lengths in [1, T], one of them T.
template <typename F>
struct Problem {
    enum { DX, DH0, DW_IH, DW_HH, DB_IH, DB_HH };  // the backward's outputs, in init
    Case c;
    Rng rng;
    Mat<F> x, h0, W_ih, W_hh, b_ih, b_hh, h_init, dh, dh_n;
    std::vector<Mat<F>> init;
    std::vector<i64> lengths;

    Problem(const Case& c_, std::uint64_t seed)
        : c(c_), rng{std::mt19937_64(seed)},
          x(c.d.T * c.d.B, c.d.I, c.strided ? c.d.I + 3 : c.d.I), h0(c.d.B, c.d.H),
          W_ih(c.d.H, c.d.I), W_hh(c.d.H, c.d.H), b_ih(1, c.d.H), b_hh(1, c.d.H),
          h_init(c.d.T * c.d.B, c.d.H, c.strided ? 2 * c.d.H : c.d.H, c.strided ? c.d.H : 0),
          dh(h_init), dh_n(c.d.B, c.d.H) {
        const i64 rows = c.d.T * c.d.B, I = c.d.I, H = c.d.H;
        const double w = 1.0 / std::sqrt(double(H));  // torch's init range
        x.randomize(rng, 1.0), h0.randomize(rng, 1.0), W_ih.randomize(rng, w), W_hh.randomize(rng, w);
        b_ih.randomize(rng, w), b_hh.randomize(rng, w), dh.randomize(rng, 1.0), dh_n.randomize(rng, 1.0);
        init = {Mat<F>(rows, I, c.strided ? I + 2 : I, c.strided ? 1 : 0), Mat<F>(c.d.B, H),
                Mat<F>(H, I), Mat<F>(H, H), Mat<F>(1, H), Mat<F>(1, H)};
        if (c.accumulate_dx) init[DX].randomize(rng, 1.0);
        for (int k = DW_IH; k <= DB_HH; ++k) init[k].randomize(rng, 1.0);
        if (c.ragged && c.d.T > 0) {
            for (i64 b = 0; b < c.d.B; ++b)
                lengths.push_back(1 + i64(rng.uniform(0, double(c.d.T))) % c.d.T);
            if (c.d.B > 1) lengths[rng.gen() % c.d.B] = c.d.T;
        }
    }
    const i64* lens() const { return lengths.empty() ? nullptr : lengths.data(); }
    const F* h0p() const { return c.h0 ? h0.p() : nullptr; }
    const F* bi() const { return c.bias ? b_ih.p() : nullptr; }
    const F* bh() const { return c.bias ? b_hh.p() : nullptr; }

    // h from rnn_forward or rnn_forward_naive.
    template <typename Fn>
    Mat<F> forward(Fn fn) const {
        Mat<F> h = h_init;
        std::vector<F> work(std::max<i64>(rnn_forward_workspace_size<F>(c.d), 1), nan<F>);
        fn(c.d, c.act, c.reverse, x.p(), x.ld, h0p(), W_ih.p(), W_hh.p(), bi(), bh(), h.p(), h.ld,
           lens(), work.data());
        return h;
    }
    // The outputs (as init) of rnn_backward or rnn_backward_naive through h.
    template <typename Fn>
    std::vector<Mat<F>> backward(Fn fn, const Mat<F>& h) const {
        std::vector<Mat<F>> g = init;
        std::vector<F> work(std::max<i64>(rnn_backward_workspace_size<F>(c.d, c.ragged), 1), nan<F>);
        fn(c.d, c.act, c.reverse, x.p(), x.ld, h0p(), W_ih.p(), W_hh.p(), h.p(), h.ld, dh.p(), dh.ld,
           c.dh_n ? dh_n.p() : nullptr, g[DX].p(), g[DX].ld, c.accumulate_dx,
           g[DH0].p(), g[DW_IH].p(), g[DW_HH].p(), c.bias ? g[DB_IH].p() : nullptr,
           c.bias ? g[DB_HH].p() : nullptr, lens(), work.data());
        return g;
    }
};

const char* grad_names[] = {"dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"};
constexpr int kGrads = 6;

template <typename F>
bool same_bits(const Mat<F>& a, const Mat<F>& b) {
    return a.buf.size() == b.buf.size() &&
           std::memcmp(a.buf.data(), b.buf.data(), a.buf.size() * sizeof(F)) == 0;
}

// rnn_forward and rnn_backward against the naive reference, on 1 and on 3 threads (which must
// give the same bits; small problems run on one thread anyway, see test_thread_independence).
template <typename F>
void test_against_naive(const Case& c, std::uint64_t seed, double rtol) {
    const Problem<F> pb(c, seed);
    set_num_threads(1);
    const Mat<F> h_fast = pb.forward(rnn_forward<F>), h_ref = pb.forward(rnn_forward_naive<F>);
    CHECK_EMPTY(compare("h", h_fast, h_ref, pb.h_init, rtol));
    // Both backwards read h_ref, so relu's mask (h > 0) is the same on both sides.
    const std::vector<Mat<F>> fast = pb.backward(rnn_backward<F>, h_ref),
                              ref = pb.backward(rnn_backward_naive<F>, h_ref);
    for (int k = 0; k < kGrads; ++k) CHECK_EMPTY(compare(grad_names[k], fast[k], ref[k], pb.init[k], rtol));

    set_num_threads(3);
    CHECK(same_bits(pb.forward(rnn_forward<F>), h_fast));
    const std::vector<Mat<F>> fast3 = pb.backward(rnn_backward<F>, h_ref);
    for (int k = 0; k < kGrads; ++k) CHECK_MSG(same_bits(fast3[k], fast[k]), grad_names[k]);
}

// The forward h and the backward's gradients of pb, against h1 and g1 bit for bit, with each cache
// budget for packed weights (0: the default) on each thread count; the default budget after.
template <typename F>
void check_same_bits(const Problem<F>& pb, const Mat<F>& h1, const std::vector<Mat<F>>& g1,
                     std::initializer_list<std::int64_t> budgets, std::initializer_list<int> threads) {
    for (std::int64_t budget : budgets)
        for (int n : threads) {
            set_weight_block_bytes(budget);
            set_num_threads(n);
            CHECK_MSG(same_bits(pb.forward(rnn_forward<F>), h1), "budget " + std::to_string(budget));
            const std::vector<Mat<F>> gn = pb.backward(rnn_backward<F>, h1);
            for (int k = 0; k < kGrads; ++k) CHECK_MSG(same_bits(gn[k], g1[k]), grad_names[k]);
        }
    set_weight_block_bytes(0);
}

// Problems big enough for the kernels to split across threads give the same bits on 1, 2 and 3.
// Their weights fit in the default cache budget, so they split the batch into slices; with a
// budget of one byte, on 2 threads (of 2 cores), the first, second and last share their steps by
// columns instead (a step of at least 1 Mflop, forward and backward) and the third keeps its
// slices; 3 threads always take slices.
template <typename F>
void test_thread_independence() {
    const Dims shapes[] = {{20, 40, 64, 120}, {12, 64, 50, 150}, {90, 50, 20, 40}, {60, 50, 20, 110}};
    std::uint64_t seed = 100;
    for (const Dims& d : shapes)
        for (int bits = 0; bits < 256; bits += 37) {
            auto on = [&](int i) { return ((bits >> i) & 1) != 0; };
            const Case c{d, on(0) ? Activation::Relu : Activation::Tanh,
                         on(1), on(2), on(3), on(4), on(5), on(6), on(7)};
            context = describe<F>(c) + " threads";
            const Problem<F> pb(c, ++seed);
            set_num_threads(1);
            const Mat<F> h1 = pb.forward(rnn_forward<F>);
            const std::vector<Mat<F>> g1 = pb.backward(rnn_backward<F>, h1);
            check_same_bits(pb, h1, g1, {0, 1}, {2, 3});
        }
}

// Weights streamed in groups of panels (weight_block_bytes) give the same bits as all panels at
// once: budgets of one panel, of a few (groups of one panel and of a few, each prefetching the
// next), and the default, on 1 and on 2 threads (by slices, or
// by columns when a step shares its columns), with and without lengths (whose backward also
// makes dx in the loop, over the panels of W_ih after those of W_hh).
template <typename F>
void test_weight_blocks() {
    const Dims shapes[] = {{9, 23, 70, 150}, {12, 64, 50, 150}, {7, 13, 300, 97}};
    std::uint64_t seed = 300;
    for (const Dims& d : shapes)
        for (int bits = 0; bits < 256; bits += 29) {
            auto on = [&](int i) { return ((bits >> i) & 1) != 0; };
            const Case c{d, on(0) ? Activation::Relu : Activation::Tanh,
                         on(1), on(2), on(3), on(4), on(5), on(6), on(7)};
            context = describe<F>(c) + " weight blocks";
            const Problem<F> pb(c, ++seed);
            set_weight_block_bytes(0);
            set_num_threads(1);
            const Mat<F> h1 = pb.forward(rnn_forward<F>);
            const std::vector<Mat<F>> g1 = pb.backward(rnn_backward<F>, h1);
            check_same_bits(pb, h1, g1, {1, 3 * 32 * 4 * 200, 8 * 32 * 4 * 200}, {1, 2});
        }
}

// The pool keeps its workers when the thread count changes, but a job still runs on exactly as
// many threads as set, the caller among them (alone on 1): the workers past the count sleep.
void test_pool_sizes() {
    context = "thread pool sizes";
    for (int n : {3, 2, 1, 3, 1, 2}) {
        set_num_threads(n);
        std::mutex m;
        std::set<std::thread::id> ran_on;
        parallel_for(48, [&](int) {
            std::this_thread::sleep_for(std::chrono::microseconds(300));  // time for every worker to join
            std::lock_guard<std::mutex> lock(m);
            ran_on.insert(std::this_thread::get_id());
        });
        CHECK_MSG(static_cast<int>(ran_on.size()) == n, "set " + std::to_string(n) + ", ran on " +
                                                             std::to_string(ran_on.size()));
        CHECK(ran_on.count(std::this_thread::get_id()) == 1);
    }
}

// StepBlocks: alone, a thread claims every block of each step in turn; shared, every block is
// claimed exactly once, and only after all blocks of the step before have finished.
void test_step_blocks() {
    context = "StepBlocks";
    const i64 steps = 300, blocks = 3, panels = 8;
    {
        StepBlocks alone(steps, blocks, panels);
        i64 k = 0;
        for (i64 i, p_lo, p_hi; alone.claim(i, p_lo, p_hi); alone.finish(), ++k) {
            const i64 b = k % blocks;
            CHECK(i == k / blocks && p_lo == panels * b / blocks && p_hi == panels * (b + 1) / blocks);
        }
        CHECK(k == steps * blocks);
    }
    for (int n : {2, 3}) {
        set_num_threads(n);
        StepBlocks shared(steps, blocks, panels);
        std::vector<std::atomic<int>> claimed(static_cast<size_t>(steps * blocks));
        std::vector<std::atomic<int>> finished(static_cast<size_t>(steps));
        for (auto& v : claimed) v = 0;
        for (auto& v : finished) v = 0;
        std::atomic<int> early{0};  // claims made before the step before had finished
        parallel_for(n, [&](int) {
            for (i64 i, p_lo, p_hi; shared.claim(i, p_lo, p_hi); shared.finish()) {
                if (i > 0 && finished[i - 1].load() != blocks) ++early;
                i64 b = 0;
                while (b + 1 < blocks && panels * b / blocks != p_lo) ++b;
                ++claimed[i * blocks + b];
                volatile double spin = 0;  // some work, so that the threads overlap
                for (int w = 0; w < 2000; ++w) spin = spin + w;
                ++finished[i];
            }
        });
        CHECK(early.load() == 0);
        CHECK(std::all_of(claimed.begin(), claimed.end(), [](const std::atomic<int>& v) { return v.load() == 1; }));
    }
}

// One instruction set's time loops over the whole batch against the naive reference: h, and the
// backward's dh0 (which every step's dz flows into).
template <typename F>
void test_recurrent(const RecurrentKernels<F>& k, const Case& c, std::uint64_t seed, double rtol) {
    const Problem<F> pb(c, seed);
    const Dims& d = c.d;
    // The kernels' order: by length, longest first.
    std::vector<i64> rows(d.B), steps(d.B, d.T);
    for (i64 b = 0; b < d.B; ++b) rows[b] = b;
    if (pb.lens()) {
        std::stable_sort(rows.begin(), rows.end(), [&](i64 a, i64 b) { return pb.lengths[a] > pb.lengths[b]; });
        for (i64 j = 0; j < d.B; ++j) steps[j] = pb.lengths[rows[j]];
    }
    const BatchOrder order{rows.data(), steps.data()};
    std::vector<F> packed(packed_forward_size<F>(d.I, d.H), nan<F>);
    k.pack_forward(d.I, d.H, pb.W_ih.p(), pb.W_hh.p(), pb.bi(), pb.bh(), packed.data());
    Mat<F> h = pb.h_init;
    k.forward_loop(c.act, c.reverse, d.T, order, 0, d.B, d.I, d.H, pb.x.p(), pb.x.ld, d.B * pb.x.ld,
                   pb.h0p(), packed.data(), h.p(), h.ld, d.B * h.ld, nullptr);
    k.zero_padding(d.T, order, 0, d.B, d.H, h.p(), h.ld, d.B * h.ld);
    const Mat<F> h_ref = pb.forward(rnn_forward_naive<F>);
    CHECK_EMPTY(compare("h", h, h_ref, pb.h_init, rtol));

    using P = Problem<F>;
    const std::vector<Mat<F>> ref = pb.backward(rnn_backward_naive<F>, h_ref);
    Mat<F> dh0 = pb.init[P::DH0], dx = pb.init[P::DX];
    if (!c.accumulate_dx && pb.lens())  // rnn_backward zeroes dx at padded steps, the loop never writes them
        for (i64 b = 0; b < d.B; ++b)
            for (i64 t = pb.lengths[b]; t < d.T; ++t)
                for (i64 i = 0; i < d.I; ++i) dx.p()[(t * d.B + b) * dx.ld + i] = F(0);
    packed.assign(packed_backward_size<F>(d.I, d.H), nan<F>);
    k.pack_backward(d.I, d.H, pb.W_ih.p(), pb.W_hh.p(), packed.data());
    // dz of every step in one [T, B, H] block, in two passes over halves of the steps.
    std::vector<F> dz_all(std::max<i64>(d.T * d.B * d.H, 1), nan<F>);
    std::vector<F*> dz(d.T);
    for (i64 s = 0; s < d.T; ++s) dz[s] = dz_all.data() + s * d.B * d.H;
    for (const auto& [lo, hi] : {std::pair<i64, i64>{d.T / 2, d.T}, {0, d.T / 2}})
        k.backward_loop(c.act, c.reverse, d.T, order, 0, d.B, d.H, h_ref.p(), h_ref.ld, d.B * h_ref.ld,
                        pb.dh.p(), pb.dh.ld, d.B * pb.dh.ld, c.dh_n ? pb.dh_n.p() : nullptr,
                        packed.data(), dz.data(), lo, hi, dh0.p(), d.I, dx.p(), dx.ld, d.B * dx.ld,
                        c.accumulate_dx, nullptr, nullptr);
    CHECK_EMPTY(compare("dh0", dh0, ref[P::DH0], pb.init[P::DH0], rtol));
    CHECK_EMPTY(compare("dx", dx, ref[P::DX], pb.init[P::DX], rtol));
    if (pb.lens()) return;

    // Shared by column blocks (StepBlocks), here all taken by this thread in turn: the same bits.
    const i64 panels = k.panels(d.H);
    packed.assign(packed_forward_size<F>(d.I, d.H), nan<F>);
    k.pack_forward(d.I, d.H, pb.W_ih.p(), pb.W_hh.p(), pb.bi(), pb.bh(), packed.data());
    Mat<F> h_blocks = pb.h_init;
    StepBlocks forward_blocks(d.T, 3, panels);
    k.forward_loop(c.act, c.reverse, d.T, order, 0, d.B, d.I, d.H, pb.x.p(), pb.x.ld, d.B * pb.x.ld,
                   pb.h0p(), packed.data(), h_blocks.p(), h_blocks.ld, d.B * h_blocks.ld, &forward_blocks);
    CHECK_MSG(same_bits(h_blocks, h), "h by column blocks");
    packed.assign(packed_backward_size<F>(0, d.H), nan<F>);
    k.pack_backward(0, d.H, nullptr, pb.W_hh.p(), packed.data());
    std::vector<F> dz_blocks(dz_all.size(), nan<F>);
    Mat<F> dh0_loop = pb.init[P::DH0], dh0_blocks = pb.init[P::DH0];
    for (const bool by_blocks : {false, true}) {
        std::vector<F>& buf = by_blocks ? dz_blocks : dz_all;
        buf.assign(buf.size(), nan<F>);
        Mat<F>& out = by_blocks ? dh0_blocks : dh0_loop;
        for (i64 s = 0; s < d.T; ++s) dz[s] = buf.data() + s * d.B * d.H;
        for (const auto& [lo, hi] : {std::pair<i64, i64>{d.T / 2, d.T}, {0, d.T / 2}}) {
            StepBlocks blocks(hi - lo + 1, 3, panels);
            k.backward_loop(c.act, c.reverse, d.T, order, 0, d.B, d.H, h_ref.p(), h_ref.ld, d.B * h_ref.ld,
                            pb.dh.p(), pb.dh.ld, d.B * pb.dh.ld, c.dh_n ? pb.dh_n.p() : nullptr,
                            packed.data(), dz.data(), lo, hi, out.p(), d.I, nullptr, 0, 0, false, nullptr,
                            by_blocks ? &blocks : nullptr);
        }
    }
    CHECK_MSG(same_bits(dh0_blocks, dh0_loop), "dh0 by column blocks");
    CHECK_MSG(dz_blocks.size() == dz_all.size() &&
                  std::memcmp(dz_blocks.data(), dz_all.data(), dz_all.size() * sizeof(F)) == 0,
              "dz by column blocks");
}

// Every combination of the options, on shapes with T = 1, B = 1, B = 0, T = 0, and one whose
// batch and width leave partial micro-tiles and panels and split across threads.
template <typename F>
void test_rnn(double rtol) {
    const Dims shapes[] = {{5, 3, 4, 6}, {7, 13, 19, 37}, {1, 3, 4, 6}, {5, 1, 4, 6}, {4, 0, 3, 5},
                           {0, 3, 4, 6}, {70, 64, 5, 9}};  // the last: three chunks of the backward
    std::uint64_t seed = 0;
    for (const Dims& d : shapes)
        for (int bits = 0; bits < 256; ++bits) {
            auto on = [&](int i) { return ((bits >> i) & 1) != 0; };
            const Case c{d, on(0) ? Activation::Relu : Activation::Tanh,
                         on(1), on(2), on(3), on(4), on(5), on(6), on(7)};
            context = describe<F>(c);
            test_against_naive<F>(c, ++seed, rtol);
        }
}

// Each instruction set's time loops, with the options they take, on partial tiles and panels:
// B = 13 is two 6-row tiles and one row, or a 12-row tile and one; B = 29 leaves 5 rows after
// whole tiles of either height; H = 21 and 45 end in partial panels of 16 and 32 floats.
template <typename F>
void test_recurrent_kernels(double rtol) {
    std::uint64_t seed = 1000000;
    for (const RecurrentKernels<F>* k : recurrent_sets<F>())
        for (const Dims& d : {Dims{6, 13, 7, 21}, Dims{4, 29, 17, 45}})
            for (int bits = 0; bits < 128; ++bits) {  // the time loops take no dx and accumulate nothing
                auto on = [&](int i) { return ((bits >> i) & 1) != 0; };
                const Case c{d, on(0) ? Activation::Relu : Activation::Tanh,
                             on(1), on(2), on(3), on(4), on(5), on(6), false};
                context = std::string("recurrent ") + k->isa + " " + describe<F>(c);
                test_recurrent<F>(*k, c, ++seed, rtol);
            }
}

// The worst |C - want| / sum |terms| over C's window, where want(i, j) = start(i, j) plus
// term(i, j, r) over r < K, summed in long double.
template <typename F, typename Start, typename Term>
double worst_sum_error(const Mat<F>& C, i64 K, Start start, Term term) {
    double worst = 0;
    for (i64 i = 0; i < C.rows; ++i)
        for (i64 j = 0; j < C.cols; ++j) {
            long double want = start(i, j), scale = std::fabs(want);
            for (i64 r = 0; r < K; ++r) {
                const long double t = term(i, j, r);
                want += t;
                scale += std::fabs(t);
            }
            worst = std::max(worst, double(std::fabs(C.at(i, j) - want) / std::max(scale, 1e-30L)));
        }
    return worst;
}

// Whether every element of m's buffer outside its window is still NaN (nothing written there).
template <typename F>
bool padding_untouched(const Mat<F>& m) {
    for (i64 i = 0; i < i64(m.buf.size()); ++i)
        if (!m.in_window(i) && !std::isnan(m.buf[i])) return false;
    return true;
}

// gemm_tn of every set: C += A^T B against a sum in long double, with strides wider than the rows
// (and C's columns past N untouched), for shapes on the set's tiles (64 <= M, N, C <= 256 KiB; whole
// and partial panels, tiles of 1-3 rows after full ones, K past a packed block) and shapes it
// hands to BLAS (a small or a large side). C starts at values of its own: the product adds to it.
template <typename F>
void test_gemm_tn(double rtol) {
    Rng rng{std::mt19937_64(77)};
    const i64 shapes[][3] = {{64, 64, 1}, {128, 64, 2048}, {64, 128, 300}, {97, 97, 129},
                             {200, 100, 65}, {67, 200, 64}, {66, 65, 7}, {65, 257, 130},
                             {5, 64, 100}, {64, 3, 50}, {300, 300, 20}};
    for (const RecurrentKernels<F>* k : recurrent_sets<F>())
        for (const auto& s : shapes) {
            const i64 M = s[0], N = s[1], K = s[2];
            context = std::string("gemm_tn ") + k->isa + " " + type_name<F>() + " M=" +
                      std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
            Mat<F> A(K, M, M + 3, 1), B(K, N, N + 5, 2), C(M, N, N + 7, 3);
            A.randomize(rng, 1.0);
            B.randomize(rng, 1.0);
            C.randomize(rng, 1.0);
            const Mat<F> C0 = C;
            k->gemm_tn(M, N, K, A.p(), A.ld, B.p(), B.ld, C.p(), C.ld);
            const double worst = worst_sum_error(C, K, [&](i64 i, i64 j) { return (long double)C0.at(i, j); },
                                                 [&](i64 i, i64 j, i64 r) { return (long double)A.at(r, i) * B.at(r, j); });
            CHECK_MSG(worst <= rtol, "worst |error| / sum |terms| " + std::to_string(worst));
            CHECK(padding_untouched(C));  // C's columns past N and its offset
        }
}

// gemm_rows of every set against a long-double sum: tiles (at least 4 * mr rows, 32 columns and
// depth, 2^20 multiply-adds) with whole and partial panels and 1-5-row remainders, op(B) as stored and transposed,
// with and without a bias, and the BLAS fallbacks; the same bits on 1, 2, 3 and 8 threads (8: a slice
// per tile).
template <typename F>
void test_gemm_rows(double rtol) {
    Rng rng{std::mt19937_64(78)};
    const i64 shapes[][3] = {{2048, 64, 128}, {200, 128, 64}, {97, 129, 96}, {67, 200, 100},
                             {25, 257, 200}, {26, 257, 160}, {29, 300, 130}, {64, 32, 512},
                             {300, 100, 200}, {23, 64, 64}, {500, 31, 100}, {500, 100, 31},
                             {100, 64, 64}, {1, 1, 1}, {40, 512, 600}, {32, 256, 256}};
    const int threads = get_num_threads();
    for (const RecurrentKernels<F>* k : recurrent_sets<F>())
        for (const auto& s : shapes)
            for (int variant = 0; variant < 4; ++variant) {
                const bool b_transposed = variant & 1, with_bias = variant & 2;
                const i64 M = s[0], N = s[1], K = s[2];
                context = std::string("gemm_rows ") + k->isa + " " + type_name<F>() + " M=" +
                          std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                          (b_transposed ? " B^T" : " B") + (with_bias ? " bias" : "");
                const i64 b_rows = b_transposed ? N : K, b_cols = b_transposed ? K : N;
                Mat<F> A(M, K, K + 3, 1), B(b_rows, b_cols, b_cols + 5, 2), bias(1, N, N + 2, 2);
                A.randomize(rng, 1.0);
                B.randomize(rng, 1.0);
                bias.randomize(rng, 1.0);
                Mat<F> C(M, N, N + 7, 3);
                const Mat<F> C_init = C;
                set_num_threads(1);
                k->gemm_rows(M, N, K, A.p(), A.ld, B.p(), B.ld, b_transposed, with_bias ? bias.p() : nullptr,
                             C.p(), C.ld);
                const double worst = worst_sum_error(
                    C, K, [&](i64, i64 j) { return with_bias ? (long double)bias.at(0, j) : 0.0L; },
                    [&](i64 i, i64 j, i64 r) {
                        return (long double)A.at(i, r) * (b_transposed ? B.at(j, r) : B.at(r, j));
                    });
                CHECK_MSG(worst <= rtol, "worst |error| / sum |terms| " + std::to_string(worst));
                CHECK(padding_untouched(C));  // C's columns past N and its offset
                for (int n : {2, 3, 8}) {
                    set_num_threads(n);
                    Mat<F> C2 = C_init;
                    k->gemm_rows(M, N, K, A.p(), A.ld, B.p(), B.ld, b_transposed,
                                 with_bias ? bias.p() : nullptr, C2.p(), C2.ld);
                    CHECK_MSG(std::memcmp(C2.buf.data(), C.buf.data(), sizeof(F) * C.buf.size()) == 0,
                              "not the same bits on " + std::to_string(n) + " threads");
                }
            }
    set_num_threads(threads);
}

// --- the element-wise kernels --------------------------------------------------------------------

// F's bit pattern mapped to an integer that counts ulps (both zeros are 0).
template <typename F>
i64 ordered(F v) {
    using I = std::conditional_t<sizeof(F) == 4, std::int32_t, std::int64_t>;
    I i;
    std::memcpy(&i, &v, sizeof v);
    return i < 0 ? i64(std::numeric_limits<I>::min()) - i : i64(i);
}

template <typename F>
std::uint64_t ulps(F a, F b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : UINT64_MAX;
    const i64 ia = ordered(a), ib = ordered(b);
    return ia > ib ? std::uint64_t(ia) - std::uint64_t(ib) : std::uint64_t(ib) - std::uint64_t(ia);
}

// std::tanh in a wider type, rounded to F: within half an ulp or so.
template <typename F>
F tanh_ref(F x) {
    using Wide = std::conditional_t<sizeof(F) == 4, double, long double>;
    return F(std::tanh(Wide(x)));
}

// Dense over every binade from subnormals to the largest finite value (strided bit patterns),
// uniform over [-25, 25], and every value near the kernels' branch points; both signs.
template <typename F>
std::vector<F> tanh_samples() {
    using U = std::conditional_t<sizeof(F) == 4, std::uint32_t, std::uint64_t>;
    const F inf = std::numeric_limits<F>::infinity();
    U inf_bits;
    std::memcpy(&inf_bits, &inf, sizeof inf);
    std::vector<F> xs;
    for (U b = 0; b < inf_bits; b += inf_bits / 2000003) {
        F v;
        std::memcpy(&v, &b, sizeof v);
        xs.push_back(v);
    }
    for (int i = -500000; i <= 500000; ++i) xs.push_back(F(i * 5e-5));
    const double branch_points[] = {0.0004, 0.625, 7.90531110763549805, 9.1, 20.0};
    for (double c : branch_points) {
        F v = F(c);
        for (int i = 0; i < 1000; ++i) v = std::nextafter(v, F(0));
        for (int i = 0; i < 2000; ++i) xs.push_back(v = std::nextafter(v, inf));
    }
    const std::size_t n = xs.size();
    for (std::size_t i = 0; i < n; ++i) xs.push_back(-xs[i]);
    return xs;
}

template <typename F>
void test_tanh(const ElementwiseKernels<F>& k, std::uint64_t max_ulps) {
    context = std::string("tanh ") + type_name<F>() + " " + k.isa;
    std::vector<F> xs = tanh_samples<F>(), y = xs;
    k.activate(Activation::Tanh, 1, i64(y.size()), y.data(), i64(y.size()));
    std::uint64_t worst = 0;
    F worst_x = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const std::uint64_t u = ulps(y[i], tanh_ref(xs[i]));
        if (u > worst) worst = u, worst_x = xs[i];
    }
    char detail[128];
    std::snprintf(detail, sizeof detail, "%llu ulps at x = %.17g", (unsigned long long)worst, double(worst_x));
    CHECK_MSG(worst <= max_ulps, detail);
    std::printf("tanh %s %s: max error %llu ulp over %zu values\n", type_name<F>(), k.isa,
                (unsigned long long)worst, xs.size());

    const F inf = std::numeric_limits<F>::infinity();
    F special[] = {inf, -inf, nan<F>, F(0), F(-0.0)};
    k.activate(Activation::Tanh, 1, 5, special, 5);
    CHECK(special[0] == F(1));
    CHECK(special[1] == F(-1));
    CHECK(std::isnan(special[2]));
    CHECK(special[3] == F(0) && special[4] == F(0));  // the sign of -0 is not asked for
}

// Each kernel against its formula, written out here in double.
template <typename F>
void test_kernels(const ElementwiseKernels<F>& k) {
    context = std::string("element-wise ") + type_name<F>() + " " + k.isa;
    const F inf = std::numeric_limits<F>::infinity();
    F r[] = {nan<F>, -inf, inf, F(-1.5), F(0), F(2.5)};
    k.activate(Activation::Relu, 1, 6, r, 6);
    CHECK(std::isnan(r[0]));  // as torch.relu
    CHECK(r[1] == F(0) && r[2] == inf && r[3] == F(0) && r[4] == F(0) && r[5] == F(2.5));

    // 37 columns in rows of 41: a vector body, a remainder, and padding that must stay NaN.
    const i64 rows = 5, cols = 37, ld = 41;
    const double eps = std::numeric_limits<F>::epsilon();
    Rng rng{std::mt19937_64(7)};
    Mat<F> dh(rows, cols, ld), dnext(rows, cols), b1(1, cols);
    dh.randomize(rng, 2.0), dnext.randomize(rng, 2.0), b1.randomize(rng, 1.0);
    for (Activation act : {Activation::Tanh, Activation::Relu}) {
        Mat<F> h(rows, cols, ld);
        h.randomize(rng, 1.0);  // in (-1, 1), as tanh's output; relu's act' only asks h > 0
        for (int variant = 0; variant < 6; ++variant) {
            const bool has_dh = variant % 3 != 0, alias = variant % 3 == 2, has_dnext = variant >= 3;
            Mat<F> dz = alias ? dh : Mat<F>(rows, cols, ld);
            k.activation_grad(act, rows, cols, has_dh ? (alias ? dz.p() : dh.p()) : nullptr, ld,
                              has_dnext ? dnext.p() : nullptr, h.p(), ld, dz.p(), ld);
            bool ok = true;
            for (i64 i = 0; i < rows; ++i)
                for (i64 j = 0; j < cols; ++j) {
                    const double g = (has_dh ? double(dh.at(i, j)) : 0.0) +
                                     (has_dnext ? double(dnext.at(i, j)) : 0.0);
                    const double hv = h.at(i, j);
                    const double want = act == Activation::Tanh ? g * (1.0 - hv * hv) : (hv > 0.0 ? g : 0.0);
                    ok = ok && std::fabs(dz.at(i, j) - want) <= 4 * eps * (std::fabs(g) + std::fabs(want));
                }
            for (std::size_t i = 0; i < dz.buf.size(); ++i)
                ok = ok && (dz.in_window(i64(i)) || std::isnan(dz.buf[i]));
            context = std::string("activation_grad ") + type_name<F>() + " " + k.isa +
                      (act == Activation::Tanh ? " tanh" : " relu") + " variant " + std::to_string(variant);
            CHECK(ok);
        }
    }
    context = std::string("element-wise ") + type_name<F>() + " " + k.isa;

    Mat<F> sums = b1;  // accumulated into, in row order: exact
    k.add_column_sums(rows, cols, dh.p(), ld, sums.p());
    bool ok = true;
    for (i64 j = 0; j < cols; ++j) {
        F want = b1.at(0, j);
        for (i64 i = 0; i < rows; ++i) want += dh.at(i, j);
        ok = ok && sums.at(0, j) == want;
    }
    CHECK(ok);
}

// The two instruction sets give the same results: bitwise, but for the last bits that FMA
// contraction changes in tanh's polynomials and in 1 - h*h.
template <typename F>
void test_kernels_agree(const ElementwiseKernels<F>& a, const ElementwiseKernels<F>& b) {
    context = std::string(a.isa) + " vs " + b.isa + " " + type_name<F>();
    const i64 rows = 7, cols = 45, ld = 48;
    Rng rng{std::mt19937_64(11)};
    Mat<F> z(rows, cols, ld), dh(rows, cols, ld), dnext(rows, cols), bias(1, cols);
    z.randomize(rng, 12.0), dh.randomize(rng, 2.0), dnext.randomize(rng, 2.0), bias.randomize(rng, 1.0);
    const double eps = std::numeric_limits<F>::epsilon();
    for (Activation act : {Activation::Tanh, Activation::Relu}) {
        Mat<F> ha = z, hb = z;
        a.activate(act, rows, cols, ha.p(), ld);
        b.activate(act, rows, cols, hb.p(), ld);
        std::uint64_t worst = 0;
        for (std::size_t i = 0; i < ha.buf.size(); ++i) worst = std::max(worst, ulps(ha.buf[i], hb.buf[i]));
        CHECK_MSG(worst <= (act == Activation::Tanh ? 4u : 0u), std::to_string(worst) + " ulps");

        Mat<F> dza(rows, cols, ld), dzb(rows, cols, ld);
        a.activation_grad(act, rows, cols, dh.p(), ld, dnext.p(), ha.p(), ld, dza.p(), ld);
        b.activation_grad(act, rows, cols, dh.p(), ld, dnext.p(), ha.p(), ld, dzb.p(), ld);
        bool ok = true;
        for (i64 i = 0; i < rows; ++i)
            for (i64 j = 0; j < cols; ++j) {
                const double g = std::fabs(double(dh.at(i, j)) + double(dnext.at(i, j)));
                ok = ok && std::fabs(double(dza.at(i, j)) - double(dzb.at(i, j))) <= 4 * eps * g;
            }
        CHECK(ok);
    }
    Mat<F> sa = bias, sb = bias;
    a.add_column_sums(rows, cols, dh.p(), ld, sa.p());
    b.add_column_sums(rows, cols, dh.p(), ld, sb.p());
    CHECK(std::memcmp(sa.buf.data(), sb.buf.data(), sa.buf.size() * sizeof(F)) == 0);
}

// tanh error limits in ulp: the baseline build rounds each step of the float32 rational without
// FMA (measured worst 7 ulp over every float in [0, 12]); the AVX2 build fuses them (5 ulp).
template <typename F>
void test_elementwise(std::uint64_t baseline_max_ulps, std::uint64_t avx2_max_ulps) {
    const ElementwiseKernels<F>& base = elementwise_baseline<F>();
    context = "elementwise isa";
    CHECK(std::strcmp(base.isa, "baseline") == 0);
    CHECK(std::strcmp(elementwise<F>().isa, elementwise_isa()) == 0);
    test_tanh(base, baseline_max_ulps);
    test_kernels(base);
#ifdef RNNCORE_HAVE_AVX2
    if (runs_set("avx2")) {
        const ElementwiseKernels<F>& avx2 = elementwise_avx2<F>();
        test_tanh(avx2, avx2_max_ulps);
        test_kernels(avx2);
        test_kernels_agree(base, avx2);
    } else {
        std::printf("the CPU lacks AVX2+FMA: only the baseline kernels are tested\n");
    }
#endif
#ifdef RNNCORE_HAVE_AVX512
    if (runs_set("avx512")) {
        const ElementwiseKernels<F>& avx512 = elementwise_avx512<F>();
        test_tanh(avx512, avx2_max_ulps);  // the same FMA contractions as the AVX2 build
        test_kernels(avx512);
        test_kernels_agree(base, avx512);
    } else {
        std::printf("the CPU lacks AVX-512: its kernels are not tested\n");
    }
#endif
}

// --- argument checks -----------------------------------------------------------------------------

// "" when fn returns normally.
template <typename Fn>
std::string throws_nothing(Fn fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return std::string("threw: ") + e.what();
    }
    return "";
}

// "" when fn throws std::invalid_argument whose message contains `mention`.
template <typename Fn>
std::string throws_invalid(Fn fn, const char* mention) {
    try {
        fn();
    } catch (const std::invalid_argument& e) {
        if (std::strstr(e.what(), mention)) return "";
        return std::string("message \"") + e.what() + "\" does not mention \"" + mention + "\"";
    } catch (const std::exception& e) {
        return std::string("threw another type: ") + e.what();
    }
    return "did not throw";
}

void test_invalid_arguments() {
    using F = double;
    context = "invalid arguments";
    const Dims ok{2, 2, 3, 4};
    const i64 I = ok.I, H = ok.H;
    // Every array is big enough for any of the strides below.
    std::vector<F> x(64, 0.5), h0(64, 0.5), W_ih(64, 0.1), W_hh(64, 0.1), b(64, 0.1), h(64), dh(64, 1.0),
        dx(64), dh0(64), dW_ih(64, 0.0), dW_hh(64, 0.0), db_ih(64, 0.0), db_hh(64, 0.0), work(1024);
    auto fwd = [&](Dims d, i64 ldx, i64 ldh, const F* b_ih, const F* b_hh) {
        return [=, &x, &h0, &W_ih, &W_hh, &h, &work] {
            rnn_forward<F>(d, Activation::Tanh, false, x.data(), ldx, h0.data(), W_ih.data(),
                           W_hh.data(), b_ih, b_hh, h.data(), ldh, nullptr, work.data());
        };
    };
    auto bwd = [&](Dims d, i64 ldh, i64 lddh, i64 lddx, F* dbi, F* dbh, const i64* lengths = nullptr) {
        return [=, &x, &h0, &W_ih, &W_hh, &h, &dh, &dx, &dh0, &dW_ih, &dW_hh, &work] {
            rnn_backward<F>(d, Activation::Tanh, false, x.data(), I, h0.data(), W_ih.data(), W_hh.data(),
                            h.data(), ldh, dh.data(), lddh, nullptr, dx.data(), lddx, false,
                            dh0.data(), dW_ih.data(), dW_hh.data(), dbi, dbh, lengths, work.data());
        };
    };
    auto fwd_lengths = [&](const i64* lengths) {
        return [=, &x, &h0, &W_ih, &W_hh, &h, &work] {
            rnn_forward<F>(ok, Activation::Tanh, false, x.data(), I, h0.data(), W_ih.data(),
                           W_hh.data(), nullptr, nullptr, h.data(), H, lengths, work.data());
        };
    };
    const i64 good[] = {2, 1}, zero[] = {0, 2}, long_[] = {2, 3}, negative[] = {-1, 2};
    CHECK_EMPTY(throws_nothing(fwd_lengths(good)));
    CHECK_EMPTY(throws_invalid(fwd_lengths(zero), "lengths[0] = 0"));
    CHECK_EMPTY(throws_invalid(fwd_lengths(long_), "lengths[1] = 3"));
    CHECK_EMPTY(throws_invalid(fwd_lengths(negative), "lengths[0] = -1"));
    CHECK_EMPTY(throws_nothing(bwd(ok, H, H, I, nullptr, nullptr, good)));
    CHECK_EMPTY(throws_invalid(bwd(ok, H, H, I, nullptr, nullptr, long_), "lengths[1] = 3"));
    CHECK_EMPTY(throws_nothing(fwd(ok, I, H, b.data(), b.data())));
    CHECK_EMPTY(throws_invalid(fwd(ok, I, H - 1, nullptr, nullptr), "ldh"));
    CHECK_EMPTY(throws_invalid(fwd(ok, I - 1, H, nullptr, nullptr), "ldx"));
    CHECK_EMPTY(throws_invalid(fwd({2, 2, 3, 0}, I, H, nullptr, nullptr), "H=0"));
    CHECK_EMPTY(throws_invalid(fwd({2, 2, 0, 4}, I, H, nullptr, nullptr), "I=0"));
    CHECK_EMPTY(throws_invalid(fwd({-1, 2, 3, 4}, I, H, nullptr, nullptr), "T=-1"));
    CHECK_EMPTY(throws_invalid(fwd({2, -1, 3, 4}, I, H, nullptr, nullptr), "B=-1"));
    CHECK_EMPTY(throws_invalid(fwd(ok, I, H, b.data(), nullptr), "b_ih"));
    CHECK_EMPTY(throws_invalid(fwd(ok, I, H, nullptr, b.data()), "b_hh"));

    CHECK_EMPTY(throws_nothing(bwd(ok, H, H, I, db_ih.data(), db_hh.data())));
    CHECK_EMPTY(throws_invalid(bwd(ok, H - 1, H, I, nullptr, nullptr), "ldh"));
    CHECK_EMPTY(throws_invalid(bwd({2, 2, 3, 0}, H, H, I, nullptr, nullptr), "H=0"));
    CHECK_EMPTY(throws_invalid(bwd(ok, H, H - 1, I, nullptr, nullptr), "lddh"));
    CHECK_EMPTY(throws_invalid(bwd(ok, H, H, I - 1, nullptr, nullptr), "lddx"));
    CHECK_EMPTY(throws_invalid(bwd(ok, H, H, I, db_ih.data(), nullptr), "db_ih"));
}

// Asking for a set by name: each available one becomes the one in use; an unknown name, or one
// this CPU lacks, is refused with a message naming the available sets, and changes nothing.
void test_kernel_choice() {
    context = "kernel choice";
    const std::vector<std::string> sets = available_isas();
    CHECK(!sets.empty() && sets[0] == "baseline");
    for (const std::string& isa : sets) {
        set_kernel_isa(isa);
        CHECK(isa == elementwise_isa());
        CHECK(isa == recurrent<float>().isa && isa == recurrent<double>().isa);
        CHECK(isa == elementwise<float>().isa && isa == elementwise<double>().isa);
    }
    const std::string before = elementwise_isa();
    for (const char* bad : {"sse9", "", "AVX2"}) {
        CHECK_EMPTY(throws_invalid([&] { set_kernel_isa(bad); }, "baseline"));
        CHECK(before == elementwise_isa());
    }
}

}  // namespace

// ---- the training step's other kernels (optim.h, linear.h, losses.h) against plain loops ----

template <typename F>
std::vector<F> random_vector(std::mt19937_64& rng, std::size_t n, double scale = 1) {
    std::normal_distribution<double> d(0, scale);
    std::vector<F> v(n);
    for (auto& x : v) x = F(d(rng));
    return v;
}

template <typename F>
double max_rel_diff(const std::vector<F>& a, const std::vector<F>& b) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::fabs(double(a[i]) - double(b[i])) / (1e-6 + std::fabs(double(b[i]))));
    return m;
}

template <typename F>
void test_optim(double rtol) {
    context = std::string("optim ") + (std::is_same<F, float>::value ? "float" : "double");
    std::mt19937_64 rng(3);
    const std::int64_t n = 37;
    for (int nesterov = 0; nesterov < 2; ++nesterov) {
        const SgdHyper h{0.05, 0.9, nesterov ? 0.0 : 0.1, 0.01, nesterov == 1};
        auto p = random_vector<F>(rng, n), buf = std::vector<F>(n), want = p, wbuf = buf;
        for (int step = 0; step < 4; ++step) {
            const auto g = random_vector<F>(rng, n);
            sgd_step<F>(n, h, step == 0, p.data(), g.data(), buf.data());
            for (std::int64_t i = 0; i < n; ++i) {  // torch.optim.SGD, element by element
                F d = g[i] + F(h.weight_decay) * want[i];
                wbuf[i] = step == 0 ? d : F(h.momentum) * wbuf[i] + F(1 - h.dampening) * d;
                d = h.nesterov ? d + F(h.momentum) * wbuf[i] : wbuf[i];
                want[i] -= F(h.lr) * d;
            }
        }
        CHECK(max_rel_diff(p, want) < rtol);
    }
    for (int decoupled = 0; decoupled < 2; ++decoupled) {
        const AdamHyper h{0.01, 0.9, 0.999, 1e-8, 0.1, decoupled == 1};
        auto p = random_vector<F>(rng, n), m = std::vector<F>(n), v = m, want = p, wm = m, wv = m;
        for (std::int64_t t = 1; t <= 4; ++t) {
            const auto g = random_vector<F>(rng, n);
            adam_step<F>(n, h, t, p.data(), g.data(), m.data(), v.data());
            for (std::int64_t i = 0; i < n; ++i) {  // torch.optim.Adam / AdamW
                double q = want[i], d = g[i];
                if (h.decoupled) q *= 1 - h.lr * h.weight_decay;
                else d += h.weight_decay * q;
                wm[i] = F(wm[i] + (1 - h.beta1) * (d - wm[i]));
                wv[i] = F(h.beta2 * wv[i] + (1 - h.beta2) * d * d);
                const double denom = std::sqrt(double(wv[i])) / std::sqrt(1 - std::pow(h.beta2, t)) + h.eps;
                want[i] = F(q - h.lr / (1 - std::pow(h.beta1, t)) * wm[i] / denom);
            }
        }
        CHECK(max_rel_diff(p, want) < rtol * 100);  // Adam divides by sqrt(v): rounding grows
    }
    auto g = random_vector<F>(rng, n);
    double want = 0;
    for (auto x : g) want += double(x) * x;
    CHECK(std::fabs(sum_squares<F>(n, g.data()) - want) <= 1e-12 * want);
    scale<F>(n, F(0.5), g.data());
    double after = 0;
    for (auto x : g) after += double(x) * x;
    CHECK(std::fabs(after - want / 4) <= rtol * want);
    CHECK_EMPTY(throws_invalid([&] {
        sgd_step<F>(1, SgdHyper{0.1, 0.9, 0, 0, false}, true, g.data(), g.data(), nullptr);
    }, "buf"));
}

template <typename F>
void test_linear_and_loss(double rtol) {
    context = std::string("linear, cross-entropy ") + (std::is_same<F, float>::value ? "float" : "double");
    std::mt19937_64 rng(5);
    const std::int64_t N = 9, I = 7, O = 5;
    const auto a = random_vector<F>(rng, N * I), w = random_vector<F>(rng, O * I),
               b = random_vector<F>(rng, O), dz = random_vector<F>(rng, N * O);
    std::vector<F> z(N * O), want(N * O);
    linear_forward<F>(N, I, O, HeadActivation::Tanh, a.data(), w.data(), b.data(), z.data());
    for (std::int64_t r = 0; r < N; ++r)
        for (std::int64_t j = 0; j < O; ++j) {
            double s = b[j];
            for (std::int64_t k = 0; k < I; ++k) s += double(a[r * I + k]) * w[j * I + k];
            want[r * O + j] = F(std::tanh(s));
        }
    CHECK(max_rel_diff(z, want) < rtol * 10);
    std::vector<F> da(N * I), dw(O * I, F(1)), db(O, F(1));
    linear_backward<F>(N, I, O, HeadActivation::Relu, a.data(), w.data(), dz.data(), da.data(),
                       dw.data(), db.data());
    std::vector<F> wda(N * I), wdw(O * I, F(1)), wdb(O, F(1));
    for (std::int64_t r = 0; r < N; ++r)
        for (std::int64_t j = 0; j < O; ++j) {
            wdb[j] += dz[r * O + j];
            for (std::int64_t k = 0; k < I; ++k) {
                wdw[j * I + k] += dz[r * O + j] * a[r * I + k];
                wda[r * I + k] += dz[r * O + j] * w[j * I + k];
            }
        }
    for (std::int64_t i = 0; i < N * I; ++i) wda[i] = a[i] > 0 ? wda[i] : F(0);  // relu'(a)
    CHECK(max_rel_diff(da, wda) < rtol * 10);
    CHECK(max_rel_diff(dw, wdw) < rtol * 10);
    CHECK(max_rel_diff(db, wdb) < rtol * 10);

    const std::int64_t C = 11;
    const auto x = random_vector<F>(rng, N * C, 20.0);
    std::vector<std::int64_t> labels(N);
    for (std::int64_t r = 0; r < N; ++r) labels[r] = (r * 7) % C;
    std::vector<F> grad(N * C), wgrad(N * C);
    const double loss = softmax_cross_entropy<F>(N, C, x.data(), labels.data(), 1.0 / N, grad.data());
    double wloss = 0;
    for (std::int64_t r = 0; r < N; ++r) {
        double mx = x[r * C], sum = 0;
        for (std::int64_t j = 0; j < C; ++j) mx = std::max(mx, double(x[r * C + j]));
        for (std::int64_t j = 0; j < C; ++j) sum += std::exp(x[r * C + j] - mx);
        wloss += (std::log(sum) - (x[r * C + labels[r]] - mx)) / N;
        for (std::int64_t j = 0; j < C; ++j)
            wgrad[r * C + j] = F((std::exp(x[r * C + j] - mx) / sum - (j == labels[r])) / N);
    }
    CHECK(std::fabs(loss - wloss) <= rtol * 10 * wloss);
    double worst = 0;
    for (std::int64_t i = 0; i < N * C; ++i) worst = std::max(worst, std::fabs(double(grad[i]) - wgrad[i]));
    CHECK(worst <= rtol * 10 / N);
    labels[3] = C;
    CHECK_EMPTY(throws_invalid([&] {
        softmax_cross_entropy<F>(N, C, x.data(), labels.data(), 1.0, grad.data());
    }, "labels"));
}

int main() {
    const int threads = get_num_threads();
    try {
        // The whole passes on every kernel set this CPU runs, each set in turn as dispatch.cpp's.
        for (const std::string& isa : available_isas()) {
            set_kernel_isa(isa);
            std::printf("kernel set %s: rnn_forward, rnn_backward, thread independence, weight blocks\n",
                        isa.c_str());
            test_rnn<double>(1e-12);
            test_rnn<float>(1e-5);
            test_thread_independence<double>();
            test_thread_independence<float>();
            test_weight_blocks<double>();
            test_weight_blocks<float>();
        }
        test_kernel_choice();
        test_step_blocks();
        test_pool_sizes();
        test_recurrent_kernels<double>(1e-12);
        test_recurrent_kernels<float>(1e-5);
        test_gemm_tn<double>(1e-13);
        test_gemm_tn<float>(1e-5);
        test_gemm_rows<double>(1e-13);
        test_gemm_rows<float>(1e-5);
        test_elementwise<double>(4, 4);
        test_elementwise<float>(7, 5);
        test_optim<double>(1e-12);
        test_optim<float>(1e-5);
        for (const std::string& isa : available_isas()) {  // the loss's rows are per kernel set
            set_kernel_isa(isa);
            test_linear_and_loss<double>(1e-12);
            test_linear_and_loss<float>(1e-5);
        }
        test_invalid_arguments();
        set_num_threads(threads);
    } catch (const std::exception& e) {
        context = "uncaught exception";
        check(false, e.what(), "", __LINE__);
    }
    std::printf("test_core: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
