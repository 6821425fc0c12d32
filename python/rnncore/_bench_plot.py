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


def plot(path: str, results: list, stream: list | None = None, title: str = "") -> None:
    """Forward ms, training-step ms, (extra memory MB) per shape and implementation; streaming
    us/step per hidden size. Missing values are left out."""
    Figure = require_matplotlib()
    several_threads = len({r.threads for r in results}) > 1
    groups, value = [], {}

    def group(r):
        g = r.case.replace(" ", "\n", 1) + (f"\n{r.threads} thr" if several_threads else "")
        groups.append(g) if g not in groups else None
        return g

    impls = list(dict.fromkeys(r.impl for r in results))
    panels = []
    if results:
        keyed = [(group(r), r) for r in results]
        panels += [("forward ms", {(g, r.impl): r.forward_ms for g, r in keyed}),
                   ("training step ms", {(g, r.impl): r.train_ms for g, r in keyed})]
        mem = {(g, r.impl): max(r.train_extra_mb, 0.01) for g, r in keyed
               if r.train_extra_mb is not None}
        if mem:
            panels.append(("training step extra MB (floor 0.01)", mem))
    if stream:
        panels.append(("stream", None))
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) + 2), 3.2 * max(1, len(panels))),
                 layout="constrained")
    axes = fig.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
    for ax, (ylabel, value) in zip(axes, panels):
        if value is None:
            s_groups = [f"H={h}" for h in dict.fromkeys(r.H for r in stream)]
            s_impls = list(dict.fromkeys(r.impl for r in stream))
            _bars(ax, s_groups, s_impls, {(f"H={r.H}", r.impl): r.us_per_step for r in stream},
                  "stream step us (B=1)")
        else:
            _bars(ax, groups, impls, value, ylabel)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
