"""`rnncore bench --plot PATH`: the results as bar charts (log scale), one panel per measure.
matplotlib is the optional extra `plot`."""

from __future__ import annotations

import importlib

import numpy as np

INSTALL_HINT = "rnncore bench --plot needs matplotlib: pip install 'rnncore[plot]'"


def require_matplotlib():
    """The matplotlib Figure class, or SystemExit naming the extra to install."""
    try:
        importlib.import_module("matplotlib")
        return importlib.import_module("matplotlib.figure").Figure
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None


def _bars(ax, groups: list, impls: list, value: dict, ylabel: str) -> None:
    """Grouped bars: one group per x label, one bar per implementation."""
    width = 0.8 / len(impls)
    x = np.arange(len(groups))
    for i, impl in enumerate(impls):
        heights = [value.get((g, impl), np.nan) for g in groups]
        ax.bar(x + (i - (len(impls) - 1) / 2) * width, heights, width, label=impl)
    ax.set_xticks(x, groups, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _shape_panels(results: list) -> list:
    several_threads = len({r.threads for r in results}) > 1

    def label(r):
        return r.case.replace(" ", "\n", 1) + (f"\n{r.threads} thr" if several_threads else "")

    groups = list(dict.fromkeys(label(r) for r in results))
    impls = list(dict.fromkeys(r.impl for r in results))

    def panel(ylabel, get):
        value = {(label(r), r.impl): get(r) for r in results if get(r) is not None}
        return groups, impls, value, ylabel

    panels = [panel("forward ms", lambda r: r.forward_ms),
              panel("training step ms", lambda r: r.train_ms)]
    if any(r.train_extra_mb is not None for r in results):
        panels.append(panel("training step extra MB\n(floored at 0.01)", lambda r: None
                            if r.train_extra_mb is None else max(r.train_extra_mb, 0.01)))
    return panels


def _stream_panel(stream: list) -> tuple:
    groups = [f"H={h}" for h in dict.fromkeys(r.H for r in stream)]
    impls = list(dict.fromkeys(r.impl for r in stream))
    value = {(f"H={r.H}", r.impl): r.us_per_step for r in stream}
    return groups, impls, value, "streaming step us (B=1)"


def plot(path: str, results: list, stream: list | None = None, title: str = "") -> None:
    """Forward ms, training-step ms and (if measured) extra memory MB per shape and
    implementation; streaming us/step per hidden size (if given)."""
    Figure = require_matplotlib()
    panels = _shape_panels(results) if results else []
    if stream:
        panels.append(_stream_panel(stream))
    if not panels:
        raise ValueError("nothing to plot: no shape results and no streaming results")
    width = max(6.0, 1.1 * max(len(p[0]) for p in panels) + 2)
    fig = Figure(figsize=(width, 3.0 * len(panels)), layout="constrained")
    for ax, panel in zip(fig.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        _bars(ax, *panel)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
