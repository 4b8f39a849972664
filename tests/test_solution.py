"""Solution conveniences: at(t), summary(), plot(); the automatic progress bar."""

import numpy as np
import pytest

import sdekit
from sdekit.backends.numba import fixed_solve
from sdekit.solution import Solution, SolveStats
from tests.problems import DIAGONAL

X0 = np.array([0.3, -0.2, 0.5])


def test_at_returns_the_saved_states_and_summary_matches_numpy_over_finite_paths():
    sol = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=8, n_paths=200, seed=1, save_at=[0.25, 0.5, 1.0])
    np.testing.assert_array_equal(sol.at(0.5), sol.ys[1])
    np.testing.assert_array_equal(sol.at(1.0 + 1e-12), sol.final)
    ys = sol.ys.copy()
    ys[2, :10] = np.nan  # masked paths are left out
    s = Solution(sol.ts, ys, SolveStats()).summary(levels=(0.1, 0.5))
    finite = ys[2, 10:]
    assert s.n_finite.tolist() == [200, 200, 190]
    np.testing.assert_allclose(s.mean[2], finite.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(s.sd[0], ys[0].std(axis=0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(s.quantiles[2], np.quantile(finite, [0.1, 0.5], axis=0), rtol=1e-14)
    text = str(s)
    assert "q10" in text and "q50" in text and len(text.splitlines()) == 1 + 3 * 3


def test_plot_writes_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    sol = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=8, n_paths=50, seed=1, save_at="steps")
    out = tmp_path / "paths.png"
    sol.plot(out, n_paths=5, dim=2)
    assert out.stat().st_size > 5000


def test_progress_turns_on_by_itself_for_long_solves_and_never_changes_the_numbers(monkeypatch, capsys):
    quiet = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=200, n_paths=300, seed=5, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(fixed_solve, "AUTO_PROGRESS_SECONDS", 0.0)  # every solve now counts as long
    monkeypatch.setattr(fixed_solve, "AUTO_PROGRESS_WORK", 0)
    auto = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=200, n_paths=300, seed=5)
    err = capsys.readouterr().err
    assert "200/200" in err and "step" in err
    np.testing.assert_array_equal(auto.ys, quiet.ys)
    off = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=200, n_paths=300, seed=5, progress=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(off.ys, quiet.ys)
