"""InDI (Delbracio & Milanfar 2023, "Inversion by direct iteration") as a denoiser of noisy 8x8 digits, and on a 2-D
Gaussian mixture against the exact posterior mean.

    python examples/indi_digits.py            # full run; writes examples/results/indi/ (md, json, png)
    python examples/indi_digits.py --quick    # reduced run end to end (the smoke test's), well under a minute
    python examples/indi_digits.py --retrain  # ignore the cached digit weights

1. Digits (`examples/digits.py`'s data, judge and plotting helpers, imported): clean x = the pixel bin centres in
   [-1, 1) (model space), observation y = x + SIGMA_Y n, n ~ N(0, I), SIGMA_Y = 0.5 (a quarter of the pixel range:
   heavy noise). F_theta(x_t, t) = x_t - t net(x_t, t) (`InDIDenoiser`) with net a small `ConvScoreNet` conditioned
   on t, trained by `train_indi` on the InDI loss E||F(x_t, t) - x||^2, x_t = (1 - t) x + t y, t ~ U[0, 1], fresh
   dequantised training digits and fresh noise per batch (weights cached like digits.py's). Held-out digits are
   restored by `indi_sample` with 1 step (F(y, 1): the learned posterior mean, the MMSE estimate), a few and many
   steps. Reported: MSE per pixel and PSNR = 10 log10(2^2 / MSE) (peak-to-peak 2 in model space) against the clean
   digits, for the noisy input and each restoration, and the Fréchet distance of each set to as many training
   digits on digits.py's two feature maps (pca16, mlp64); the clean held-out digits' FD to them is the floor.
2. 2-D mixture (`sdekit.validate.closed_form.MIXTURE_2D`, SIGMA_Y_MIXTURE = 1): the exact InDI (`MixtureDenoiser`)
   and a learned one (`InDIDenoiser(ScoreMLP)`, `train_indi`) restore the same y with 1 .. 100 steps. Reported: the
   mean squared error E||xhat - x||^2 against the exact Bayes risk E||E[x | y] - x||^2 (Monte Carlo on 200000
   independent exact draws), the distance between learned and exact restorations, and the full law battery
   (`compare_with_law`, 1e-6) of each restoration against the data law.

What it shows: one step is the posterior mean (the lowest MSE: the Bayes risk, for the exact denoiser) but its law
is not the data law (it regresses to the mean; on the mixture the battery rejects it with p = 0); more steps trade a
little MSE for the right law (the exact chain passes the battery from 20 steps, at 1.11-1.13 times the Bayes risk).

Measured (full run, examples/results/indi/results.md; one torch thread on a 2-core machine at load 2.6-5; the digit
net's 3000 training steps took 431 s, InDI loss 1.67 (first 10 %) -> 0.98 (last 10 %); the run from the cached
weights 54 s):
- digits, 360 held-out, sigma_y = 0.5: the noisy input has MSE 0.248 per pixel (12.1 dB); one step 0.0402
  (20.0 dB), 2 steps 0.0387 (20.1 dB, the lowest: the learned one-step map is not the exact posterior mean),
  5 / 20 / 100 steps 0.0398 / 0.0414 / 0.0418 (20.0 / 19.9 / 19.8 dB). FD to 360 training digits: noisy 0.637 /
  9.34 (pca16 / mlp64), one step 0.251 / 1.34, 2-100 steps 0.206-0.213 / 1.22-1.25, the clean held-out digits
  0.227 / 1.43 (the floor; one draw, whose spread over draws is about 0.05 / 0.3 at this size, digits.py), so the
  restorations' FD differences beyond the noisy input's are not resolved at n = 360;
- 2-D mixture, sigma_y = 1, 20000 pairs: Bayes risk 0.941 +- 0.003; exact one step 0.929 +- 0.009 (0.99 of it;
  law rejected, p = 0), exact 5 / 20 / 100 steps 1.07 / 1.11 / 1.13 times it (law: rejected at 5, passes from 20,
  min p 5e-5 / 0.41 at 20 / 100); the learned denoiser (3000 steps, 10 s) is 0.04-0.06 RMS from the exact
  restorations, its MSE 0.99-1.09 times the Bayes risk, but at N = 20000 the battery sees its error (min p 1e-28 ..
  1e-38 from 20 steps on).
``--quick`` (150 training steps, 120 digits, the mixture at 4000 pairs): about 30 s at load 4.4.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits as dg  # noqa: E402  (examples/digits.py: data, judge, plotting helpers)

from sdekit.diffusion.mixture_marginals import MixtureMarginals  # noqa: E402
from sdekit.learn import ConvScoreNet, InDIDenoiser, ScoreMLP, train_indi  # noqa: E402
from sdekit.restoration import MixtureDenoiser, indi_sample  # noqa: E402
from sdekit.targets import GaussianMixture  # noqa: E402
from sdekit.validate import compare_with_law  # noqa: E402
from sdekit.validate.closed_form import MIXTURE_2D  # noqa: E402

SIGMA_Y = 0.5  # digits, model space [-1, 1)
SIGMA_Y_MIXTURE = 1.0
PEAK = 2.0  # peak-to-peak of model space, for the PSNR
WEIGHTS_VERSION = 1
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "indi"


@dataclass(frozen=True)
class Config:
    """Sizes of one run: the digit net's training (steps, batch, lr, width, blocks per level, seed), the held-out
    digits restored and the step counts; the mixture's learned denoiser (training steps) and restored draws."""

    train_steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    hidden: int = 32
    depth: int = 1
    seed: int = 0
    n_restore: int = dg.HELD_OUT
    step_counts: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)
    mixture_train_steps: int = 3000
    mixture_n: int = 20_000
    mixture_steps: tuple[int, ...] = (1, 5, 20, 50, 100)
    bayes_n: int = 200_000
    quick: bool = False

    def training_key(self) -> str:
        """A digest of everything that determines the digit net's weights (the cache file's name)."""
        fields = {k: getattr(self, k) for k in ("train_steps", "batch_size", "lr", "hidden", "depth", "seed")}
        fields.update(version=WEIGHTS_VERSION, sigma_y=SIGMA_Y)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


