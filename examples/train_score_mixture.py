"""Train a small score network on a 2-D Gaussian mixture (CPU, well under two minutes), sample it three ways on the
torch backend, and measure how far the samples and the learned likelihood are from the exact ones.

    python examples/train_score_mixture.py            # writes train_score_mixture.png (needs matplotlib)
    python examples/train_score_mixture.py --quick    # fewer steps and samples (a smoke run)

1. Training: `ScoreMLP` (an MLP with Fourier features of the log-SNR) in the noise-prediction parametrization,
   trained with denoising score matching, sigma^2 weighting (= the eps-prediction loss of Ho et al. 2020), on draws
   of the data law under the VP SDE.
2. Sampling from N(0, I) at t = T with the learned score: the reverse-time SDE (torchsde's SRK, additive noise, on
   sdekit's reproducible Brownian increments), the probability-flow ODE (torchdiffeq dopri5) and DPM-Solver-3.
3. Validation against the exact data law p_eps (a Gaussian mixture, exact at every t):
   - distances: the one-sample MMD to the exact law (`sdekit.validate.onesample.mmd_test`, Gaussian kernel) and a
     sliced 1-Wasserstein distance to exact draws, each next to the same distance for exact draws of the same size
     (the floor a perfect sampler would reach);
   - the exact-law battery `compare_with_law` at a *loose* stated rate: a learned score is not exact, so the gated
     check used here is the mode-occupancy chi-square (each sample assigned to the component of highest posterior
     responsibility; H0: occupancies equal those of exact draws), at false-alarm rate 1e-6;
   - the likelihood of held-out points through the PF-ODE with the learned score (exact divergence), against the
     exact log-density log p_eps of the same points: the mean gap in nats per point and its standard error.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats as st
import torch

import sdekit
from sdekit.diffusion import DiffusionModel, ForwardSDE, probability_flow_ode, reverse_sde
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.diffusion.torch_likelihood import torch_log_likelihood
from sdekit.learn import ScoreMLP, ScoreModel, train_score_model
from sdekit.targets import GaussianMixture
from sdekit.validate import compare_with_law
from sdekit.validate.onesample import mmd_test

DATA = GaussianMixture([0.3, 0.3, 0.4], [[-2.5, 0.0], [2.5, 0.0], [0.0, 2.5]],
                       [np.eye(2) * 0.3, np.array([[0.5, 0.2], [0.2, 0.3]]), np.eye(2) * 0.25])
FORWARD = ForwardSDE.vp()
MODE_ALPHA = 1e-6


@dataclass
class Run:
    """What `run` produced: the training record, samples per sampler, metrics per sampler, the likelihood gap."""

    losses: np.ndarray
    train_seconds: float
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    heldout: dict[str, float] = field(default_factory=dict)


def train(steps: int = 3000, seed: int = 0, batch_size: int = 512) -> tuple[ScoreModel, Any]:
    """A ScoreMLP (hidden 128, depth 3) in the eps parametrization, trained with DSM (sigma^2 weighting) on 20000
    draws of DATA, batch 512, Adam lr 3e-3 with cosine decay."""
    torch.manual_seed(seed)
    model = ScoreModel(ScoreMLP(2, hidden=128, depth=3, embedding_dim=32).double(), FORWARD, parametrization="eps")
    data = torch.as_tensor(DATA.sample(20_000, seed=seed + 1))
    result = train_score_model(model, data, FORWARD, loss="dsm", weighting="sigma2", steps=steps, batch_size=batch_size,
                               lr=3e-3, seed=seed)
    return model, result


def sample(model: ScoreModel, n: int, seed: int = 0, sde_steps: int = 500) -> dict[str, np.ndarray]:
    """n samples from each sampler, all started from the same prior draws x_T ~ N(0, I)."""
    x_t = torch.as_tensor(FORWARD.prior_sample(n, 2, seed=seed + 100))
    span = (FORWARD.T, FORWARD.eps)
    out = {}
    with torch.no_grad():
        rs = reverse_sde(FORWARD, model.score, 2)
        out["reverse SDE (SRK)"] = sdekit.simulate(rs, x_t, span, steps=sde_steps, seed=seed, solver="srk",
                                                   backend="torch").final
        pf = probability_flow_ode(FORWARD, model.score, 2)
        out["PF-ODE (dopri5)"] = sdekit.simulate(pf, x_t, span, rtol=1e-5, atol=1e-7, backend="torch").final
        out["DPM-Solver-3 (30 steps)"] = dpm_solver_sample(model, FORWARD, x_t, order=3, steps=30).x
    return {k: v.numpy() for k, v in out.items()}


def modes(x: np.ndarray) -> np.ndarray:
    """Component of highest posterior responsibility for each row (under the data law)."""
    logits = np.stack([np.log(w) + st.multivariate_normal(m, c).logpdf(x)
                       for w, m, c in zip(DATA.weights, DATA.means, DATA.covs)], axis=1)
    return np.argmax(logits, axis=1)


def sliced_w1(x: np.ndarray, y: np.ndarray, projections: int = 64, seed: int = 0) -> float:
    """Mean over random unit directions u of W1(u.x, u.y) (1-D Wasserstein distances of the projections)."""
    u = np.random.default_rng(seed).standard_normal((projections, x.shape[1]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return float(np.mean([st.wasserstein_distance(x @ v, y @ v) for v in u]))


def evaluate(samples: np.ndarray, law: GaussianMixture, exact: np.ndarray, exact_modes: np.ndarray) -> dict:
    """Distances to the exact law and the mode-occupancy chi-square (gated at MODE_ALPHA)."""
    counts = np.bincount(modes(samples), minlength=law.n_components)
    ref = np.bincount(exact_modes, minlength=law.n_components)
    chi2 = st.chi2_contingency(np.stack([counts, ref]))
    battery = compare_with_law(samples, law, tests=("ks", "cvm", "moments"))
    return {"mmd": mmd_test(samples, law).statistic, "sliced_w1": sliced_w1(samples, exact),
            "mode_fractions": (counts / counts.sum()).round(3).tolist(), "mode_p": float(chi2.pvalue),
            "mode_check_passed": bool(chi2.pvalue > MODE_ALPHA),
            "battery_rejections": sum(not r.passed for r in battery.results), "battery_tests": len(battery.results)}


def heldout_likelihood(model: ScoreModel, n: int = 256, seed: int = 7, steps: int = 100) -> dict[str, float]:
    """Mean log-likelihood of held-out draws of p_eps under the learned PF-ODE vs their exact log p_eps."""
    exact_model = DiffusionModel.exact_mixture(FORWARD, DATA)
    x = exact_model.sample_marginal(n, FORWARD.eps, seed=seed)
    with torch.no_grad():
        learned = torch_log_likelihood(model.score, FORWARD, torch.as_tensor(x), steps=steps).log_prob.numpy()
    exact = exact_model.marginal(FORWARD.eps).log_prob(x)
    gap = learned - exact
    return {"learned_mean": float(learned.mean()), "exact_mean": float(exact.mean()), "gap_mean": float(gap.mean()),
            "gap_se": float(gap.std(ddof=1) / math.sqrt(n)), "n": n}


def run(steps: int = 3000, n: int = 20_000, seed: int = 0) -> Run:
    """Train, sample with the three samplers, and evaluate everything against the exact law."""
    torch.set_num_threads(1)
    model, result = train(steps, seed)
    out = Run(result.losses, result.seconds)
    law = DiffusionModel.exact_mixture(FORWARD, DATA).marginal(FORWARD.eps)
    exact = law.sample(n, seed=seed + 5)
    exact_modes = modes(law.sample(n, seed=seed + 6))
    out.samples = sample(model, n, seed)
    out.samples["exact draws (floor)"] = exact
    for name, x in out.samples.items():
        ref = exact if name != "exact draws (floor)" else law.sample(n, seed=seed + 9)
        out.metrics[name] = evaluate(x, law, ref, exact_modes)
    out.heldout = heldout_likelihood(model)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 training steps, 4000 samples")
    parser.add_argument("--png", default="train_score_mixture.png")
    args = parser.parse_args()
    t0 = time.perf_counter()
    res = run(steps=600 if args.quick else 3000, n=4000 if args.quick else 20_000)
    k = max(1, len(res.losses) // 10)
    print(f"training: {len(res.losses)} steps in {res.train_seconds:.1f} s; mean loss first 10% "
          f"{res.losses[:k].mean():.4f}, last 10% {res.losses[-k:].mean():.4f}")
    print(f"{'sampler':32s} {'MMD':>8s} {'sliced W1':>10s} {'mode fractions':>22s} {'mode p':>9s} battery")
    for name, m in res.metrics.items():
        print(f"{name:32s} {m['mmd']:8.4f} {m['sliced_w1']:10.4f} {str(m['mode_fractions']):>22s} "
              f"{m['mode_p']:9.2e} {m['battery_rejections']}/{m['battery_tests']} rejected")
    h = res.heldout
    print(f"held-out log-likelihood ({h['n']} points of p_eps): learned {h['learned_mean']:.4f}, exact "
          f"{h['exact_mean']:.4f} nats/point; gap {h['gap_mean']:+.4f} +- {h['gap_se']:.4f}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(res.samples), figsize=(4 * len(res.samples), 4), sharex=True, sharey=True)
    for ax, (name, x) in zip(axes, res.samples.items()):
        ax.scatter(x[:4000, 0], x[:4000, 1], s=1, alpha=0.3)
        ax.set_title(f"{name}\nMMD {res.metrics[name]['mmd']:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
