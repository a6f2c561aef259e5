"""Figures, drawn with matplotlib's Agg backend and written atomically."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from kgrec.data.registry import atomic_file  # noqa: E402
from kgrec.errors import ConfigError  # noqa: E402


def check_plot_path(path: str | Path) -> Path:
    """``path`` as a figure file: not a folder, and a suffix matplotlib can write (none:
    PNG); else :class:`ConfigError`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--plot {path}: is a folder; give a file name such as heatmap.png")
    fmt = path.suffix.lstrip(".").lower()
    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt and fmt not in formats:
        raise ConfigError(f"--plot {path}: unknown image format {path.suffix!r}; use one of "
                          f"{', '.join('.' + f for f in sorted(formats))}")
    return path


def plot_preference_heatmap(user_dist: Sequence[float], item_dist: Sequence[float],
                            field_names: Sequence[str], path: str | Path) -> Path:
    """HKRM Figure 5: the user's preference distribution P(A|q) against the item's
    attribute-importance distribution P_hat(A|t).

    Cell ``(j, k)`` is ``P(a_j|q) * P_hat(a_k|t)`` (the joint of the two distributions, so
    a bright diagonal cell means user and item put their mass on the same field); the two
    marginals are written in the tick labels. The image format follows ``path``'s suffix.
    """
    u = np.asarray(user_dist, dtype=float).ravel()
    v = np.asarray(item_dist, dtype=float).ravel()
    names = [str(n) for n in field_names]
    if not (len(u) == len(v) == len(names)) or len(names) == 0:
        raise ValueError("user_dist, item_dist and field_names need the same non-zero length")
    path = check_plot_path(path)
    joint = np.outer(u, v)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * n, 1.0 + 0.8 * n))
    try:
        im = ax.imshow(joint, cmap="viridis", vmin=0.0, vmax=max(float(joint.max()), 1e-12))
        ax.set_xticks(range(n), [f"{a}\n{p:.2f}" for a, p in zip(names, v, strict=True)],
                      rotation=45, ha="right")
        ax.set_yticks(range(n), [f"{a} {p:.2f}" for a, p in zip(names, u, strict=True)])
        ax.set_xlabel("item attribute importance P̂(A|t)")
        ax.set_ylabel("user preference P(A|q)")
        for j in range(n):
            for k in range(n):
                ax.text(k, j, f"{joint[j, k]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if joint[j, k] < 0.5 * joint.max() else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        with atomic_file(path) as fh:
            fig.savefig(fh, format=(path.suffix.lstrip(".").lower() or "png"), dpi=150)
    finally:
        plt.close(fig)
    return path


@dataclass
class Series:
    """One line or bar set of a study figure: ``y`` (with optional error bars ``err``) at
    ``x``; ``paper`` series are drawn dashed with open markers (values from the paper)."""

    label: str
    x: list
    y: list[float]
    err: list[float] | None = None
    paper: bool = False


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_file(path) as fh:
        fig.savefig(fh, format=(path.suffix.lstrip(".").lower() or "png"), dpi=120)
    return path


def plot_curves(path: str | Path, title: str, xlabel: str, panels: dict[str, list[Series]],
                logx: bool = False, xticks: Sequence | None = None,
                paper_axis: str | None = None, min_span: float | None = None) -> Path:
    """One subplot per entry of ``panels`` (its key is the y label), each with its series
    as lines against ``x`` (MKR Figures 3-5, Table 3 as curves). With ``paper_axis`` (a
    label), the paper's series go on a second y axis on the right (values of another
    dataset, whose scale would flatten ours). ``min_span``: the left y axis covers at least
    this range, so that noise is not magnified into a trend."""
    path = check_plot_path(path)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.6), squeeze=False)
    try:
        for ax0, (ylabel, series) in zip(axes[0], panels.items(), strict=True):
            twin = ax0.twinx() if paper_axis and any(s.paper for s in series) else None
            for k, s in enumerate(series):
                ax = twin if twin is not None and s.paper else ax0
                # the paper's points are joined only where it gives a curve (not two points)
                style = dict(linestyle="--" if len(s.x) > 2 else "none", marker="o",
                             markerfacecolor="none", color="0.35", markersize=7) \
                    if s.paper else dict(linestyle="-", marker="s", color=f"C{k}")
                pts = [(x, y, e) for x, y, e in zip(s.x, s.y, s.err or [None] * len(s.y),
                                                    strict=True)
                       if y is not None and np.isfinite(y)]
                if not pts:
                    continue
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar(xs, ys, yerr=None if s.err is None else es, label=s.label,
                            capsize=3, **style)
            ax = ax0
            lo, hi = ax.get_ylim()
            if min_span is not None and hi - lo < min_span:
                mid = (lo + hi) / 2
                ax.set_ylim(mid - min_span / 2, mid + min_span / 2)
            if logx:
                ax.set_xscale("log")
            if xticks is not None:
                ax.set_xticks(list(xticks), [str(t) for t in xticks])
                ax.minorticks_off()
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            handles, labels = ax.get_legend_handles_labels()
            if twin is not None:
                twin.set_ylabel(f"{ylabel}, {paper_axis}", color="0.35")
                more = twin.get_legend_handles_labels()
                handles, labels = handles + more[0], labels + more[1]
            ax.legend(handles, labels, fontsize=7, loc="best", framealpha=0.7)
        fig.suptitle(title, fontsize=10)
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_bars(path: str | Path, title: str, groups: Sequence[str], panels: dict[str, list[Series]]
              ) -> Path:
    """Grouped bars, one subplot per entry of ``panels``: for each group (x position) one
    bar per series, ``series.y[i]`` being group ``i``'s value (``None``: no bar); paper
    series are hatched (MKR Tables 2 and 4)."""
    path = check_plot_path(path)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.6, 1.6 * len(groups)) * len(panels), 3.8),
                             squeeze=False)
    try:
        for ax, (ylabel, series) in zip(axes[0], panels.items(), strict=True):
            width = 0.8 / max(len(series), 1)
            lo = math.inf
            hatches = iter(["//", "\\\\", "xx", "..", "++"] * len(series))
            for k, s in enumerate(series):
                xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
                pts = [(x, y, e) for x, y, e in zip(xs, s.y, s.err or [0.0] * len(s.y), strict=True)
                       if y is not None and np.isfinite(y)]
                if not pts:
                    continue
                bx, by, be = zip(*pts, strict=True)
                lo = min(lo, *by)
                ax.bar(bx, by, width, yerr=be if s.err is not None else None, capsize=3,
                       label=s.label, color="white" if s.paper else f"C{k}",
                       edgecolor="0.3" if s.paper else None, hatch=next(hatches) if s.paper else None)
            ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize=8)
            if math.isfinite(lo) and lo > 0:
                ax.set_ylim(bottom=max(0.0, lo - 0.1 * abs(lo) - 0.02))
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=10)
        return _save(fig, path)
    finally:
        plt.close(fig)
