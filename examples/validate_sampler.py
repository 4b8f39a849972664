"""Validate a Langevin sampler on a Gaussian mixture with sdekit.validate, and catch a planted bug.

    python examples/validate_sampler.py            # writes qq.png next to where it runs (needs matplotlib)

1. i.i.d. draws of pi pass `compare_with_law` (KS + CvM on marginals and projections, moments, Stein).
2. A correct ULA at a small step is "stationary" from pi; the same sampler with the tutorials'
   sqrt(h) noise (instead of sdekit's sqrt(2h)) is "wrong".
3. The local generator test localises the bug to states, one step at a time.
"""

import numba as nb
import numpy as np

import sdekit
from sdekit.processes import overdamped_langevin
from sdekit.targets import GaussianMixture
from sdekit.validate import compare_with_law, generator_scan, stationarity_check


@nb.njit
def half_noise(x, t, p):
    """The planted bug: unit noise, i.e. sqrt(h) per step instead of sqrt(2h)."""
    return 1.0


def main() -> None:
    pi = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [np.eye(2) * 0.5, [[1.0, 0.3], [0.3, 0.4]]])
    report = compare_with_law(pi.sample(20_000, seed=1), pi, name="exact draws")
    print(report.summary())
    try:
        report.figure("qq.png")
        print("figure: qq.png")
    except ImportError:
        print("(pip install matplotlib for the QQ / histogram figure)")

    good = overdamped_langevin(2, target=pi)
    buggy = sdekit.SDE(pi.score_fn, half_noise, dim=2, noise="additive", params=pi.params, name="buggy")
    for sde in (good, buggy):
        st = stationarity_check(sde, pi, h=1e-3, steps=200, n_paths=20_000, seed=0)
        print(st.summary())

    states = np.array([[0.0, 0.0], [2.0, 1.0], [-2.0, 0.0]])
    print("generator, correct:", generator_scan(good, states, n=100_000, sampler=good).summary())
    print("generator, buggy:  ", generator_scan(good, states, n=100_000, sampler=buggy).summary())


if __name__ == "__main__":
    main()
