"""The space-space Lévy area (sdekit.noise.levy_area): moments of each approximation against the exact values, the
Fourier truncation's pathwise error, Chen's relation, and the kernels' draws against the NumPy reference.

Statistical checks are z-tests of sample means of products (N = 20000 paths, fixed seeds) at |z| <= 5.5: a
two-sided normal tail of 3.8e-8 per statistic, at most 20 statistics per test, so a false alarm rate <= 1e-6 per
test (Bonferroni).
Exact moments over a step of length h (A = H dW^T - dW H^T + A^B, H ~ N(0, h/12) independent of dW, Var A^B = h^2/12):
E A_jk = 0, E A_jk^2 = h^2/4, E[A_jk H_j dW_k] = h^2/12, E[A_jk dW_j H_k] = -h^2/12, E[A_jk dW_j dW_k] = 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdekit.backends.numba.kernels import seed_states
from sdekit.backends.reference_milstein_matrix import area_increments
from sdekit.noise import PathStreams
from sdekit.noise.levy_area import (
    chen_join,
    davie_area,
    draw_area_increments,
    foster_area,
    fourier_area,
    fourier_terms,
    rho,
    spacetime_part,
)
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN, noise_tables

N = 20000
Z = 5.5


def _zfail(samples: np.ndarray, target: float, what: str) -> list[str]:
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    z = (samples.mean() - target) / se
    return [] if abs(z) <= Z else [f"{what}: mean {samples.mean():.4g}, expected {target:.4g} (z = {z:.1f})"]


def moment_failures(area: np.ndarray, dw: np.ndarray, hh: np.ndarray, h: float, var_ab: float) -> list[str]:
    """Failed checks of E A = 0, E A^2 = h^2/6 + var_ab, E[A_jk H_j W_k] = h^2/12, E[A_jk W_j H_k] = -h^2/12,
    E[A_jk W_j W_k] = 0 over the pairs j < k (var_ab: the variance of the bridge part A^B of this approximation)."""
    fails = []
    m = dw.shape[1]
    for j in range(m):
        for k in range(j + 1, m):
            a = area[:, j, k]
            fails += _zfail(a, 0.0, f"E A_{j}{k}")
            fails += _zfail(a * a, h * h / 6.0 + var_ab, f"E A_{j}{k}^2")
            fails += _zfail(a * hh[:, j] * dw[:, k], h * h / 12.0, f"E A_{j}{k} H_{j} W_{k}")
            fails += _zfail(a * dw[:, j] * hh[:, k], -h * h / 12.0, f"E A_{j}{k} W_{j} H_{k}")
            fails += _zfail(a * dw[:, j] * dw[:, k], 0.0, f"E A_{j}{k} W_{j} W_{k}")
    return fails


def _fourier_inputs(seed: int, m: int, p: int, h: float):
    rng = np.random.default_rng(seed)
    dw = math.sqrt(h) * rng.standard_normal((N, m))
    u, v = rng.standard_normal((N, m, p)), rng.standard_normal((N, m, p))
    mu = rng.standard_normal((N, m))
    hh = -math.sqrt(h / 2.0) / math.pi * (u @ (1.0 / np.arange(1, p + 1))) + math.sqrt(h * rho(p)) * mu
    return dw, u, v, mu, hh


def _var_ab(h: float, p: int) -> float:
    return h * h / (2.0 * math.pi**2) * float(np.sum(1.0 / np.arange(1, p + 1) ** 2))


def test_fourier_area_moments() -> None:
    """KPW truncation at the solvers' p: exact (dW, H) part, A^B variance h^2/(2 pi^2) sum_{r<=p} 1/r^2."""
    h = 0.1
    p = fourier_terms(h)
    dw, u, v, mu, hh = _fourier_inputs(1, 3, p, h)
    area = fourier_area(dw, u, v, mu, h)
    assert np.allclose(area, -area.transpose(0, 2, 1))
    assert moment_failures(area, dw, hh, h, _var_ab(h, p)) == []
    # with 100 terms Var A^B is within 0.6% of the exact h^2/12, so the exact moments hold within the z-test
    dw, u, v, mu, hh = _fourier_inputs(2, 2, 100, h)
    assert moment_failures(fourier_area(dw, u, v, mu, h), dw, hh, h, h * h / 12.0) == []


