"""End-of-run diagnostics of every MCMC run: rules with stated thresholds, one warning line per rule that fires.

Every sampler of `sdekit.mcmc` calls `finish` on its result: the rules below are evaluated, the result
gets ``diagnostics`` (the measured numbers, the flags that fired, the checks skipped and why) and each
flag is issued as one `MCMCWarning` line (a `sdekit.errors.SDEKitWarning`) naming the number. The
thresholds are data, in `THRESHOLDS`:

| check        | fires when                                                                           | threshold |
|--------------|--------------------------------------------------------------------------------------|-----------|
| divergences  | share of the transitions after warm-up that diverged (HMC, NUTS)                      | > 0.001   |
| tree_depth   | NUTS: share of the transitions after warm-up that stopped at max_tree_depth           | > 0.01    |
| nonfinite    | share of all proposals, warm-up included, with a non-finite energy or gradient         | > 0.001   |
| r_hat        | max over coordinates of the rank-normalised split R-hat (Vehtari et al. 2021)          | > 1.01    |
| ess_bulk     | min over coordinates of the bulk effective sample size, per chain                      | < 100     |
| ess_tail     | min over coordinates of the tail (5% / 95% quantile) effective sample size, per chain  | < 100     |
| step_size    | adapted runs: a chain's step after warm-up over its initial step (collapsed adaptation) | < 1e-3    |
| acceptance   | adapted runs: |mean acceptance probability after warm-up - target_accept|             | > 0.15    |

R-hat and ESS follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat", Bayesian Analysis 16(2), whose recommendations are
R-hat < 1.01 and bulk and tail ESS > 100 per chain; they are computed by ArviZ. They need enough
draws per chain to mean anything: with fewer than ``min_draws`` (100) draws per chain (e.g. the
exact-start checks, 20,000 chains of one draw each) R-hat, ESS and the acceptance band are skipped and
the skip is recorded (``diagnostics.skipped``, and the ``flags`` column of ``summary()``). They are also
skipped for simulated annealing, whose chains are not stationary by design. Acceptance and step-size
rules apply only to runs that adapted their step (``adapt=True`` with warm-up), the only runs with a
target to miss. A coordinate whose draws never change has an undefined R-hat and ESS: that fires the
rule (a chain that never moves is not a sample).
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError, SDEKitWarning

THRESHOLDS: dict[str, float] = {
    "divergences": 0.001,  # max share of post-warm-up transitions that diverged
    "tree_depth": 0.01,  # max share of post-warm-up NUTS transitions that stopped at the maximum tree depth
    "nonfinite": 0.001,  # max share of proposals with a non-finite energy or gradient
    "r_hat": 1.01,  # max rank-normalised split R-hat
    "ess_bulk": 100.0,  # min bulk ESS per chain
    "ess_tail": 100.0,  # min tail ESS per chain
    "step_size": 1e-3,  # min (step after warm-up) / (initial step) of adapted runs
    "acceptance": 0.15,  # max |mean acceptance after warm-up - target_accept| of adapted runs
    "min_draws": 100,  # fewer draws per chain: R-hat, ESS and acceptance are skipped
}
MIXING = ("r_hat", "ess_bulk", "ess_tail")
_NEVER_MOVED = "its draws never change"
_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep


class MCMCWarning(SDEKitWarning):
    """An end-of-run MCMC diagnostic fired (divergences, R-hat, ESS, step size, acceptance)."""


class NonFiniteProposalWarning(MCMCWarning):
    """More proposals than the stated share had a non-finite energy or gradient (and were rejected)."""


@dataclass(frozen=True)
class Flag:
    """A rule that fired: ``check`` (a key of THRESHOLDS), the measured ``value``, the ``threshold`` it
    crossed, the one-line ``message`` and the coordinates concerned (() = the whole run)."""

    check: str
    value: float
    threshold: float
    message: str
    coords: tuple[int, ...] = ()


@dataclass(frozen=True)
class Diagnostics:
    """The end-of-run diagnostics of an MCMC result: ``values`` (every number measured), ``flags`` (the
    rules that fired), ``skipped`` ({check: why it was not evaluated})."""

    values: dict[str, Any] = field(default_factory=dict)
    flags: tuple[Flag, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def fired(self) -> tuple[str, ...]:
        """The names of the checks that fired."""
        return tuple(f.check for f in self.flags)

    def column(self, d: int) -> list[str]:
        """Per coordinate, the text of the ``flags`` column of ``MCMCResult.summary()``."""
        mixing = [k for k in MIXING if k in self.skipped]
        note = [f"{', '.join(mixing)} skipped ({self.skipped[mixing[0]]})"] if mixing else []
        rows = []
        for i in range(d):
            names = [f.check for f in self.flags if not f.coords or i in f.coords]
            rows.append(", ".join(names + note))
        return rows


def arviz_module() -> Any:
    """The arviz module (imported on first use; its import-time FutureWarning silenced)."""
    try:
        with warnings.catch_warnings():  # arviz 0.2x announces its 1.0 refactor on import
            warnings.simplefilter("ignore", FutureWarning)
            import arviz
    except ImportError as exc:  # pragma: no cover - arviz is a dependency
        raise SDEKitError("diagnostics need arviz: pip install arviz") from exc
    return arviz


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the library warnings of ArviZ, NumPy and Matplotlib inside (e.g. division by zero on a chain that
    never moves, plotting deprecations), and ArviZ's log lines (its shape validation logs instead of warning):
    sdekit reports what matters through its own diagnostics."""
    log = getattr(arviz_module(), "_log", None) or logging.getLogger("arviz")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _mixing(samples: np.ndarray) -> dict[str, np.ndarray]:
    """R-hat, bulk and tail ESS per coordinate from ArviZ (NaN where a coordinate never changes)."""
    az = arviz_module()
    with quiet():
        data = az.convert_to_dataset({"x": samples})
        return {"r_hat": np.asarray(az.rhat(data)["x"].values, dtype=float).reshape(-1),
                "ess_bulk": np.asarray(az.ess(data, method="bulk")["x"].values, dtype=float).reshape(-1),
                "ess_tail": np.asarray(az.ess(data, method="tail")["x"].values, dtype=float).reshape(-1)}


