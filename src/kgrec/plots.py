"""Figures, drawn with matplotlib's Agg backend and written atomically."""

from __future__ import annotations

from collections.abc import Sequence
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