FULL = Config()
QUICK = Config(train_steps=150, batch_size=64, n_restore=120, step_counts=(1, 5, 20), mixture_train_steps=300,
               mixture_n=4000, mixture_steps=(1, 50), bayes_n=20_000, quick=True)


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def build_denoiser(cfg: Config) -> InDIDenoiser:
    """F(x, t) = x - t net(x, t), net a float32 ConvScoreNet(1 channel) conditioned on t (Fourier scale 4 for
    t in [0, 1]), initialised from cfg.seed; its zero output layer makes the untrained F the identity."""
    torch.manual_seed(cfg.seed)
    return InDIDenoiser(ConvScoreNet(1, hidden=cfg.hidden, depth=cfg.depth, embedding_dim=32, fourier_scale=4.0))


def train_digits(digits: dg.Digits, cfg: Config, cache_dir: Path | None, retrain: bool = False) -> dg.Trained:
    """Train (or load from cache_dir) the digit InDI denoiser: `train_indi` with y = x + SIGMA_Y n on fresh
    dequantised training digits (digits.py's batch source), Adam, cosine decay, gradient norm clipped at 1."""
    model = build_denoiser(cfg)
    path = None if cache_dir is None else Path(cache_dir) / f"indi_digits_{cfg.training_key()}.pt"
    if path is not None and path.exists() and not retrain:
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return dg.Trained(model, saved["losses"].numpy(), float(saved["seconds"]), True, path)
    result = train_indi(model, dg.dequantised_draws(digits.train), SIGMA_Y, steps=cfg.train_steps,
                        batch_size=cfg.batch_size, lr=cfg.lr, grad_clip=1.0, seed=cfg.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": model.state_dict(), "losses": torch.as_tensor(result.losses),
                    "seconds": result.seconds, "config": asdict(cfg)}, tmp)
        tmp.replace(path)
    return dg.Trained(model, result.losses, result.seconds, False, path)


def reference_judge(digits: dg.Digits, n: int, seed: int) -> dg.Judge:
    """digits.py's Judge (feature maps fitted on the training digits) whose real set is n training digits drawn
    without replacement: restorations of the held-out digits are compared with digits they were not made from, and
    the clean held-out digits' own FD to that set is the floor."""
    rows = np.random.default_rng(seed).choice(len(digits.train), n, replace=False)
    return dg.Judge(dg.Digits(digits.train, digits.train_labels, digits.train[rows], digits.train_labels[rows]))