def test_fourier_truncation_error_is_kpw_bound() -> None:
    """Pathwise error of p terms against P = 400 terms of the same series (H the same on both, the tail of H given
    to the p-term version through mu): E|A_p - A_P|^2 = h^2/(2 pi^2) sum_{p<r<=P} 1/r^2, <= h^2/(2 pi^2 p)."""
    h, p, big = 0.2, 4, 400
    dw, u, v, _, _ = _fourier_inputs(3, 2, big, h)
    inv_r = 1.0 / np.arange(1, big + 1)
    tail = -math.sqrt(h / 2.0) / math.pi * (u[:, :, p:] @ inv_r[p:])
    exact = fourier_area(dw, u, v, np.zeros((N, 2)), h)
    approx = fourier_area(dw, u[:, :, :p], v[:, :, :p], tail / math.sqrt(h * rho(p)), h)
    err2 = (approx[:, 0, 1] - exact[:, 0, 1]) ** 2
    target = h * h / (2.0 * math.pi**2) * float(np.sum(inv_r[p:] ** 2))
    assert _zfail(err2, target, "E|A_p - A_P|^2") == []
    assert target <= h * h / (2.0 * math.pi**2 * p)


def _bridge_h2(area: np.ndarray, dw: np.ndarray, hh: np.ndarray) -> np.ndarray:
    """(A^B_01)^2 (H_0^2 + H_1^2): exact mean 7 h^3 / 360 (E[(A^B)^2 | H] = h^2/20 + h S/5, S = H_0^2 + H_1^2,
    E S = h/6, E S^2 = h^2/18); an A^B independent of H (Davie) gives h^3/72 = 5 h^3/360."""
    s = hh[:, 0] ** 2 + hh[:, 1] ** 2
    return (area - spacetime_part(dw, hh))[:, 0, 1] ** 2 * s


def test_davie_and_foster_moments() -> None:
    """Davie and Foster: exact mean, variance and covariances with (dW, H); Foster's (and the series', 100 terms)
    bridge part has the conditional variance given H that Davie's lacks; the conditional mean alone is short of
    the variance by h^2/12."""
    h = 0.3
    rng = np.random.default_rng(4)
    dw = math.sqrt(h) * rng.standard_normal((N, 2))
    hh = math.sqrt(h / 12.0) * rng.standard_normal((N, 2))
    lam = rng.standard_normal((N, 2, 2))
    davie, foster = davie_area(dw, hh, lam, h), foster_area(dw, hh, lam, h)
    assert moment_failures(davie, dw, hh, h, h * h / 12.0) == []
    assert moment_failures(foster, dw, hh, h, h * h / 12.0) == []
    assert moment_failures(spacetime_part(dw, hh), dw, hh, h, 0.0) == []
    assert _zfail(_bridge_h2(foster, dw, hh), 7 * h**3 / 360, "Foster E[(A^B)^2 S]") == []
    assert _zfail(_bridge_h2(davie, dw, hh), 5 * h**3 / 360, "Davie E[(A^B)^2 S]") == []
    assert _zfail(_bridge_h2(davie, dw, hh), 7 * h**3 / 360, "Davie is not Foster") != []
    dw, u, v, mu, hh = _fourier_inputs(5, 2, 100, h)
    assert _zfail(_bridge_h2(fourier_area(dw, u, v, mu, h), dw, hh), 7 * h**3 / 360, "series E[(A^B)^2 S]") == []


