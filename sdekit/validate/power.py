"""Power, shown: planted bugs against every check, with rejection rates over several seeds.

Each *case* is a problem with a correct sampler and the bugs a sampler author makes on it:
noise scaled by sqrt(2) or 1/sqrt(2), the drift's sign flipped, the time index off by one step,
Itô/Stratonovich mislabelled, ULA used where an exactly pi-invariant sampler (MALA) was meant, and
the MCMC kernels' documented defects (missing or reversed proposal correction, kinetic energy missing,
momentum not refreshed, acceptance at the wrong temperature).
Each *check* answers "rejected?" for one (case, variant, seed), or None where it does not
apply. `power_table` runs every applicable (variant, check) pair over the seeds; a correct
variant's rejections are false alarms, a bug's rejections are power.

Every check is a battery at overall false-alarm rate alpha = 1e-6 (Bonferroni inside); the law
tests (KS, CvM, moments, Stein) are reported per test family from one `compare_with_law` battery.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from sdekit.errors import NonFiniteError
from sdekit.mcmc import hmc, mala, rwm
from sdekit.mcmc.defects import planted
from sdekit.processes import GeometricBrownianMotion, OrnsteinUhlenbeck, overdamped_langevin
from sdekit.processes.gbm import gbm_diffusion, gbm_drift
from sdekit.processes.ou import ou_diffusion, ou_drift
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.gaussian import gaussian_score
from sdekit.targets.mixture import mixture_score
from sdekit.validate.bias import classify_bias
from sdekit.validate.closed_form import MIXTURE_2D, OU_2D
from sdekit.validate.compare import compare_with_law
from sdekit.validate.fokker_planck import fokker_planck_chi2_test
from sdekit.validate.generator import dynkin_test, generator_scan
from sdekit.validate.order import fit_order, gbm_problem, strong_errors
from sdekit.validate.stationarity import stationarity_check, ula_law
from sdekit.validate.suite import DOUBLE_WELL, double_well_diffusion, double_well_drift

ALPHA = 1e-6
LAW_FAMILIES = ("KS", "CvM", "moments", "Stein", "MMD (diag.)")
COLUMNS = LAW_FAMILIES + ("stationarity", "generator", "Dynkin", "FP chi2", "strong order", "bias or bug")


# ---------------------------------------------------------------------------------------------
# planted bugs as coefficient functions (parameters unchanged, so kernels compile once per bug)


@nb.njit(cache=True)
def ou_diffusion_sqrt2(x, t, p):
    """B sqrt(2)."""
    return math.sqrt(2.0) * ou_diffusion(x, t, p)


@nb.njit(cache=True)
def ou_diffusion_half(x, t, p):
    """B / sqrt(2)."""
    return ou_diffusion(x, t, p) / math.sqrt(2.0)


@nb.njit(cache=True)
def ou_drift_flipped(x, t, p):
    """+A x instead of -A x."""
    return -1.0 * ou_drift(x, t, p)


@nb.njit(cache=True)
def dw_drift_flipped(x, t, p):
    return -1.0 * double_well_drift(x, t, p)


@nb.njit(cache=True)
def dw_diffusion_sqrt2(x, t, p):
    return math.sqrt(2.0) * double_well_diffusion(x, t, p)


@nb.njit(cache=True)
def dw_diffusion_half(x, t, p):
    return double_well_diffusion(x, t, p) / math.sqrt(2.0)


@nb.njit(cache=True)
def gbm_diffusion_sqrt2(x, t, p):
    return math.sqrt(2.0) * gbm_diffusion(x, t, p)


@nb.njit(cache=True)
def langevin_noise_half(x, t, p):
    """sqrt(h) noise instead of sqrt(2h): the half-drift convention mixed in."""
    return 1.0


@nb.njit(cache=True)
def langevin_noise(x, t, p):
    return math.sqrt(2.0)


@nb.njit(cache=True)
def gaussian_score_flipped(x, t, p):
    return -1.0 * gaussian_score(x, t, p)


@nb.njit(cache=True)
def vp_drift(x, t, p):
    """-beta(t) x / 2, beta(t) = p[0] + (p[1] - p[0]) (t + p[2]) (p[2]: time offset; 0 when correct)."""
    beta = p[0] + (p[1] - p[0]) * (t + p[2])
    return -0.5 * beta * x


@nb.njit(cache=True)
def vp_diffusion(x, t, p):
    """sqrt(beta(t))."""
    return math.sqrt(p[0] + (p[1] - p[0]) * (t + p[2]))


@nb.njit(cache=True)
def vp_diffusion_sqrt2(x, t, p):
    return math.sqrt(2.0) * vp_diffusion(x, t, p)


# ---------------------------------------------------------------------------------------------
# cases


@dataclass(frozen=True)
class Variant:
    """A sampler on a case: correct (its rejections are false alarms) or a planted bug."""

    name: str
    sampler: object
    correct: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Case:
    """A problem, its variants and its checks: checks[column](variant, seed, n) -> rejected (bool) or
    a dict {column: bool} for the law families (one battery, reported per family)."""

    name: str
    variants: list[Variant]
    checks: dict[str, Callable]


def law_families(report) -> dict[str, bool]:
    """Rejected per test family of a `compare_with_law` report (gating at the battery's Bonferroni split)."""
    out: dict[str, bool] = {}
    for r in report.results:
        fam = {"KS": "KS", "CvM": "CvM", "chi2": "moments", "Stein": "Stein", "MMD": "MMD (diag.)"}.get(
            r.test.split(" ")[0])
        if fam is None:
            continue
        out[fam] = out.get(fam, False) or not r.passed
    return out


# --- OU 2-D, Euler–Maruyama, exact EM law


def ou_case() -> Case:
    ou = OrnsteinUhlenbeck(*OU_2D)
    x0 = np.array([1.0, -0.5])
    h, steps = 0.05, 40
    mean, cov = ou.euler_maruyama_law(x0, np.zeros((2, 2)), h, steps)
    law = Gaussian(mean, cov)

    def make(drift, diffusion):
        return SDE(drift, diffusion, dim=2, noise="additive", brownian_dim=3, params=(ou.A, ou.B), name="ou")

    variants = [Variant("correct (EM)", ou.sde, True), Variant("noise x sqrt2", make(ou_drift, ou_diffusion_sqrt2)),
                Variant("noise / sqrt2", make(ou_drift, ou_diffusion_half)),
                Variant("drift sign flipped", make(ou_drift_flipped, ou_diffusion))]

    def laws(v: Variant, seed: int, n: int) -> dict[str, bool]:
        sol = simulate(v.sampler, x0, (0.0, h * steps), steps=steps, n_paths=n, seed=seed)
        return law_families(compare_with_law(sol.final, law, alpha=ALPHA))

    def generator(v: Variant, seed: int, n: int) -> bool:
        scan = generator_scan(ou.sde, np.array([[0.5, -1.0], [-1.5, 0.3]]), h=1e-4, n=5 * n, seed=seed,
                              alpha=ALPHA, sampler=v.sampler)
        return not scan.passed

    def dynkin(v: Variant, seed: int, n: int) -> bool:
        res = dynkin_test(ou.sde, x0, (0.0, 1.0), steps=200, n_paths=n, seed=seed, alpha=ALPHA, sampler=v.sampler)
        return not all(r.passed for r in res)

    return Case("OU 2-D, EM h=0.05, 40 steps from x0 (vs EM's exact law)", variants,
                {"laws": laws, "generator": generator, "Dynkin": dynkin})


# --- Langevin on a 2-D Gaussian: ULA from pi, bias-aware


def langevin_gaussian_case() -> Case:
    target = Gaussian([1.0, -1.0], [[1.0, 0.3], [0.3, 0.5]])
    h, steps = 0.2, 40
    scheme = ula_law(target, h, steps)

    def make(score, noise):
        return SDE(score, noise, dim=2, noise="additive", params=target.params, name="langevin")

    variants = [Variant("correct (ULA, h=0.2)", make(gaussian_score, langevin_noise), True),
                Variant("noise / sqrt2", make(gaussian_score, langevin_noise_half)),
                Variant("drift sign flipped", make(gaussian_score_flipped, langevin_noise))]

    def stationarity(v: Variant, seed: int, n: int) -> bool:
        rep = stationarity_check(v.sampler, target, h=h, steps=steps, n_paths=n, seed=seed, scheme_law=scheme,
                                 alpha=ALPHA)
        return rep.verdict == "wrong"

    def laws(v: Variant, seed: int, n: int) -> dict[str, bool]:
        x0 = target.sample(n, seed=seed + 17)
        sol = simulate(v.sampler, x0, (0.0, h * steps), steps=steps, n_paths=n, seed=seed)
        if not np.isfinite(sol.final).all():
            return dict.fromkeys(LAW_FAMILIES, True)
        return law_families(compare_with_law(sol.final, scheme, alpha=ALPHA))

    def bias(v: Variant, seed: int, n: int) -> bool:
        t1 = 4.0

        def run(step: float, s: int) -> np.ndarray:
            x0 = target.sample(n, seed=s + 1)
            return simulate(v.sampler, x0, (0.0, t1), steps=int(round(t1 / step)), n_paths=n, seed=s,
                            noise_substeps=int(round(2 * step / h))).final

        def scheme_law(step: float):
            law = ula_law(target, step, int(round(t1 / step)))
            return law.mean, law.cov

        rep = classify_bias(run, h, seed=seed, order=1, exact_law=(target.mean, target.cov), scheme_law=scheme_law,
                            alpha=ALPHA)
        return rep.kind == "bug"

    return Case("Langevin on a 2-D Gaussian, ULA h=0.2 from pi (vs ULA's exact law)", variants,
                {"laws": laws, "stationarity": stationarity, "bias or bug": bias})


# --- Langevin on a 1-D two-mode mixture: ULA where MALA (exactly invariant) was meant


def langevin_mixture_case() -> Case:
    target = GaussianMixture([0.3, 0.7], [-2.0, 2.0], [0.3, 0.3])
    correct = overdamped_langevin(1, target=target)
    half = SDE(mixture_score, langevin_noise_half, dim=1, noise="additive", params=target.params)
    variants = [Variant("correct (h=1e-3: bias below resolution)", correct, True, {"h": 1e-3}),
                Variant("MALA (h=0.1), what was meant", "mala", True, {"h": 0.1}),
                Variant("ULA where MALA was meant (h=0.1)", correct, False, {"h": 0.1}),
                Variant("noise / sqrt2 (h=1e-3)", half, False, {"h": 1e-3})]

    def laws(v: Variant, seed: int, n: int) -> dict[str, bool]:
        if v.sampler == "mala":  # sdekit.mcmc.mala: 100 MALA transitions from pi at the same h
            res = mala(target, step_size=v.extra["h"], n_chains=n, n_draws=1, n_warmup=0, thin=100, adapt=False,
                       seed=seed, x0="target")
            return law_families(compare_with_law(res.final, target, alpha=ALPHA))
        rep = stationarity_check(v.sampler, target, h=v.extra["h"], steps=100, n_paths=n, seed=seed, alpha=ALPHA)
        return law_families(rep.against_target)

    return Case("Langevin on a 1-D two-mode mixture from pi, 100 steps (vs pi)", variants, {"laws": laws})


# --- MCMC kernels on a 2-D mixture: the planted bugs of sdekit.mcmc's DEFECTS (run by sdekit.mcmc.defects.planted)


def mcmc_mixture_case() -> Case:
    target = GaussianMixture(**MIXTURE_2D)
    samplers = {"mala": (mala, dict(step_size=0.3)), "hmc": (hmc, dict(step_size=0.3, n_leapfrog=5)),
                "rwm": (rwm, dict(step_size=1.5, proposal="uniform"))}
    variants = [Variant("MALA h=0.3", "mala", True, {"defect": None}),
                Variant("MALA, proposal correction missing", "mala", False, {"defect": "no_proposal_correction"}),
                Variant("MALA, proposal correction reversed", "mala", False,
                        {"defect": "reversed_proposal_correction"}),
                Variant("HMC h=0.3, L=5", "hmc", True, {"defect": None}),
                Variant("HMC, kinetic energy missing from the ratio", "hmc", False, {"defect": "no_kinetic_energy"}),
                Variant("HMC, momentum not refreshed", "hmc", False, {"defect": "momentum_not_refreshed"}),
                Variant("RWM uniform h=1.5", "rwm", True, {"defect": None}),
                Variant("RWM accepting with exp(-dE/2)", "rwm", False, {"defect": "acceptance_at_temperature_2"})]

    def laws(v: Variant, seed: int, n: int) -> dict[str, bool]:
        fn, kw = samplers[v.sampler]
        if v.extra["defect"] is not None:  # the same sampler with a planted bug (sdekit.mcmc.defects)
            fn = planted(v.sampler, v.extra["defect"])
        res = fn(target, n_chains=n, n_draws=1, n_warmup=0, thin=20, adapt=False, seed=seed, x0="target", **kw)
        return law_families(compare_with_law(res.final, target, alpha=ALPHA))

    return Case("MCMC on a 2-D two-mode mixture from pi, 20 transitions (vs pi)", variants, {"laws": laws})


# --- double well with state-dependent noise: Fokker–Planck reference


def double_well_case() -> Case:
    def make(drift, diffusion):
        return SDE(drift, diffusion, dim=1, name="double_well")

    variants = [Variant("correct (EM, h=2.5e-3)", DOUBLE_WELL, True),
                Variant("noise x sqrt2", make(double_well_drift, dw_diffusion_sqrt2)),
                Variant("noise / sqrt2", make(double_well_drift, dw_diffusion_half)),
                Variant("drift sign flipped", make(dw_drift_flipped, double_well_diffusion))]

    def fp(v: Variant, seed: int, n: int) -> bool:
        sol = simulate(v.sampler, 0.5, (0.0, 1.0), steps=400, n_paths=n, seed=seed)
        x = sol.final[:, 0]
        if not np.isfinite(x).all():
            return True
        return not fokker_planck_chi2_test(x, DOUBLE_WELL, 0.5, (0.0, 1.0), -3.5, 3.5, cells=300, time_steps=200,
                                           alpha=ALPHA).passed

    def generator(v: Variant, seed: int, n: int) -> bool:
        scan = generator_scan(DOUBLE_WELL, np.array([[0.3], [-1.2]]), h=1e-4, n=5 * n, seed=seed, alpha=ALPHA,
                              sampler=v.sampler)
        return not scan.passed

    return Case("Double well, sigma(x) = sqrt(0.5 + x^2/4), X_0 = 0.5, t = 1 (vs Chang–Cooper reference)",
                variants, {"FP chi2": fp, "generator": generator})


# --- GBM: Itô/Stratonovich mislabelled


def gbm_case() -> Case:
    ito = GeometricBrownianMotion(0.3, 0.8, "ito")
    m, v = ito.log_law(1.0, 1.0)
    law = Gaussian([m], [[v]])
    mislabelled = SDE(gbm_drift, gbm_diffusion, dim=1, calculus="stratonovich", params=ito.sde.params, name="gbm")
    sqrt2 = SDE(gbm_drift, gbm_diffusion_sqrt2, dim=1, params=ito.sde.params, name="gbm")
    variants = [Variant("correct (Itô, Milstein)", ito.sde, True, {"solver": "milstein"}),
                Variant("Itô coefficients labelled Stratonovich (Heun)", mislabelled, False, {"solver": "heun"}),
                Variant("noise x sqrt2 (Milstein)", sqrt2, False, {"solver": "milstein"})]

    def laws(vv: Variant, seed: int, n: int) -> dict[str, bool]:
        sol = simulate(vv.sampler, 1.0, (0.0, 1.0), steps=1000, n_paths=n, seed=seed, solver=vv.extra["solver"])
        return law_families(compare_with_law(np.log(sol.final), law, alpha=ALPHA))

    def order(vv: Variant, seed: int, n: int) -> bool:
        exact = gbm_problem(0.3, 0.8, "ito").exact_at(1.0)
        hs, sq = strong_errors(vv.sampler, vv.extra["solver"], 1.0, 1.0, exact, 8, 6, min(n, 4000), seed)
        return not fit_order(hs, sq, seed=seed).passes(1.0)

    return Case("GBM mu=0.3, sigma=0.8, Itô, t = 1 (vs the Itô closed form)", variants,
                {"laws": laws, "strong order": order})


# --- time-dependent forward VP SDE: time index off by one


def vp_case() -> Case:
    x0, t1, steps = 2.0, 0.5, 25
    h = t1 / steps
    beta0, beta1 = 0.1, 20.0

    # EM's exact law for dX = -beta x / 2 dt + sqrt(beta) dW: m' = (1 - beta h / 2) m, v' = (1 - beta h/2)^2 v + beta h
    m, var = x0, 0.0
    for k in range(steps):
        b = beta0 + (beta1 - beta0) * k * h
        m, var = (1 - 0.5 * b * h) * m, (1 - 0.5 * b * h) ** 2 * var + b * h
    law = Gaussian([m], [[var]])

    def make(offset: float) -> SDE:
        return SDE(vp_drift, vp_diffusion, dim=1, params=[beta0, beta1, offset], name="vp")

    variants = [Variant("correct (EM, beta(t_k))", make(0.0), True),
                Variant("time index off by one (beta(t_k + h))", make(h)),
                Variant("noise x sqrt2", SDE(vp_drift, vp_diffusion_sqrt2, dim=1, params=[beta0, beta1, 0.0],
                                             name="vp"))]

    def laws(v: Variant, seed: int, n: int) -> dict[str, bool]:
        sol = simulate(v.sampler, x0, (0.0, t1), steps=steps, n_paths=n, seed=seed)
        return law_families(compare_with_law(sol.final, law, alpha=ALPHA))

    return Case("Forward VP SDE, beta in [0.1, 20], x0 = 2, EM 25 steps to t = 0.5 (vs EM's exact law)", variants,
                {"laws": laws})


CASES: dict[str, Callable[[], Case]] = {
    "ou": ou_case, "langevin_gaussian": langevin_gaussian_case, "langevin_mixture": langevin_mixture_case,
    "double_well": double_well_case, "gbm": gbm_case, "vp": vp_case, "mcmc_mixture": mcmc_mixture_case,
}


# ---------------------------------------------------------------------------------------------
# the table


@dataclass
class PowerRow:
    """Rejections per column for one (case, variant): rejected[column] = count over ``seeds`` runs."""

    case: str
    variant: str
    correct: bool
    seeds: int
    rejected: dict[str, int]
    seconds: float


def variant_rejections(case: Case, variant: Variant, seed: int, n: int) -> dict[str, int]:
    """Rejections (0 or 1) per column of every check of ``case`` on ``variant`` with one seed: one cell of the
    sum `run_case` forms over the seeds (also one task of `sdekit.distributed.power_table_on_cluster`)."""
    counts: dict[str, int] = {}
    for column, check in case.checks.items():
        try:
            out = check(variant, seed, n)
        except NonFiniteError:  # the sampler blew up: every applicable check rejects it
            out = dict.fromkeys(LAW_FAMILIES, True) if column == "laws" else True
        if isinstance(out, dict):
            for fam, rej in out.items():
                counts[fam] = counts.get(fam, 0) + int(rej)
        else:
            counts[column] = counts.get(column, 0) + int(bool(out))
    return counts


def add_counts(total: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    """``total`` with ``counts`` added column by column (in place; returned)."""
    for column, k in counts.items():
        total[column] = total.get(column, 0) + k
    return total


def run_case(case: Case, seeds: list[int], n: int) -> list[PowerRow]:
    """Every (variant, check) of a case over the seeds."""
    rows = []
    for v in case.variants:
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        for seed in seeds:
            add_counts(counts, variant_rejections(case, v, seed, n))
        rows.append(PowerRow(case.name, v.name, v.correct, len(seeds), counts, time.perf_counter() - t0))
    return rows


def power_table(seeds: list[int], n: int = 20_000, cases: list[str] | None = None) -> list[PowerRow]:
    """Rows for every case (all by default) over the seeds."""
    rows: list[PowerRow] = []
    for name in cases or list(CASES):
        rows += run_case(CASES[name](), seeds, n)
    return rows


def to_markdown(rows: list[PowerRow]) -> str:
    """One table: case / variant rows, check columns, 'rejected/seeds' cells ('-': not applicable)."""
    lines = ["| case | sampler | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for c in COLUMNS:
            if c not in r.rejected:
                cells.append("-")
            else:
                k = r.rejected[c]
                txt = f"{k}/{r.seeds}"
                if r.correct:
                    cells.append(f"**{txt} (false alarm)**" if k else txt)
                else:
                    cells.append(f"**{txt}**" if k else txt)
        label = r.variant + (" ✓" if r.correct else "")
        lines.append(f"| {r.case} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def coverage(rows: list[PowerRow]) -> tuple[dict[str, int], dict[str, int], int]:
    """(bugs caught per column, number of columns catching each bug, false alarms of correct samplers)."""
    per_column = dict.fromkeys(COLUMNS, 0)
    per_bug: dict[str, int] = {}
    false_alarms = 0
    for r in rows:
        if r.correct:
            false_alarms += sum(r.rejected.values())
            continue
        per_bug[f"{r.case} / {r.variant}"] = sum(1 for k in r.rejected.values() if k > 0)
        for c, k in r.rejected.items():
            per_column[c] += int(k > 0)
    return per_column, per_bug, false_alarms