def noisy_digits(digits: dg.Digits, n: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """The first n held-out digits as clean model-space images (bin centres, float64 (n, 1, 8, 8)) and their
    observations y = x + SIGMA_Y n (a float32 tensor), the noise from np.random.default_rng(seed)."""
    clean = dg.to_model_space(digits.held_out[:n])
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    return clean, torch.as_tensor(clean + SIGMA_Y * noise, dtype=torch.float32)


@dataclass
class Row:
    """One restoration of the held-out digits: its name, model calls, MSE per pixel, PSNR (dB), FD per feature map,
    seconds, and the images (n, 1, 8, 8) in model space (psnr None for the clean digits themselves)."""

    name: str
    nfe: int
    mse: float
    psnr: float | None
    fd: dict[str, float]
    seconds: float
    x: np.ndarray


def _row(name: str, nfe: int, x: np.ndarray, clean: np.ndarray, judge: dg.Judge, seconds: float) -> Row:
    mse = float(np.mean((x - clean) ** 2))
    psnr = 10.0 * math.log10(PEAK ** 2 / mse) if mse > 0 else None
    return Row(name, nfe, mse, psnr, judge.fd(dg.to_pixels(x)), seconds, x)


def restore_digits(model: Any, clean: np.ndarray, y: torch.Tensor, judge: dg.Judge,
                   step_counts: tuple[int, ...]) -> list[Row]:
    """The noisy input, then `indi_sample` (deterministic, uniform t grid) at each step count."""
    rows = [_row("noisy input y", 0, y.numpy().astype(np.float64), clean, judge, 0.0)]
    for steps in step_counts:
        start = time.perf_counter()
        with torch.no_grad():
            res = indi_sample(model, y, steps=steps)
        name = "InDI, 1 step (posterior mean)" if steps == 1 else f"InDI, {steps} steps"
        rows.append(_row(name, res.nfe, res.x.numpy().astype(np.float64), clean, judge,
                         time.perf_counter() - start))
    return rows


# --------------------------------------------------------------------------------------------
# the 2-D mixture: learned and exact InDI against the exact posterior mean
# --------------------------------------------------------------------------------------------


@dataclass
class MixtureRow:
    """One restoration of the mixture's y: denoiser (exact / learned), steps, mean squared error (and its standard
    error) against the clean x, its ratio to the Bayes risk, the RMS distance to the exact restoration at the same
    steps (learned only), and the law battery's verdict and min p against the data law."""

    denoiser: str
    steps: int
    mse: float
    mse_se: float
    mse_over_bayes: float
    rms_to_exact: float | None
    law_passed: bool
    law_min_p: float


def bayes_risk(mm: MixtureMarginals, n: int, seed: int) -> tuple[float, float]:
    """E||E[x | y] - x||^2 by Monte Carlo on n exact pairs (x, y = x + SIGMA_Y_MIXTURE n): mean and standard
    error."""
    y, x, _ = mm.sample(n, 1.0, SIGMA_Y_MIXTURE, seed=seed, return_pairs=True)
    err = np.sum((mm.denoiser(y, 1.0, SIGMA_Y_MIXTURE) - x) ** 2, axis=1)
    return float(err.mean()), float(err.std(ddof=1) / math.sqrt(n))


def train_mixture_denoiser(mm: MixtureMarginals, cfg: Config) -> tuple[InDIDenoiser, np.ndarray]:
    """InDIDenoiser(ScoreMLP(2, 64, depth 2)) in float64, trained by `train_indi` (batch 256, lr 5e-3) on 20000
    draws of the data with y = x + SIGMA_Y_MIXTURE n fresh per batch."""
    torch.manual_seed(cfg.seed)
    model = InDIDenoiser(ScoreMLP(2, hidden=64, depth=2, fourier_scale=4.0)).double()
    data = torch.as_tensor(mm.data.sample(20_000, np.random.default_rng(cfg.seed + 5)))
    result = train_indi(model, data, SIGMA_Y_MIXTURE, steps=cfg.mixture_train_steps, batch_size=256, lr=5e-3,
                        seed=cfg.seed + 1)
    return model, result.losses


def restore_mixture(cfg: Config) -> dict[str, Any]:
    """Exact and learned InDI on the same n exact pairs at each step count (module docstring, part 2)."""
    mm = MixtureMarginals(GaussianMixture(**MIXTURE_2D))
    risk, risk_se = bayes_risk(mm, cfg.bayes_n, seed=cfg.seed + 7)
    start = time.perf_counter()
    learned, losses = train_mixture_denoiser(mm, cfg)
    train_seconds = time.perf_counter() - start
    y, x, _ = mm.sample(cfg.mixture_n, 1.0, SIGMA_Y_MIXTURE, seed=cfg.seed + 8, return_pairs=True)
    exact = MixtureDenoiser(mm, SIGMA_Y_MIXTURE)
    rows, outputs = [], {}
    for steps in cfg.mixture_steps:
        ex = indi_sample(exact, y, steps=steps).x
        with torch.no_grad():
            le = indi_sample(learned, torch.as_tensor(y), steps=steps).x.numpy()
        outputs[steps] = (ex, le)
        for name, xhat in (("exact", ex), ("learned", le)):
            err = np.sum((xhat - x) ** 2, axis=1)
            rep = compare_with_law(xhat, mm.data, alpha=1e-6, name=f"{name} InDI {steps} steps")
            rows.append(MixtureRow(name, steps, float(err.mean()), float(err.std(ddof=1) / math.sqrt(len(err))),
                                   float(err.mean() / risk),
                                   None if name == "exact" else float(np.sqrt(np.mean(np.sum((le - ex) ** 2, 1)))),
                                   bool(rep.passed), float(rep.min_pvalue)))
    return {"rows": rows, "bayes_risk": risk, "bayes_risk_se": risk_se, "train_losses": losses,
            "train_seconds": train_seconds, "x": x, "y": y, "outputs": outputs}


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


@dataclass
class InDIRun:
    """Everything a run measured, with the clean held-out digits, their observations y and the judge used."""

    config: Config
    trained: dg.Trained
    rows: list[Row]
    clean: np.ndarray
    y: torch.Tensor
    judge: dg.Judge
    mixture: dict[str, Any]
    machine: dict[str, Any]
    seconds: float


def run(cfg: Config = FULL, cache_dir: Path | None = None, retrain: bool = False, log: Any = None) -> InDIRun:
    """Train (or load) the digit denoiser, restore the held-out digits, run the mixture comparison."""
    start = time.perf_counter()
    machine = dg.machine_info()
    digits = dg.load_split()
    trained = train_digits(digits, cfg, cache_dir, retrain)
    if log is not None:
        log(f"digit denoiser: {len(trained.losses)} steps, {trained.seconds:.1f} s (cached: {trained.cached})")
    judge = reference_judge(digits, cfg.n_restore, seed=cfg.seed + 301)
    clean, y = noisy_digits(digits, cfg.n_restore, seed=cfg.seed + 300)
    rows = [_row("clean held-out x (floor)", 0, clean, clean, judge, 0.0)]
    rows += restore_digits(trained.model, clean, y, judge, cfg.step_counts)
    mixture = restore_mixture(cfg)
    machine["load_1min_end"] = os.getloadavg()[0]
    return InDIRun(cfg, trained, rows, clean, y, judge, mixture, machine, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def save_digit_figure(res: InDIRun, path: Path, columns: int = 16) -> None:
    """Clean digits, their noisy observations and each restoration, one line each (the same digits per column)."""
    plt = dg._pyplot()
    short = {0: "noisy y", 1: "1 step"}
    lines = [("clean x", res.clean)] + [(short.get(r.nfe, f"{r.nfe} steps"), r.x) for r in res.rows[1:]]
    fig, axes = plt.subplots(len(lines), 1, figsize=(columns * 0.45 + 2.2, len(lines) * 0.5 + 0.4), squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], lines):
        ax.imshow(dg._tiles(images, columns)[:8], cmap=dg._digit_cmap(plt), vmin=0, vmax=dg.LEVELS - 1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title(f"InDI restoration of held-out digits, sigma_y = {SIGMA_Y} (model space [-1, 1])", fontsize=8)
    fig.tight_layout(h_pad=0.2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_mixture_figure(res: InDIRun, path: Path, points: int = 3000) -> None:
    """Scatter plots on the 2-D mixture: clean x, y, the posterior mean (1 step) and exact / learned InDI at the
    largest step count."""
    plt = dg._pyplot()
    mix = res.mixture
    last = max(mix["outputs"])
    panels = [("clean x", mix["x"]), (f"y = x + {SIGMA_Y_MIXTURE} n", mix["y"]),
              ("E[x | y] (1 step, exact)", mix["outputs"][min(mix["outputs"])][0]),
              (f"exact InDI, {last} steps", mix["outputs"][last][0]),
              (f"learned InDI, {last} steps", mix["outputs"][last][1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.1), sharex=True, sharey=True)
    for ax, (name, pts) in zip(axes, panels):
        ax.scatter(pts[:points, 0], pts[:points, 1], s=1, alpha=0.4)
        ax.set_title(name, fontsize=8)
        ax.set_xlim(-5.5, 5.5)
        ax.set_ylim(-4, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def results_json(res: InDIRun) -> dict[str, Any]:
    """The run's numbers as plain data (what results.json holds)."""
    losses, k = res.trained.losses, max(1, len(res.trained.losses) // 10)
    mix = res.mixture
    return {
        "config": asdict(res.config),
        "sigma_y": SIGMA_Y,
        "machine": res.machine,
        "training": {"steps": len(losses), "seconds": res.trained.seconds, "cached": res.trained.cached,
                     "loss_first_10pct": float(losses[:k].mean()), "loss_last_10pct": float(losses[-k:].mean())},
        "digits": [{"restoration": r.name, "nfe": r.nfe, "mse": r.mse, "psnr": r.psnr,
                    **{f"fd_{f}": v for f, v in r.fd.items()}, "seconds": r.seconds} for r in res.rows],
        "mixture": {"sigma_y": SIGMA_Y_MIXTURE, "bayes_risk": mix["bayes_risk"], "bayes_risk_se": mix["bayes_risk_se"],
                    "train_seconds": mix["train_seconds"], "rows": [asdict(r) for r in mix["rows"]]},
        "seconds": res.seconds,
    }


def results_markdown(res: InDIRun) -> str:
    """The digits table, the mixture table and the machine."""
    m, mix, cfg = res.machine, res.mixture, res.config
    losses, k = res.trained.losses, max(1, len(res.trained.losses) // 10)
    lines = [f"# InDI: restoring noisy digits (sigma_y = {SIGMA_Y}) and a 2-D mixture (sigma_y = {SIGMA_Y_MIXTURE})",
             "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} thread(s); load "
             f"{m['load_1min']:.1f} -> {m['load_1min_end']:.1f}. Total {res.seconds:.0f} s. Digit denoiser: "
             f"{len(losses)} training steps ({res.trained.seconds:.0f} s{', cached' if res.trained.cached else ''}), "
             f"InDI loss {losses[:k].mean():.3f} (first 10 %) -> {losses[-k:].mean():.3f} (last 10 %).", "",
             f"## Digits: {cfg.n_restore} held-out digits, y = x + {SIGMA_Y} n", "",
             "MSE per pixel and PSNR (peak-to-peak 2) against the clean digits; Fréchet distance to "
             f"{cfg.n_restore} training digits (not the ones restored) on the pixels' 16 principal components (pca16) "
             "and a classifier's hidden layer (mlp64); the clean held-out digits' own FD is the floor.", "",
             "| restoration | NFE | MSE | PSNR (dB) | FD pca16 | FD mlp64 |", "|---|---:|---:|---:|---:|---:|"]
    for r in res.rows:
        psnr = "" if r.psnr is None else f"{r.psnr:.2f}"
        lines.append(f"| {r.name} | {r.nfe} | {r.mse:.4f} | {psnr} | {r.fd['pca16']:.3f} | "
                     f"{r.fd['mlp64']:.2f} |")
    lines += ["", f"## 2-D mixture: {cfg.mixture_n} exact pairs, y = x + {SIGMA_Y_MIXTURE} n", "",
              f"Bayes risk E||E[x | y] - x||^2 = {mix['bayes_risk']:.4f} ± {mix['bayes_risk_se']:.4f} (Monte Carlo, "
              f"{cfg.bayes_n} exact draws). Learned denoiser: {cfg.mixture_train_steps} training steps "
              f"({mix['train_seconds']:.0f} s). Law: `compare_with_law` against the data law at 1e-6.", "",
              "| denoiser | steps | E‖x̂ - x‖² | / Bayes risk | RMS to exact | law | min p |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for r in mix["rows"]:
        gap = "" if r.rms_to_exact is None else f"{r.rms_to_exact:.3f}"
        lines.append(f"| {r.denoiser} | {r.steps} | {r.mse:.4f} ± {r.mse_se:.4f} | {r.mse_over_bayes:.3f} | {gap} | "
                     f"{'pass' if r.law_passed else 'FAIL'} | {r.law_min_p:.2g} |")
    return "\n".join(lines) + "\n"


def write_results(res: InDIRun, out_dir: Path) -> list[Path]:
    """Write digits.png, mixture.png, results.md and results.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "digits.png", out_dir / "mixture.png", out_dir / "results.md", out_dir / "results.json"]
    save_digit_figure(res, paths[0])
    save_mixture_figure(res, paths[1])
    paths[2].write_text(results_markdown(res))
    paths[3].write_text(json.dumps(results_json(res), indent=1) + "\n")
    return paths


def main(argv: list[str] | None = None) -> InDIRun:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, end to end in well under a minute")
    parser.add_argument("--retrain", action="store_true", help="train even if cached weights exist")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the digit weights are cached")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the figures and tables go (default: examples/results/indi for the full run; the "
                             "quick run writes none unless given)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = QUICK if args.quick else FULL
    res = run(cfg, args.cache_dir or dg.default_cache_dir(), args.retrain, log=lambda s: print(s, flush=True))
    print(results_markdown(res))
    out_dir = args.out_dir if args.out_dir is not None or args.quick else RESULTS_DIR
    if out_dir is not None:
        for path in write_results(res, out_dir):
            print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
