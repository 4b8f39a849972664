"""simulate(path_offset=a) on paths [a, b) equals rows a..b-1 of the solve of all paths, bit for bit, on every
backend and solver family that draws noise (the shards of sdekit.distributed rest on this)."""

from __future__ import annotations

import numpy as np
import pytest

import sdekit
from sdekit.errors import NonFiniteError, SDEKitError
from sdekit.processes.gbm import GeometricBrownianMotion
from sdekit.processes.ou import OrnsteinUhlenbeck

OU = OrnsteinUhlenbeck(np.eye(2), 0.5 * np.eye(2)).sde
GBM = GeometricBrownianMotion(0.1, 0.3).sde
PIECES = [(0, 5), (5, 6), (6, 37)]
CASES = [
    (OU, dict(solver="euler_maruyama", steps=10, save_at=[0.25, 0.55, 1.0], save_brownian=True)),
    (OU, dict(solver="sra1", steps=10, save_at=[0.33, 1.0], noise_substeps=2)),
    (GBM, dict(solver="milstein", backend="numpy", steps=10, save_at=[0.33, 1.0], save_brownian=True)),
    (GBM, dict(solver="adaptive_milstein", rtol=1e-3, atol=1e-3, save_at=[0.5, 1.0])),
]


def _pieces_equal_whole(problem, kw):
    x0 = np.linspace(0.5, 1.5, 37)[:, None] * np.ones((1, problem.dim))
    whole = sdekit.simulate(problem, x0, (0.0, 1.0), seed=7, **kw)
    parts = [sdekit.simulate(problem, x0[a:b], (0.0, 1.0), seed=7, path_offset=a, **kw) for a, b in PIECES]
    assert np.array_equal(np.asarray(whole.ys), np.concatenate([np.asarray(p.ys) for p in parts], axis=1))
    if kw.get("save_brownian"):
        assert np.array_equal(whole.ws, np.concatenate([p.ws for p in parts], axis=1))
    # and a different offset is a different path: the offset is not ignored
    shifted = sdekit.simulate(problem, x0[5:6], (0.0, 1.0), seed=7, path_offset=6, **kw)
    assert not np.array_equal(np.asarray(shifted.ys), np.asarray(parts[1].ys))


@pytest.mark.parametrize("case", range(len(CASES)))
def test_pieces_equal_the_whole(case):
    _pieces_equal_whole(*CASES[case])


@pytest.mark.parametrize("solver", ["euler_maruyama", "fused_euler_maruyama"])
def test_pieces_equal_the_whole_on_torch(solver):
    pytest.importorskip("torch")
    _pieces_equal_whole(GBM, dict(solver=solver, backend="torch", steps=10))


def test_errors_name_the_path_in_the_ensemble():
    fast = GeometricBrownianMotion(1000.0, 0.4).sde
    x0 = np.ones((10, 1))
    x0[3] = 1e306
    with pytest.raises(NonFiniteError, match="path 103 became non-finite") as info:
        sdekit.simulate(fast, x0, (0.0, 1.0), steps=4, path_offset=100)
    assert info.value.path == 103 and info.value.step == 1
    for bad in (-1, 1.5, True, 2**63):
        with pytest.raises(SDEKitError, match="path_offset"):
            sdekit.simulate(OU, 0.0, (0.0, 1.0), steps=2, path_offset=bad)


def test_path_errors_survive_pickling():
    """Errors cross process boundaries in sharded runs (sdekit.distributed): they must unpickle whole."""
    import pickle

    from sdekit.errors import StepSizeError

    for err in (NonFiniteError(7, 3, 0.5, "drift", True), StepSizeError(4, 9, 0.25, "step budget exhausted")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and back.path == err.path
