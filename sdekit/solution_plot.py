"""`Solution.plot`: sample paths against time and the marginal histogram at the last save time (matplotlib)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.errors import SDEKitError


def plot_solution(ts: np.ndarray, ys: np.ndarray, path: Any = None, *, n_paths: int = 20, dim: int = 0,
                  bins: int = 60) -> Any:
    """A figure with two panels: component ``dim`` of the first ``n_paths`` paths (ys: (n_saves, n_paths, dim))
    over the save times ts, and the histogram (density) of that component over all finite paths at the last save
    time. Saved to ``path`` if given."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SDEKitError("Solution.plot needs matplotlib: pip install 'sdekit[plots]'") from exc
    ts = np.asarray(ts, dtype=float)
    for name, v, hi in (("n_paths", n_paths, None), ("dim", dim, ys.shape[2] - 1), ("bins", bins, None)):
        lo = 0 if name == "dim" else 1
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
            bound = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
            raise SDEKitError(f"{name} must be {bound}; got {v!r}")
    fig, (ax_paths, ax_hist) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    shown = ys[:, :n_paths, dim]
    ax_paths.plot(ts, shown, lw=0.8, alpha=0.7)
    ax_paths.set_xlabel("t")
    ax_paths.set_ylabel(f"x[{dim}]")
    ax_paths.set_title(f"{shown.shape[1]} of {ys.shape[1]} paths")
    last = ys[-1, :, dim]
    last = last[np.isfinite(last)]
    ax_hist.hist(last, bins=bins, density=True, orientation="horizontal", color="C0", alpha=0.7)
    ax_hist.set_xlabel("density")
    ax_hist.set_title(f"t = {ts[-1]:.4g}, {last.size} finite paths")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