@pytest.mark.parametrize("bug", ["bridge_term_dropped", "bridge_variance_doubled", "transposed"])
def test_planted_bugs_fail_moment_checks(bug: str) -> None:
    """A missing term (the bridge part A^B dropped), a wrong variance and a sign error fail."""
    h = 0.1
    p = fourier_terms(h)
    dw, u, v, mu, hh = _fourier_inputs(1, 3, p, h)
    area = fourier_area(dw, u, v, mu, h)
    if bug == "bridge_term_dropped":
        wrong = spacetime_part(dw, hh)
    elif bug == "bridge_variance_doubled":
        wrong = spacetime_part(dw, hh) + math.sqrt(2.0) * (area - spacetime_part(dw, hh))
    else:
        wrong = area.transpose(0, 2, 1)
    assert moment_failures(wrong, dw, hh, h, _var_ab(h, p)) != []


def _kernel_draw(seed: int, n: int, m: int, substeps: int, habs: float, calls: int = 1):
    rng_w, rng_z = np.empty((n, 4), np.uint64), np.empty((n, 4), np.uint64)
    seed_states(rng_w, np.uint64(seed), np.uint64(STREAM_BROWNIAN))
    seed_states(rng_z, np.uint64(seed), np.uint64(STREAM_AUX))
    out = []
    for _ in range(calls):
        dw, area = np.empty((n, m)), np.empty((n, m * m))
        draw_area_increments(rng_w, rng_z, 0, n, m, substeps, habs, dw, area, *noise_tables())
        out.append((dw, area.reshape(n, m, m)))
    return out


def test_kernel_draws_match_reference_and_chen() -> None:
    """The Numba draw equals the NumPy reference's (same streams, same order); a coarse step's area drawn with
    substeps = 2 is Chen's join of the two fine steps' areas drawn one at a time."""
    n, m, h = 6, 3, 0.05
    (dw, area), = _kernel_draw(7, n, m, 3, 3 * h)
    ref_dw, ref_area = area_increments(PathStreams(7, n, STREAM_BROWNIAN), PathStreams(7, n, STREAM_AUX), n, m, 3,
                                       3 * h)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(area.reshape(n, m * m), ref_area, rtol=1e-12, atol=1e-15)
    (dw2, area2), = _kernel_draw(7, n, m, 2, 2 * h)
    (dw_a, a_a), (dw_b, a_b) = _kernel_draw(7, n, m, 1, h, calls=2)
    np.testing.assert_allclose(dw2, dw_a + dw_b, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(area2, chen_join(a_a, dw_a, a_b, dw_b), rtol=1e-12, atol=1e-15)
    assert not np.allclose(area2, a_a + a_b)  # the cross term matters


def test_kernel_chen_joined_area_moments() -> None:
    """Areas over [0, 1] joined from 4 fine draws: E A = 0, E A^2 = 1/4 less the fine truncations' deficits
    sum_q hf^2/(2 pi^2) sum_{r>p} 1/r^2, E[A W_j W_k] = 0."""
    habs, q = 1.0, 4
    hf = habs / q
    p = fourier_terms(hf)
    (dw, area), = _kernel_draw(11, N, 2, q, habs)
    deficit = q * hf * hf / (2.0 * math.pi**2) * (math.pi**2 / 6.0 - float(np.sum(1.0 / np.arange(1, p + 1) ** 2)))
    a = area[:, 0, 1]
    fails = (_zfail(a, 0.0, "E A") + _zfail(a * a, habs**2 / 4.0 - deficit, "E A^2")
             + _zfail(a * dw[:, 0] * dw[:, 1], 0.0, "E A W_0 W_1") + _zfail(dw[:, 0] ** 2, habs, "E W^2"))
    assert fails == []
    # planted: joined without Chen's cross term the variance is short by (habs^2 - q hf^2)/4
    (dw_f, area_f), = _kernel_draw(11, N, 2, 1, hf)
    assert _zfail(area_f[:, 0, 1] ** 2 * q, habs**2 / 4.0 - deficit, "no cross term") != []