def _mixing_flags(result: Any, values: dict[str, Any], skipped: dict[str, str]) -> list[Flag]:
    c = result.samples.shape[0]
    mix = _mixing(result.samples)
    flags = []
    r_hat = mix["r_hat"]
    if c < 2:  # R-hat compares chains: with one there is nothing to compare (ArviZ returns NaN)
        skipped["r_hat"] = "1 chain: R-hat compares chains, run n_chains >= 2"
        bad = np.zeros(0, dtype=np.int64)
    else:
        values["r_hat"] = r_hat
        bad = np.flatnonzero(~(r_hat <= THRESHOLDS["r_hat"]))
    if bad.size:
        worst = int(bad[np.argmax(np.nan_to_num(r_hat[bad], nan=np.inf))])
        what = f"R-hat {r_hat[worst]:.3f} > {THRESHOLDS['r_hat']}" if np.isfinite(r_hat[worst]) else \
            f"R-hat undefined ({_NEVER_MOVED})"
        flags.append(Flag("r_hat", float(r_hat[worst]), THRESHOLDS["r_hat"],
                          f"{result.sampler}: {what} at coordinate {worst} ({bad.size} of {r_hat.size} coordinates): "
                          "the chains disagree; run longer or look for modes the chains do not cross",
                          tuple(int(i) for i in bad)))
    for check, kind in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        per_chain = mix[check] / c
        values[check] = mix[check]
        bad = np.flatnonzero(~(per_chain >= THRESHOLDS[check]))
        if bad.size:
            worst = int(bad[np.argmin(np.nan_to_num(per_chain[bad], nan=-np.inf))])
            what = f"{kind} ESS {mix[check][worst]:.0f} at coordinate {worst} is {per_chain[worst]:.1f} per chain" \
                if np.isfinite(per_chain[worst]) else f"{kind} ESS undefined at coordinate {worst} ({_NEVER_MOVED})"
            flags.append(Flag(check, float(per_chain[worst]), THRESHOLDS[check],
                              f"{result.sampler}: {what} < {THRESHOLDS[check]:.0f} per chain x {c} chains; run longer "
                              "(more draws) before trusting these estimates", tuple(int(i) for i in bad)))
    return flags


def _share_flag(check: str, count: int, total: int, message: str) -> list[Flag]:
    """[the Flag ``check``] when count / total exceeds THRESHOLDS[check], else []."""
    if count > THRESHOLDS[check] * total:
        return [Flag(check, count / total, THRESHOLDS[check], message)]
    return []


