"""sdekit.math: one definition that runs on NumPy arrays, inside Numba kernels, and on torch tensors."""

import numba as nb
import numpy as np
import pytest

import sdekit
import sdekit.math as sm


def drift(x, t, p):
    """Uses only sdekit.math, so it is backend-neutral."""
    return -p[0] * sm.tanh(x) + sm.sin(t) * sm.exp(-sm.square(x)) + sm.sqrt(sm.abs(x) + 1.0) * 0.0


def test_same_values_in_numpy_and_numba():
    x = np.linspace(-0.9, 2, 12).reshape(4, 3)
    p = np.array([0.7])
    assert np.allclose(nb.njit(drift)(x, 0.3, p), drift(x, 0.3, p), rtol=1e-14)
    for name in ("sin", "cos", "tan", "exp", "log1p", "expm1", "tanh", "sinh", "cosh", "arctan", "abs", "square"):
        fn = getattr(sm, name)
        jitted = nb.njit(lambda v, fn=fn: fn(v))
        assert np.allclose(jitted(x), getattr(np, name)(x), equal_nan=True), name
    assert np.allclose(nb.njit(lambda a, b: sm.maximum(a, b))(x, 0.5), np.maximum(x, 0.5))


def test_backend_neutral_drift_runs_in_simulate_on_both_backends():
    sde = sdekit.SDE(drift, lambda x, t, p: 0.3, dim=3, noise="additive", params=[0.7])
    a = sdekit.simulate(sde, np.zeros(3), (0.0, 1.0), steps=20, n_paths=50, seed=1)
    b = sdekit.simulate(sde, np.zeros(3), (0.0, 1.0), steps=20, n_paths=50, seed=1, backend="numpy")
    assert np.allclose(a.ys, b.ys, rtol=1e-12, atol=1e-14)


def test_torch_tensors_dispatch_to_torch():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-2, 2, 12, dtype=torch.float64).reshape(4, 3)
    out = drift(x, 0.3, torch.tensor([0.7], dtype=torch.float64))
    assert isinstance(out, torch.Tensor)
    assert np.allclose(out.numpy(), drift(x.numpy(), 0.3, np.array([0.7])))


def masked(x, t, p):
    """Uses where, clip, zeros_like and stack: backend-neutral piecewise drift."""
    pieces = sm.stack((sm.clip(x[:, 0], -1.0, 1.0), sm.maximum(x[:, 1], 0.0)), axis=1)
    return sm.where(x > 0.0, -x, 0.5 * pieces) + sm.zeros_like(x) * p[0]


def test_where_clip_zeros_like_stack_agree_on_numpy_numba_and_torch():
    x = np.linspace(-2.0, 2.0, 12).reshape(6, 2)
    p = np.array([0.3])
    expected = np.where(x > 0.0, -x, 0.5 * np.stack((np.clip(x[:, 0], -1, 1), np.maximum(x[:, 1], 0)), axis=1))
    np.testing.assert_array_equal(masked(x, 0.0, p), expected)
    np.testing.assert_array_equal(nb.njit(masked)(x, 0.0, p), expected)
    np.testing.assert_array_equal(nb.njit(lambda a: sm.stack((a[0], a[1])))(x), np.stack((x[0], x[1])))
    torch = pytest.importorskip("torch")
    out = masked(torch.tensor(x), 0.0, torch.tensor(p))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), expected)
