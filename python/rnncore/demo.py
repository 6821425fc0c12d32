"""`rnncore demo`: train two small models end to end, offline, in well under a minute on 2 cores.

1. A character-level language model on the docstrings of Python's standard library (or on
   ``--text FILE``): loss per epoch, then a text sampled from it.
2. A next-step forecaster on a generated noisy price-like series: its test error against the
   naive last-value forecast ("tomorrow's price is today's").
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import threads
from .datasets import CharVocab, price_series, stdlib_text
from .model import RNNModel
from .optim import Adam
from .sampling import sample
from .training import fit

say = tqdm.write  # print that keeps clear of progress bars (stdout)

# Language model: B parallel streams over the text, truncated BPTT of K steps, Adam with clipping.
LM_BATCH, LM_TBPTT, LM_LR, LM_CLIP = 16, 25, 5e-3, 5.0
LM_EMBED = 32  # each character id is looked up as a vector of this size (rnncore.Embedding)
# Forecaster: series length, train fraction, streams, truncation, learning rate, head width.
FC_STEPS, FC_TRAIN, FC_BATCH, FC_TBPTT, FC_LR, FC_HEAD = 3000, 0.8, 8, 50, 3e-3, 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", metavar="FILE", help="train the language model on this UTF-8 "
                        "text file instead of the standard library's docstrings")
    parser.add_argument("--chars", type=int, default=40_000,
                        help="use this many characters of the text (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=30,
                        help="language-model epochs (default %(default)s)")
    parser.add_argument("--forecast-epochs", type=int, default=30,
                        help="forecaster epochs (default %(default)s)")
    parser.add_argument("--hidden", type=int, default=128,
                        help="hidden units of the language model (default %(default)s; the "
                             "forecaster uses a quarter, at least 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed for everything (default 0)")
    parser.add_argument("--temperature", type=float, default=0.7,
                        help="sampling temperature (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for rnncore's kernels and numpy's BLAS (default 1: these "
                             "shapes are too small to gain from more, and one thread stays fast "
                             "on a busy machine)")
    parser.add_argument("--plot", metavar="OUT.png", help="save the loss curves and the forecast "
                        "against the truth to this image (needs matplotlib: rnncore[plot])")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """The demo; returns the exit status."""
    for name in ("chars", "epochs", "forecast_epochs", "hidden", "threads"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"rnncore demo: error: --{name.replace('_', '-')} must be positive")
    if not args.temperature >= 0:
        raise SystemExit("rnncore demo: error: --temperature must be >= 0")
    if args.plot:
        _require_matplotlib()
    text = _read_text(args)
    start = time.perf_counter()
    with _blas_threads(args.threads):
        lm = language_model(text, args.hidden, args.epochs, args.seed, args.temperature,
                            progress=not args.no_progress)
        fc = forecaster(max(8, args.hidden // 4), args.forecast_epochs, args.seed,
                        progress=not args.no_progress)
    if args.plot:
        plot(lm, fc, args.plot)
        say(f"\nplot written to {args.plot}")
    say(f"\ndemo finished in {time.perf_counter() - start:.1f} s")
    return 0


# ---- 1. character-level language model -----------------------------------------------------------

@dataclass
class LanguageModelResult:
    history: list  # mean training loss per epoch, nats per character
    unigram_loss: float  # the loss of a model that only knows the character frequencies
    sample: str


def language_model(text: str, hidden: int, epochs: int, seed: int, temperature: float = 0.7,
                   progress: bool = True) -> LanguageModelResult:
    vocab = CharVocab(text)
    V, ids = len(vocab), vocab.encode(text)
    freq = np.bincount(ids, minlength=V) / ids.size
    unigram = float(-(freq * np.log(freq)).sum())
    # Cut the text into LM_BATCH contiguous streams; step t of stream b predicts the next char.
    T = (ids.size - 1) // LM_BATCH
    streams = ids[:T * LM_BATCH + 1]
    x = streams[:-1].reshape(LM_BATCH, T).T  # (T, B) input ids
    y = streams[1:].reshape(LM_BATCH, T).T  # (T, B) next-char labels
    model = RNNModel(LM_EMBED, hidden, V, vocab_size=V, seed=seed)
    say(f"1) character-level language model: {ids.size} characters, {V} distinct; {model}")
    say(f"   Adam lr {LM_LR}, batch {LM_BATCH} streams, truncated BPTT {LM_TBPTT} steps; loss in "
        f"nats/char (guessing from letter frequencies alone: {unigram:.3f})")
    history = fit(model, x, y, loss="cross_entropy",
                  optimizer=Adam(model, lr=LM_LR), epochs=epochs, batch_size=LM_BATCH,
                  tbptt=LM_TBPTT, clip=LM_CLIP, shuffle=False, progress=progress,
                  callback=_epoch_printer("   ", epochs))
    prompt = "The " if all(c in vocab.chars for c in "The ") else text[0]
    generated = sample(model, vocab.encode(prompt), 400, temperature=temperature, seed=seed)
    text_out = prompt + vocab.decode(generated)
    say(f"   loss fell from {history[0]:.3f} to {history[-1]:.3f}; sampled text "
        f"(temperature {temperature}):\n" + "-" * 72 + f"\n{text_out}\n" + "-" * 72)
    return LanguageModelResult(history, unigram, text_out)


# ---- 2. forecaster of a price-like series --------------------------------------------------------

@dataclass
class ForecastResult:
    history: list  # mean training loss per epoch (MSE of standardised log returns)
    truth: np.ndarray  # test prices
    forecast: np.ndarray  # the model's one-step-ahead forecasts of them
    naive: np.ndarray  # the last value before each
    rmse: float
    naive_rmse: float


def forecaster(hidden: int, epochs: int, seed: int, progress: bool = True) -> ForecastResult:
    prices = price_series(FC_STEPS, seed=seed)
    log_p = np.log(prices)
    r = np.diff(log_p)  # r[t] = log p[t+1] - log p[t], the log return
    split = int(FC_TRAIN * r.size)
    mu, sd = r[:split].mean(), r[:split].std()
    z = (r - mu) / sd  # standardised with training statistics only
    # Training: FC_BATCH contiguous streams of the training returns; input z[t], target z[t+1].
    T = (split - 1) // FC_BATCH
    X = z[:T * FC_BATCH].reshape(FC_BATCH, T).T[..., None]  # (T, B, 1)
    Y = z[1:T * FC_BATCH + 1].reshape(FC_BATCH, T).T[..., None]
    model = RNNModel(1, hidden, 1, head=(FC_HEAD,), seed=seed)
    say(f"\n2) next-step forecaster of a noisy price-like series ({FC_STEPS} steps, the first "
        f"{FC_TRAIN:.0%} to train, the rest to test); {model}")
    say("   input: today's log return; output: tomorrow's; loss: MSE of standardised returns")
    history = fit(model, X, Y, optimizer=Adam(model, lr=FC_LR), epochs=epochs,
                  batch_size=FC_BATCH, tbptt=FC_TBPTT, seed=seed, progress=progress,
                  callback=_epoch_printer("   ", epochs, every=max(1, epochs // 6)))
    # Run over the whole series (the state warms up on the training part): step t reads z[..t]
    # and predicts r[t+1], i.e. the price p[t+2] = p[t+1] * exp(r[t+1]).
    model.eval()
    pred = model(z[:-1, None])[:, 0] * sd + mu
    test = slice(split, None)
    truth = prices[2:][test]
    forecast = (prices[1:-1] * np.exp(pred))[test]
    naive = prices[1:-1][test]
    rmse = float(np.sqrt(np.mean((forecast - truth) ** 2)))
    naive_rmse = float(np.sqrt(np.mean((naive - truth) ** 2)))
    verdict = "beats" if rmse < naive_rmse else "does NOT beat"
    say(f"   test RMSE over {truth.size} steps: forecaster {rmse:.4f}, naive last-value "
        f"{naive_rmse:.4f} (ratio {rmse / naive_rmse:.2f}): the forecaster {verdict} it")
    return ForecastResult(history, truth, forecast, naive, rmse, naive_rmse)


# ---- helpers -------------------------------------------------------------------------------------

def _epoch_printer(indent: str, epochs: int, every: int = 1):
    width = len(str(epochs))

    def callback(epoch: int, loss: float) -> None:
        if epoch % every == 0 or epoch in (1, epochs):
            say(f"{indent}epoch {epoch:{width}d}/{epochs}  loss {loss:.4f}")

    return callback


def _read_text(args) -> str:
    if args.text is None:
        text = stdlib_text(args.chars)
        source = "the standard library's docstrings"
    else:
        try:
            with open(args.text, encoding="utf-8", errors="replace") as f:
                text = f.read(args.chars)
        except OSError as err:
            raise SystemExit(f"rnncore demo: error: cannot read --text {args.text}: "
                             f"{err.strerror or err}") from None
        source = args.text
    if len(text) < 2 * LM_BATCH * LM_TBPTT:
        raise SystemExit(f"rnncore demo: error: {source} gave {len(text)} characters; the "
                         f"language model needs at least {2 * LM_BATCH * LM_TBPTT} (docstrings "
                         "are missing under python -OO: pass --text FILE)")
    return text


@contextmanager
def _blas_threads(n: int):
    """Use n threads in rnncore's kernels and, if threadpoolctl is installed, in numpy's own BLAS
    (the head's GEMMs run in rnncore's kernels; numpy's BLAS is held too so that nothing in the
    process runs on more threads than asked); restore the previous settings after."""
    previous = threads.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits

        numpy_limit = threadpool_limits(n, user_api="blas")
    except ImportError:
        numpy_limit = nullcontext()
    with numpy_limit:
        threads.set_num_threads(n)
        try:
            yield
        finally:
            threads.set_num_threads(previous)


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("rnncore demo: error: --plot needs matplotlib, which is not installed: "
                         "pip install 'rnncore[plot]' (or pip install matplotlib)") from None


def plot(lm: LanguageModelResult, fc: ForecastResult, path: str) -> None:
    """Loss curves of both models and the forecast against the truth, saved to `path`."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    fig = Figure(figsize=(12, 4), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=(1, 1, 2))
    ax1.plot(range(1, len(lm.history) + 1), lm.history, marker="o")
    ax1.axhline(lm.unigram_loss, color="gray", ls="--", label="letter frequencies only")
    ax1.set(title="language model", xlabel="epoch", ylabel="loss (nats/char)")
    ax1.legend()
    ax2.plot(range(1, len(fc.history) + 1), fc.history, marker=".")
    ax2.set(title="forecaster", xlabel="epoch", ylabel="MSE (standardised returns)")
    last = slice(-min(150, fc.truth.size), None)  # the end of the test part, to see the steps
    steps = np.arange(fc.truth.size)[last]
    ax3.plot(steps, fc.truth[last], color="black", marker=".", lw=1, label="truth")
    ax3.plot(steps, fc.forecast[last], lw=1, label=f"forecaster (test RMSE {fc.rmse:.3f})")
    ax3.plot(steps, fc.naive[last], lw=1, ls=":",
             label=f"last value (test RMSE {fc.naive_rmse:.3f})")
    ax3.set(title="next-step forecast, end of the test part", xlabel="test step", ylabel="price")
    ax3.legend()
    fig.savefig(path, dpi=100)