def diagnose(result: Any, *, initial_step: Any = None, final_step: Any = None, target_accept: float | None = None,
             proposals_per_chain: int | None = None, stationary: bool = True,
             on_nonfinite: str = "warn") -> Diagnostics:
    """Evaluate the rules of `THRESHOLDS` on an `MCMCResult` (see the module docstring).

    initial_step, final_step: the step sizes before and after warm-up of runs that adapted (else None:
    no step-size or acceptance rule); target_accept: the adaptation's target; proposals_per_chain: how
    many proposals each chain made (warm-up included), the denominator of the non-finite share;
    stationary: False skips R-hat, ESS and acceptance (simulated annealing); on_nonfinite: "reject" counts
    non-finite proposals without the rule (an energy that is +inf outside its support on purpose).
    """
    c, n, _ = result.samples.shape
    values: dict[str, Any] = {}
    flags: list[Flag] = []
    skipped: dict[str, str] = {}
    total = c * n * result.thin
    n_div = int(np.sum(result.divergent))
    values["divergences"] = n_div
    flags += _share_flag("divergences", n_div, total,
                         f"{result.sampler}: {n_div} of {total} transitions after warm-up diverged "
                         f"({n_div / total:.2%} > {THRESHOLDS['divergences']:.1%}); the draws are biased where the "
                         "target curves sharply: lower step_size, raise target_accept or reparametrise")
    if "max_depth_hit" in result.stats:
        n_max = int(np.sum(result.stats["max_depth_hit"]))
        values["tree_depth"] = n_max
        flags += _share_flag("tree_depth", n_max, total,
                             f"{result.sampler}: {n_max} of {total} transitions after warm-up stopped at the maximum "
                             f"tree depth ({n_max / total:.2%} > {THRESHOLDS['tree_depth']:.0%}): the trajectories "
                             "were cut before they turned, so the chains move slowly; raise max_tree_depth, adapt "
                             "the mass matrix (adapt_mass) or reparametrise")
    n_bad = None if result.n_nonfinite is None else int(np.sum(result.n_nonfinite))
    values["nonfinite"] = n_bad
    if on_nonfinite == "reject":
        skipped["nonfinite"] = "on_nonfinite='reject'"
    elif n_bad and proposals_per_chain:
        proposals = c * int(proposals_per_chain)
        if n_bad > THRESHOLDS["nonfinite"] * proposals:
            flags.append(Flag("nonfinite", n_bad / proposals, THRESHOLDS["nonfinite"],
                              f"{result.sampler}: {n_bad} of {proposals} proposals ({n_bad / proposals:.2%} > "
                              f"{THRESHOLDS['nonfinite']:.1%}) had a non-finite energy or gradient and were rejected, "
                              "so that region is never visited: fix the energy there, or pass on_nonfinite='reject' "
                              "if U = +inf marks the support on purpose (on_nonfinite='raise' stops at the first)"))
    adapted = initial_step is not None and result.n_warmup > 0
    if adapted:
        h0 = np.asarray(initial_step, dtype=float)
        h1 = np.asarray(result.step_size if final_step is None else final_step, dtype=float)
        ratio = np.broadcast_to(h1 / h0, np.broadcast_shapes(h1.shape, h0.shape)).reshape(-1)
        values["step_size"] = float(ratio.min())
        n_small = int(np.sum(~(ratio >= THRESHOLDS["step_size"])))
        if n_small:
            k = int(np.nanargmin(np.where(np.isnan(ratio), -np.inf, ratio)))
            flags.append(Flag("step_size", float(ratio[k]), THRESHOLDS["step_size"],
                              f"{result.sampler}: the adapted step size collapsed in {n_small} of {ratio.size} chains "
                              f"(smallest {np.broadcast_to(h1, ratio.shape)[k]:.3g}, {ratio[k]:.2g} x its initial "
                              f"step < {THRESHOLDS['step_size']:g}): the chains met regions they cannot move through "
                              "(non-finite energies or very sharp curvature)"))
    else:
        skipped["step_size"] = "no adaptation"
    if not stationary:
        reason = "not stationary: a cooling schedule"
        skipped.update(dict.fromkeys((*MIXING, "acceptance"), reason))
    elif n < THRESHOLDS["min_draws"]:
        reason = f"{n} draw{'s' if n != 1 else ''} per chain < {THRESHOLDS['min_draws']}"
        skipped.update(dict.fromkeys((*MIXING, "acceptance"), reason))
    else:
        flags += _mixing_flags(result, values, skipped)
        if adapted and target_accept is not None:
            rate = float(np.mean(result.accept_prob))
            values["acceptance"] = rate
            if abs(rate - target_accept) > THRESHOLDS["acceptance"]:
                flags.append(Flag("acceptance", abs(rate - target_accept), THRESHOLDS["acceptance"],
                                  f"{result.sampler}: mean acceptance after warm-up {rate:.3f} is outside "
                                  f"target_accept {target_accept:g} ± {THRESHOLDS['acceptance']}; lengthen n_warmup "
                                  "or check the target for regions of very different scale"))
        elif "acceptance" not in skipped:
            skipped["acceptance"] = "no adaptation"
    return Diagnostics(values, tuple(flags), skipped)


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside sdekit (so the warning points at the user's call)."""
    level = 1
    frame = inspect.currentframe()
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return max(level - 1, 1)


def finish(result: Any, **context: Any) -> Any:
    """Diagnose ``result`` (keywords of `diagnose`), store it in ``result.diagnostics`` and issue one
    `MCMCWarning` line per flag (`NonFiniteProposalWarning` for non-finite proposals); returns ``result``."""
    result.diagnostics = diagnose(result, **context)
    level = _caller_stacklevel()
    for flag in result.diagnostics.flags:
        category = NonFiniteProposalWarning if flag.check == "nonfinite" else MCMCWarning
        warnings.warn(flag.message, category, stacklevel=level)
    return result
