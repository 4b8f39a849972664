"""A torchsde Brownian motion whose increments are sdekit's reproducible per-path streams.

Path p of a solve with seed s draws its increments from the xoshiro256++ stream (s, p, stream 0), and the
auxiliary normals of I_(1,0) from stream 1, in the order (step, substep, component): exactly the numbers the
Numba kernels draw (`sdekit.backends.numba.kernels.draw_increments` is called here). So on the same grid and
seed the torch and Numba backends see the same Brownian path, and a path's increments do not depend on the
batch size or on how the batch is split.

Over a step of length |h| assembled from q substeps of length hf = |h| / q, with xi_j, eta_j ~ N(0, hf):

    dW = sum_j xi_j,    I_(1,0) = sum_j [W_j hf + hf / 2 (xi_j + eta_j / sqrt 3)],

W_j the sum of the earlier xi. torchsde's space-time quantity U = h (W / 2 + H) with H the space-time Lévy area
(H ~ N(0, h / 12) independent of W) is this I_(1,0) (Foster, Lyons & Oberhauser 2020), so the SRK methods
(additive SRA1, Rößler 2010) read it as ``bm(t0, t1, return_U=True)``.

The motion answers queries on its grid only, in step order (each step drawn once, the last step cached);
an off-grid or out-of-order query raises, naming the times, instead of silently drawing other numbers.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import torch
import torchsde

from sdekit.backends.numba.kernels import draw_increments, seed_states
from sdekit.errors import SDEKitError
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN, noise_tables

PARALLEL_FROM_PATHS = 8192
_CHUNK = 1024


@nb.njit(parallel=True, cache=True)
def _increments_parallel(rng_w, rng_z, m, substeps, use_aux, habs, dw, dz, k_tab, w_tab, f_tab):
    """draw_increments over chunks of paths in parallel (each path's stream is its own)."""
    n = dw.shape[0]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(n_chunks):
        start = c * _CHUNK
        nc = min(_CHUNK, n - start)
        draw_increments(rng_w, rng_z, start, nc, m, substeps, use_aux, habs,
                        dw[start:start + nc], dz[start:start + nc], k_tab, w_tab, f_tab)


class StreamBrownian(torchsde.BaseBrownian):
    """Brownian motion of shape (n_paths, m) on the grid ``times`` (strictly increasing), fed by sdekit's streams.

    ``reversed_time``: the grid is s = -t of a decreasing sdekit grid t; the increments are the same (a Brownian
    motion in s), so a reverse-time solve draws what the Numba kernel draws on the decreasing grid.
    levy_area: "none" or "space-time" (also draw I_(1,0) for the SRK methods).
    """

    def __init__(self, times: np.ndarray, n_paths: int, m: int, *, seed: int, dtype: Any, device: Any,
                 substeps: int = 1, levy_area: str = "none", path_offset: int = 0):
        super().__init__()
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or times.size < 2 or not np.all(np.diff(times) > 0):
            raise SDEKitError("times must be a strictly increasing 1-D grid with at least two points")
        if levy_area not in ("none", "space-time"):
            raise SDEKitError(f"levy_area must be 'none' or 'space-time'; got {levy_area!r}")
        self._times = times
        self._index = {float(t): k for k, t in enumerate(times)}
        self._shape = (int(n_paths), int(m))
        self._dtype = dtype
        self._device = torch.device(device)
        self._substeps = int(substeps)
        self._levy = levy_area
        use_aux = levy_area == "space-time"
        self._rng_w = np.empty((n_paths, 4), dtype=np.uint64)
        self._rng_z = np.empty((n_paths if use_aux else 0, 4), dtype=np.uint64)
        seed_states(self._rng_w, np.uint64(seed), np.uint64(STREAM_BROWNIAN), np.uint64(path_offset))
        seed_states(self._rng_z, np.uint64(seed), np.uint64(STREAM_AUX), np.uint64(path_offset))
        self._dw = np.zeros((n_paths, m))
        self._dz = np.zeros((n_paths, m))
        self._next = 0
        self._cached: tuple[int, Any, Any] | None = None
        self._tables = noise_tables()

    # torchsde's BaseBrownian interface
    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> Any:
        return self._dtype

    @property
    def device(self) -> Any:
        return self._device

    @property
    def levy_area_approximation(self) -> str:
        return self._levy

    def __repr__(self) -> str:
        return (f"StreamBrownian(shape={self._shape}, steps={self._times.size - 1}, substeps={self._substeps}, "
                f"levy_area={self._levy!r}, dtype={self._dtype}, device={self._device})")

    def _step_of(self, ta: Any, tb: Any) -> int:
        ka = self._index.get(float(ta))
        kb = self._index.get(float(tb)) if tb is not None else None
        if ka is None or kb is None or kb != ka + 1:
            raise SDEKitError(
                f"StreamBrownian answers queries (t_k, t_k+1) on its grid only; got ({float(ta)!r}, "
                f"{None if tb is None else float(tb)!r})")
        return ka

    def _draw(self, k: int) -> tuple[Any, Any]:
        if self._cached is not None and self._cached[0] == k:
            return self._cached[1], self._cached[2]
        if k != self._next:
            raise SDEKitError(f"StreamBrownian draws steps in order: step {k} asked, step {self._next} is next")
        habs = float(self._times[k + 1] - self._times[k])
        n, m = self._shape
        use_aux = self._levy == "space-time"
        if n >= PARALLEL_FROM_PATHS:
            _increments_parallel(self._rng_w, self._rng_z, m, self._substeps, use_aux, habs, self._dw, self._dz,
                                 *self._tables)
        else:
            draw_increments(self._rng_w, self._rng_z, 0, n, m, self._substeps, use_aux, habs, self._dw, self._dz,
                            *self._tables)
        dw = torch.from_numpy(self._dw.copy()).to(device=self._device, dtype=self._dtype)
        dz = torch.from_numpy(self._dz.copy()).to(device=self._device, dtype=self._dtype) if use_aux else None
        self._cached = (k, dw, dz)
        self._next = k + 1
        return dw, dz

    def __call__(self, ta: Any, tb: Any = None, return_U: bool = False, return_A: bool = False) -> Any:  # noqa: N803
        """W(tb) - W(ta) for a grid step (ta, tb); with return_U also U = I_(1,0) = int_ta^tb (W_s - W_ta) ds."""
        if return_A:
            raise SDEKitError("StreamBrownian has no space-space Lévy area (return_A); the log-ODE method needs it")
        if tb is None:
            raise SDEKitError("StreamBrownian gives increments W(tb) - W(ta); call it with two times")
        dw, dz = self._draw(self._step_of(ta, tb))
        if return_U:
            if dz is None:
                raise SDEKitError("this method needs I_(1,0) (return_U); build StreamBrownian with "
                                  "levy_area='space-time'")
            return dw, dz
        return dw
