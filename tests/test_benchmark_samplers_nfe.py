"""Smoke test of benchmarks/samplers_nfe.py (the work-NFE benchmark over every sampler): a tiny configuration (2-D
mixture, N = 2000, two NFE budgets) through the same functions as the full run, checking the table's structure, the
"not available" path, the passes-at rule, and that a planted bad sampler (DPM-Solver++(2M) given the exact score
times 1.3) sits far above the noise floor while the correct sampler sits within it.

Thresholds: the floor is the mean D_0 and sd of 10 exact draws of the same size. The correct sampler must be within
D_0 + 6 sd (for a normal spread a one-sided tail of 1e-9; the KS statistic's tail is sub-Gaussian), the planted one
above D_0 + 6 sd; measured (seed 7): correct 0.020 / 0.018 at NFE 21 / 34 against D_0 0.018 (sd 0.0037, so the
limit is 0.040), planted 0.27 / 0.30.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import samplers_nfe as bench  # noqa: E402

N, SEED, NFES, Z = 2000, 7, (21, 34), 6.0


def _entry(name: str) -> bench.Entry:
    return next(e for e in bench.REGISTRY if e.name == name)


def _scaled(entry: bench.Entry, factor: float) -> bench.Entry:
    """The entry run on factor x its score: a planted wrong model."""
    def sample(score, setting, steps):
        return entry.sample(lambda x, a, s: factor * score(x, a, s), setting, steps)
    return bench.Entry(f"planted: {entry.name}, score x {factor}", entry.family, entry.needs, entry.steps, sample)


@pytest.fixture(scope="module")
def tiny():
    good = _entry("DPM-Solver++(2M)")
    missing = bench.Entry("not in this checkout", "ODE", ("sdekit.diffusion.samplers.no_such_module:sample",),
                          bench._nfe_steps(), good.sample)
    mixture = bench.Mixture("mixture 2-D", bench.mixture_2d())
    part = bench.run_mixture(mixture, [good, _scaled(good, 1.3), missing], NFES, N, SEED, floor_draws=10)
    return part


def test_table_structure(tiny, tmp_path):
    assert set(tiny) >= {"dataset", "dim", "n", "floor", "rows", "summary"}
    assert tiny["dim"] == 2 and tiny["n"] == N
    assert set(tiny["floor"]) == {"mean", "sd", "max", "band", "draws"}
    f = tiny["floor"]
    assert f["mean"] < f["band"] < f["mean"] + 2 * bench.BAND_Z * f["sd"]  # log-normal 99.9 % band
    assert tiny["summary"]["not in this checkout"]["status"] == "not available"
    names = ["DPM-Solver++(2M)", "planted: DPM-Solver++(2M), score x 1.3"]
    for name in names:
        rows = [r for r in tiny["rows"] if r["sampler"] == name]
        assert [r["nfe"] for r in rows] == list(NFES)  # multistep: NFE = steps
        for r in rows:
            assert set(r) >= {"sampler", "family", "budget", "steps", "nfe", "distance", "end_alpha", "end_sigma",
                              "seconds"}
            assert r["end_sigma"] == pytest.approx(bench.VP.kernel(bench.VP.eps)[1])  # stops at t = eps
        assert tiny["summary"][name]["status"] == "ok"
    result = {"machine": {"cpu_model": "x", "affinity": 2, "load_before": 0.0, "load_after": 0.0}, "seconds": 1.0,
              "mixtures": [tiny], "digits": None,
              "config": {"command": "test", "nfes": list(NFES), "digits_nfes": [], "paths": N}}
    bench.write(result, tmp_path, "tiny")
    assert json.loads((tmp_path / "tiny.json").read_text())["mixtures"][0]["summary"] == tiny["summary"]
    md = (tmp_path / "tiny.md").read_text()
    assert "| sampler | family | passes at | 21 | 34 |" in md and "| not in this checkout | ODE | not available |" in md


def test_planted_bad_sampler_is_above_the_floor_and_the_correct_one_within(tiny):
    f = tiny["floor"]
    limit = f["mean"] + Z * f["sd"]
    for r in tiny["rows"]:
        if r["sampler"].startswith("planted"):
            assert r["distance"] > limit, r
        else:
            assert r["distance"] <= limit, r
    assert tiny["summary"]["planted: DPM-Solver++(2M), score x 1.3"]["passes_at"] is None


def test_passes_at_is_where_the_curve_stays_in_the_band():
    rows = [{"nfe": n, "distance": d} for n, d in [(5, 0.9), (8, 0.1), (13, 0.5), (21, 0.2), (34, 0.15)]]
    assert bench.passes_at(rows, 0.25) == 21  # 8 dips in by chance but 13 is out again
    assert bench.passes_at(rows, 0.1) is None
    assert bench.passes_at(rows, 1.0) == 5


def test_budgets_drop_repeated_step_counts():
    heun = _entry("EDM Heun")
    assert [heun.steps(b) for b in bench.budgets(heun, (5, 6, 8, 13))] == [3, 4, 7]
    assert bench.budgets(_entry("PF-ODE, RK4"), (5, 6, 8, 13)) == [5, 8, 13]
