"""The samplers' rows of `sdekit validate` (`sdekit.validate.sampler_checks`): a row runs its sampler from the exact
start and passes the full battery at 1e-6; a planted defect in a row (the sampler's output shrunk by 3 %, the size
of a wrong coefficient) is rejected; every row's key, label, start and description are well formed."""

from __future__ import annotations

import dataclasses

import pytest

from sdekit.validate import sampler_checks as sc
from sdekit.validate import suite

N_PATHS, SEED, ALPHA = 20_000, 2026, 1e-6


def test_every_row_is_in_the_suite_with_a_known_start_and_a_description():
    for case in sc.SAMPLER_CASES:
        assert case.start in ("vp", "ve", "discrete"), case
        assert case.description and case.sampler
        check = suite.SUITE[case.name]
        assert check.description == case.description
    assert len({c.name for c in sc.SAMPLER_CASES}) == len(sc.SAMPLER_CASES)


@pytest.mark.parametrize("name", ["diffusion_unipc", "diffusion_lms", "diffusion_plms"])
def test_a_row_passes_its_exact_law_check(name):
    rep = suite.SUITE[name].run(N_PATHS, SEED, ALPHA)
    assert rep.name == name
    assert rep.passed, rep.to_text()


def test_a_planted_shrink_is_rejected():
    case = next(c for c in sc.SAMPLER_CASES if c.name == "diffusion_unipc")
    bad = dataclasses.replace(case, run=lambda score, x, seed: 0.97 * case.run(score, x, seed))
    rep = sc._check_fn(bad)(N_PATHS, SEED, ALPHA)
    assert not rep.passed, f"planted shrink not caught: min p = {rep.min_pvalue:.3g}"
