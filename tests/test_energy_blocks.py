"""AIS / SMC particle energies of the built-in targets by matrix products over fixed row blocks
(`sdekit.evidence.energies`): the per-point ``energy_fn`` up to reassociated sums, the same numbers for a row
whatever the batch around it, and unchanged below ENERGY_BLOCK_MIN_DIM."""

from __future__ import annotations

import numpy as np
import pytest

from sdekit.evidence.energies import ENERGY_BLOCK_MIN_DIM, ENERGY_BLOCK_ROWS, as_batch_energy
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.energy import energy_and_grad
from sdekit.targets.row_blocks import BLOCK_ROWS


def _mixture(d: int) -> GaussianMixture:
    rng = np.random.default_rng(d)
    a = rng.standard_normal((3, d, d))
    covs = a @ a.transpose(0, 2, 1) + d * np.eye(d)
    return GaussianMixture(np.array([0.2, 0.3, 0.5]), rng.standard_normal((3, d)), covs)


def _targets(d: int) -> list:
    mix = _mixture(d)
    return [mix, Gaussian(np.asarray(mix.params[1][0]), np.linalg.inv(mix.params[2][0]))]


def test_blocks_are_whole_multiples_of_the_matrix_product_rows() -> None:
    assert ENERGY_BLOCK_ROWS % BLOCK_ROWS == 0


@pytest.mark.parametrize("d", [ENERGY_BLOCK_MIN_DIM + 2, 16])
def test_blocked_energies_equal_the_per_point_energy_up_to_rounding(d: int) -> None:
    x = np.random.default_rng(1).standard_normal((2 * ENERGY_BLOCK_ROWS + 11, d)) * 2.0
    for target in _targets(d):
        u, g = as_batch_energy(target)(x)
        u0, g0 = energy_and_grad(target, x)
        # reassociated sums of a few d-term products: a few ulps of the largest term, far below 1e-12
        assert np.max(np.abs(u - u0) / np.maximum(np.abs(u0), 1.0)) < 1e-13
        assert np.max(np.abs(g - g0)) < 1e-13 * max(1.0, float(np.max(np.abs(g0))))
        # a planted bug (a gradient off by one part in 1e10) is far outside that band
        assert np.max(np.abs(g * (1 + 1e-10) - g0)) > 1e-13 * max(1.0, float(np.max(np.abs(g0))))


def test_a_rows_numbers_do_not_depend_on_the_batch_around_it() -> None:
    d = ENERGY_BLOCK_MIN_DIM + 1
    x = np.random.default_rng(2).standard_normal((ENERGY_BLOCK_ROWS + 13, d))
    for target in _targets(d):
        energy = as_batch_energy(target)
        u, g = energy(x)
        for i in (0, 5, ENERGY_BLOCK_ROWS - 1, ENERGY_BLOCK_ROWS + 12):
            ui, gi = energy(x[i:i + 1])
            assert np.array_equal(ui, u[i:i + 1]) and np.array_equal(gi, g[i:i + 1])
        uo, go = energy(x[::-1].copy())
        assert np.array_equal(uo, u[::-1]) and np.array_equal(go, g[::-1])


def test_below_the_blas_dimension_the_energies_are_the_per_point_ones_bit_for_bit() -> None:
    d = ENERGY_BLOCK_MIN_DIM - 1
    x = np.random.default_rng(3).standard_normal((37, d))
    for target in _targets(d):
        u, g = as_batch_energy(target)(x)
        u0, g0 = energy_and_grad(target, x)
        assert np.array_equal(u, u0) and np.array_equal(g, g0)
