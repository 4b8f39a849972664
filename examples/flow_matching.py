"""Flow matching / rectified flow end to end: train small velocity models on a 2-D Gaussian mixture (where the exact
velocity is known) and on scikit-learn's 8x8 digits, and sample them with the flow samplers and, through the
velocity -> score conversion, with a diffusion sampler.

    python examples/flow_matching.py            # full run; writes examples/results/flow_matching/ (md, json, png)
    python examples/flow_matching.py --quick    # reduced run end to end (the smoke test's configuration)
    python examples/flow_matching.py --retrain  # ignore the cached digits weights

1. 2-D mixture. x_t = (1 - t) x_0 + t eps (Liu et al. 2022; Lipman et al. 2023). A `ScoreMLP` read as a velocity
   v(x, t) (`VelocityModel`) is trained with the conditional flow-matching loss (`train_flow_model`, Adam, cosine
   decay). It is compared with the exact velocity `MixtureVelocity` (the relative mean squared error
   E||v - u||^2 / E||u||^2 at several t on exact draws of x_t) and its loss with the loss's minimum, the loss of the
   exact velocity on the same draws. Both velocities are then sampled from the same N = 20000 draws x_1 ~ N(0, I)
   with Euler, Heun and midpoint (`flow_sample`) and DPM-Solver++(2M) (`dpm_solver_sample` on the flow kernel
   (1 - t, t) through `VelocityAsScore`, log-SNR grid from t = 0.999, exact start there, final denoise to t = 0),
   and every output goes through the exact-law battery (`compare_with_law` at 1e-6 against the data law).
2. Digits. The data, dequantisation, feature maps and Fréchet distance of examples/digits.py (imported, not copied):
   a `ConvScoreNet` read as a velocity (t in [0, 1], Fourier scale 16) trained by flow matching on the dequantised
   training digits (weights cached under ``--cache-dir`` as digits_flow_<settings>.pt), sampled from the same prior
   draws with Euler, Heun, midpoint and DPM-Solver++(2M) at several NFE; FD to the held-out digits on both feature
   maps, with the floor (real vs real) and noise, and, when examples/digits.py's cached eps model is found
   (``--eps-cache-dir``), that diffusion model's DPM-Solver++(2M) at the same budgets for comparison.

Measured (full run; examples/results/flow_matching/results.md; one torch thread on a 2-core machine shared with other
jobs, load 4-5: the 2-D model trains in 14-45 s, the digits model in 640 s, the rest takes about 70 s).
2-D: the learned velocity's relative error E||v - u||^2 / E||u||^2 is 0.002-0.013 over t in [0.05, 0.95]; its loss
exceeds the minimum by 0.039 +- 0.046 (4.354 vs 4.315). From the same 20000 starts the learned velocity PASSES the
exact-law battery with Euler at 100 NFE (min p 1.1e-4), Heun at 20 (1.3e-3) and midpoint at 20 (2.5e-5); through
VelocityAsScore, DPM-Solver++(2M) at 40 NFE fails with it (min p 9e-9; it passes with the exact velocity, 0.012,
and fails at 30 NFE even with the exact one, 1e-10: this grid spans log-SNR -6.9 .. 6.9).
Digits (n = 360, FD pca16 / mlp64; floor 0.284 / 1.71 with sd 0.048 / 0.32 over 30 draws; noise 7.09 / 117):
flow midpoint 0.337 / 2.03 at 6 NFE and 0.311 / 1.93 at 10; Heun 0.365 / 2.79 at 6, 0.341 / 2.35 at 10; Euler
0.515 / 3.01 at 6, 0.340 / 2.10 at 20; DPM-Solver++(2M) through the conversion 1.34 / 7.47 at 6, 0.314 / 1.94 at 20;
all 0.31-0.32 / 1.94-1.99 at 50. examples/digits.py's eps model (same architecture, 4000 steps) with
DPM-Solver++(2M) from the same draws: 0.942 / 4.80 at 6, 0.387 / 2.30 at 10, 0.358 / 2.24 at 50. The differences at
20-50 NFE are within about one floor sd, so not resolved at n = 360; at 6-10 NFE the flow model's midpoint / Heun
samples are clearly closer than the eps model's DPM-Solver++(2M).
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

from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.flow import MixtureVelocity, VelocityAsScore, flow_sample
from sdekit.learn import ConvScoreNet, ScoreMLP, VelocityModel, flow_matching_loss, train_flow_model
from sdekit.targets import GaussianMixture
from sdekit.validate import compare_with_law

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits as dg  # noqa: E402  (examples/digits.py: data, feature maps, Fréchet distance, grids)

RESULTS_DIR = Path(__file__).resolve().parent / "results" / "flow_matching"
WEIGHTS_VERSION = 1
T_START_DPM = 0.999  # DPM-Solver++ needs alpha > 0: it starts at t = 0.999 (alpha = 0.001)


def _rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def mixture() -> GaussianMixture:
    """The 2-D anisotropic mixture of the diffusion tests (tests/test_diffusion_fixtures.make_data(2))."""
    specs = [((0.05, 1.0), 0.3), ((0.6, 0.2), 1.1), ((1.5, 0.4), -0.7)]
    covs = [_rot(th) @ np.diag(ev) @ _rot(th).T for ev, th in specs]
    return GaussianMixture([0.2, 0.5, 0.3], [[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]], covs)


@dataclass(frozen=True)
class Config:
    """Sizes of one run: the 2-D model (training steps, batch, width), the law-check sample size; the digits model
    (training steps, batch), generated digits per sampler and budget, the budgets; whether to compare with the
    cached eps model of examples/digits.py."""

    mix_steps: int = 4000
    mix_batch: int = 512
    mix_hidden: int = 128
    mix_n: int = 20_000
    digit_steps: int = 4000
    digit_batch: int = 128
    n_samples: int = dg.HELD_OUT
    digit_nfes: tuple[int, ...] = (6, 10, 20, 50)
    compare_eps: bool = True
    seed: int = 0
    quick: bool = False

    def digits_key(self) -> str:
        fields = {"steps": self.digit_steps, "batch": self.digit_batch, "seed": self.seed, "version": WEIGHTS_VERSION}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


FULL = Config()
QUICK = Config(mix_steps=600, mix_batch=256, mix_hidden=64, mix_n=2000, digit_steps=40, digit_batch=64,
               n_samples=64, digit_nfes=(10,), compare_eps=False, quick=True)


def _law_row(x: np.ndarray, law: GaussianMixture) -> dict[str, Any]:
    rep = compare_with_law(np.asarray(x, dtype=np.float64), law, alpha=1e-6)
    return {"passed": bool(rep.passed), "min_p": float(rep.min_pvalue)}


# --------------------------------------------------------------------------------------------
# part 1: the 2-D mixture
# --------------------------------------------------------------------------------------------

MIX_SAMPLERS = {  # name -> (method, steps) for flow_sample, or "dpm" for DPM-Solver++(2M) with that NFE
    "Euler (100 NFE)": ("euler", 100),
    "Heun (20 NFE)": ("heun", 10),
    "midpoint (20 NFE)": ("midpoint", 10),
    "DPM-Solver++(2M) via VelocityAsScore (40 NFE)": ("dpm", 40),
}


def dpm_on_flow(velocity: Any, x_start: Any, nfe: int) -> Any:
    """DPM-Solver++(2M) on the flow kernel t -> (1 - t, t), log-SNR grid from T_START_DPM to 1e-3, plus the final
    denoise to t = 0: NFE = nfe."""
    return dpm_solver_sample(VelocityAsScore(velocity), lambda t: (1.0 - t, t), x_start, order=2, steps=nfe - 1,
                             method="multistep", algorithm="dpmsolver++", skip="logSNR",
                             t_span=(T_START_DPM, 1e-3), to_zero=True)


def run_mixture(cfg: Config, log: Any = print) -> dict[str, Any]:
    law = mixture()
    exact = MixtureVelocity(law)
    torch.manual_seed(cfg.seed)
    model = VelocityModel(ScoreMLP(2, hidden=cfg.mix_hidden, depth=3, fourier_scale=16.0))
    data = law.sample(100_000, np.random.default_rng(cfg.seed))
    trained = train_flow_model(model, data, steps=cfg.mix_steps, batch_size=cfg.mix_batch, lr=2e-3, seed=cfg.seed)
    log(f"2-D mixture: trained {cfg.mix_steps} steps in {trained.seconds:.1f} s")
    errors = {}
    with torch.no_grad():
        for t in (0.05, 0.25, 0.5, 0.75, 0.95):
            x = exact.sample(4000, t, seed=11)
            u, v = exact(x, t), model(x, t)
            errors[f"{t:g}"] = float(np.mean(np.sum((v - u) ** 2, 1)) / np.mean(np.sum(u * u, 1)))
        x_eval = torch.as_tensor(law.sample(20_000, np.random.default_rng(12)))
        learned = flow_matching_loss(model, x_eval.float(), generator=torch.Generator().manual_seed(13),
                                     reduction="none").double().numpy()
        minimum = flow_matching_loss(exact, x_eval, generator=torch.Generator().manual_seed(13),
                                     reduction="none").numpy()
    loss = {"learned": float(learned.mean()), "minimum": float(minimum.mean()),
            "excess": float((learned - minimum).mean()),
            "excess_se": float((learned - minimum).std(ddof=1) / math.sqrt(learned.size))}
    x1 = exact.sample(cfg.mix_n, 1.0, seed=1)
    x_dpm = exact.sample(cfg.mix_n, T_START_DPM, seed=1)
    rows, samples = [], {}
    for name, (method, k) in MIX_SAMPLERS.items():
        for which, vel in (("learned", model), ("exact", exact)):
            t0 = time.perf_counter()
            with torch.no_grad():
                res = dpm_on_flow(vel, x_dpm, k) if method == "dpm" else flow_sample(vel, x1, method=method, steps=k)
            row = {"sampler": name, "velocity": which, "nfe": res.nfe, "seconds": time.perf_counter() - t0,
                   **_law_row(res.x, law)}
            rows.append(row)
            samples[(name, which)] = res.x
            log(f"  {name:<46} {which:<8} law {'pass' if row['passed'] else 'FAIL'} (min p {row['min_p']:.2g})")
    return {"velocity_rel_mse": errors, "loss": loss, "rows": rows, "train_seconds": trained.seconds,
            "losses": trained.losses, "samples": samples, "data": law.sample(cfg.mix_n, np.random.default_rng(3))}


# --------------------------------------------------------------------------------------------
# part 2: the digits
# --------------------------------------------------------------------------------------------


def train_digits(split: dg.Digits, cfg: Config, cache_dir: Path | None, retrain: bool) -> tuple[VelocityModel, dict]:
    """The digits velocity model (trained, or loaded from cache_dir/digits_flow_<key>.pt)."""
    torch.manual_seed(cfg.seed)
    model = VelocityModel(ConvScoreNet(1, hidden=32, depth=1, fourier_scale=16.0))
    path = None if cache_dir is None else Path(cache_dir) / f"digits_flow_{cfg.digits_key()}.pt"
    if path is not None and path.exists() and not retrain:
        saved = torch.load(path, weights_only=True)
        model.net.load_state_dict(saved["state_dict"])
        model.eval()
        return model, {"cached": True, "seconds": float(saved["seconds"]), "losses": saved["losses"].numpy()}
    res = train_flow_model(model, dg.dequantised_draws(split.train), steps=cfg.digit_steps,
                           batch_size=cfg.digit_batch, lr=2e-3, grad_clip=1.0, seed=cfg.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": model.net.state_dict(), "losses": torch.as_tensor(res.losses),
                    "seconds": res.seconds}, tmp)
        tmp.replace(path)
    return model, {"cached": False, "seconds": res.seconds, "losses": res.losses}


def digit_samplers(model: VelocityModel, z: torch.Tensor, nfe: int) -> dict[str, Any]:
    """name -> the result of each sampler at about ``nfe`` model evaluations from z."""
    half = max(1, nfe // 2)
    return {
        "Euler": lambda: flow_sample(model, z, method="euler", steps=nfe),
        "Heun": lambda: flow_sample(model, z, method="heun", steps=half),
        "midpoint": lambda: flow_sample(model, z, method="midpoint", steps=half),
        "DPM-Solver++(2M)": lambda: dpm_on_flow(model, z, max(2, nfe)),
    }


def run_digits(cfg: Config, cache_dir: Path | None, eps_cache_dir: Path | None, retrain: bool,
               log: Any = print) -> dict[str, Any]:
    split = dg.load_split()
    model, info = train_digits(split, cfg, cache_dir, retrain)
    log(f"digits: {'loaded' if info['cached'] else 'trained'} the velocity model ({info['seconds']:.0f} s of "
        "training)")
    judge = dg.Judge(split)
    z = dg.prior_draws(cfg.n_samples, seed=4).float()
    rows: list[dg.SampleRow] = []
    for nfe in cfg.digit_nfes:
        for name, fn in digit_samplers(model, z, nfe).items():
            t0 = time.perf_counter()
            with torch.no_grad():
                res = fn()
            x = res.x.double().numpy()
            rows.append(dg.SampleRow(f"flow {name}", res.nfe, time.perf_counter() - t0, x, judge.fd(dg.to_pixels(x))))
            log(f"  flow {name:<18} NFE {res.nfe:>3}: FD " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].fd.items()))
    eps_rows: list[dg.SampleRow] = []
    eps_path = None if eps_cache_dir is None else Path(eps_cache_dir) / f"digits_eps_{dg.FULL.training_key()}.pt"
    if cfg.compare_eps and eps_path is not None and eps_path.exists():
        eps_model = dg.train(split, dg.FULL, cache_dir=Path(eps_cache_dir)).model  # loads, never trains
        net = dg.network(eps_model)
        for nfe in cfg.digit_nfes:
            t0 = time.perf_counter()
            with torch.no_grad():
                res = dg.dpm_solver_pp_2m(net, z.double(), max(2, nfe), 0)
            x = res.x.double().numpy()
            eps_rows.append(dg.SampleRow("eps model DPM-Solver++(2M)", res.nfe, time.perf_counter() - t0, x,
                                         judge.fd(dg.to_pixels(x))))
            log(f"  eps model DPM-Solver++(2M) NFE {res.nfe:>3}: FD "
                + ", ".join(f"{k} {v:.3f}" for k, v in eps_rows[-1].fd.items()))
    spread = judge.floor_spread(cfg.n_samples)
    reference = {dg.FLOOR: {k: v["mean"] for k, v in spread.items()}, dg.NOISE: judge.noise(cfg.n_samples)}
    return {"rows": rows, "eps_rows": eps_rows, "reference": reference, "floor_spread": spread,
            "train": {k: v for k, v in info.items() if k != "losses"}, "losses": info["losses"], "model": model,
            "judge": judge, "z": z}


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def save_mixture_plot(mix: dict[str, Any], path: Path) -> None:
    plt = dg._pyplot()
    names = list(MIX_SAMPLERS)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(3.2 * (len(names) + 1), 6.4))
    data = mix["data"]
    for row, which in enumerate(("learned", "exact")):
        ax = axes[row, 0]
        ax.scatter(data[:3000, 0], data[:3000, 1], s=1, alpha=0.4, color="k")
        ax.set_title("data" if row == 0 else "data (again)", fontsize=8)
        for col, name in enumerate(names, start=1):
            x = mix["samples"][(name, which)]
            r = next(r for r in mix["rows"] if r["sampler"] == name and r["velocity"] == which)
            axes[row, col].scatter(x[:3000, 0], x[:3000, 1], s=1, alpha=0.4)
            axes[row, col].set_title(f"{which}: {name}\nlaw {'pass' if r['passed'] else 'fail'}, min p "
                                     f"{r['min_p']:.1e}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_training_plot(mix: dict[str, Any], dig: dict[str, Any], path: Path) -> None:
    plt = dg._pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, losses, title in ((axes[0], mix["losses"], "2-D mixture"), (axes[1], dig["losses"], "digits")):
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(smooth)
        ax.set_title(f"{title}: flow-matching loss", fontsize=9)
        ax.set_xlabel("step")
    axes[0].axhline(mix["loss"]["minimum"], color="k", ls="--", lw=1, label="minimum (exact velocity)")
    axes[0].legend(fontsize=7)
    ts = [float(t) for t in mix["velocity_rel_mse"]]
    axes[2].semilogy(ts, list(mix["velocity_rel_mse"].values()), "o-")
    axes[2].set_title("2-D: E||v - u||^2 / E||u||^2", fontsize=9)
    axes[2].set_xlabel("t")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def results_json(cfg: Config, mix: dict[str, Any], dig: dict[str, Any], seconds: float) -> dict[str, Any]:
    def row(r: dg.SampleRow) -> dict[str, Any]:
        return {"sampler": r.sampler, "nfe": r.nfe, "seconds": r.seconds, "fd": r.fd}

    return {"config": asdict(cfg), "seconds": seconds, "machine": dg.machine_info(),
            "mixture": {"velocity_rel_mse": mix["velocity_rel_mse"], "loss": mix["loss"], "rows": mix["rows"],
                        "train_seconds": mix["train_seconds"]},
            "digits": {"rows": [row(r) for r in dig["rows"]], "eps_rows": [row(r) for r in dig["eps_rows"]],
                       "reference": dig["reference"], "floor_spread": dig["floor_spread"], "train": dig["train"]}}


def results_markdown(res: dict[str, Any]) -> str:
    mix, dig = res["mixture"], res["digits"]
    lines = ["# Flow matching example (examples/flow_matching.py)", "",
             f"Config: `{json.dumps(res['config'])}`; {res['seconds']:.0f} s in all.", "",
             "## 2-D mixture", "",
             "Relative velocity error E||v - u||^2 / E||u||^2 of the learned velocity against the exact one:", "",
             "| t | " + " | ".join(mix["velocity_rel_mse"]) + " |",
             "|---|" + "---|" * len(mix["velocity_rel_mse"]),
             "| rel. MSE | " + " | ".join(f"{v:.4f}" for v in mix["velocity_rel_mse"].values()) + " |", "",
             f"Flow-matching loss on 20000 fixed draws: learned {mix['loss']['learned']:.4f}, minimum (exact "
             f"velocity) {mix['loss']['minimum']:.4f}, excess {mix['loss']['excess']:.4f} +- "
             f"{mix['loss']['excess_se']:.4f}.", "",
             f"Exact-law battery (compare_with_law at 1e-6 against the data law, N = {res['config']['mix_n']}):", "",
             "| sampler | velocity | NFE | law | min p |", "|---|---|---|---|---|"]
    for r in mix["rows"]:
        lines.append(f"| {r['sampler']} | {r['velocity']} | {r['nfe']} | {'pass' if r['passed'] else 'fail'} | "
                     f"{r['min_p']:.2g} |")
    feats = list(dig["reference"][dg.NOISE])
    lines += ["", "## Digits", "",
              f"Velocity model: {'loaded from cache' if dig['train']['cached'] else 'trained'} "
              f"({dig['train']['seconds']:.0f} s of training). Fréchet distance to the held-out digits "
              f"(n = {res['config']['n_samples']}):", "",
              "| sampler | NFE | " + " | ".join(f"FD {f}" for f in feats) + " |", "|---|---|" + "---|" * len(feats)]
    for r in dig["rows"] + dig["eps_rows"]:
        lines.append(f"| {r['sampler']} | {r['nfe']} | " + " | ".join(f"{r['fd'][f]:.3f}" for f in feats) + " |")
    for name, ref in dig["reference"].items():
        lines.append(f"| {name} | - | " + " | ".join(f"{ref[f]:.3f}" for f in feats) + " |")
    sd = dig["floor_spread"]
    lines += ["", "Floor spread (sd over 30 draws): " + ", ".join(f"{f} {sd[f]['sd']:.3f}" for f in feats) + "."]
    return "\n".join(lines) + "\n"


def write_results(cfg: Config, mix: dict[str, Any], dig: dict[str, Any], seconds: float,
                  out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = results_json(cfg, mix, dig, seconds)
    paths = [out_dir / "results.json", out_dir / "results.md", out_dir / "mixture_samples.png",
             out_dir / "training.png", out_dir / "digits_fd_vs_nfe.png"]
    paths[0].write_text(json.dumps(data, indent=1) + "\n")
    paths[1].write_text(results_markdown(data))
    save_mixture_plot(mix, paths[2])
    save_training_plot(mix, dig, paths[3])
    save_fd_plot(dig, paths[4])
    rows = dig["rows"] + dig["eps_rows"]
    for name in dict.fromkeys(r.sampler for r in rows):
        paths.append(out_dir / f"digits_{dg.slug(name)}.png")
        dg.save_sampler_grid([r for r in rows if r.sampler == name], paths[-1])
    return paths


def save_fd_plot(dig: dict[str, Any], path: Path) -> None:
    """FD on each feature map against NFE, one line per sampler, the floor and noise as horizontal lines."""
    plt = dg._pyplot()
    rows = dig["rows"] + dig["eps_rows"]
    feats = list(dig["reference"][dg.NOISE])
    fig, axes = plt.subplots(1, len(feats), figsize=(5.2 * len(feats), 3.6))
    for ax, f in zip(np.atleast_1d(axes), feats):
        for name in dict.fromkeys(r.sampler for r in rows):
            pts = sorted((r.nfe, r.fd[f]) for r in rows if r.sampler == name)
            ax.loglog(*zip(*pts), "o-" if name.startswith("flow") else "s--", label=name, ms=3)
        ax.axhline(dig["reference"][dg.FLOOR][f], color="k", ls="--", lw=1, label="floor (real vs real)")
        ax.set_xlabel("NFE")
        ax.set_title(f"digits: FD ({f})", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(cfg: Config = FULL, cache_dir: Path | None = None, eps_cache_dir: Path | None = None, retrain: bool = False,
        out_dir: Path | None = None, log: Any = print) -> dict[str, Any]:
    start = time.perf_counter()
    mix = run_mixture(cfg, log)
    dig = run_digits(cfg, cache_dir, eps_cache_dir, retrain, log)
    seconds = time.perf_counter() - start
    paths = write_results(cfg, mix, dig, seconds, out_dir) if out_dir is not None else []
    return {"mixture": mix, "digits": dig, "seconds": seconds, "paths": paths}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced configuration of the smoke test")
    parser.add_argument("--retrain", action="store_true", help="ignore the cached digits weights")
    parser.add_argument("--cache-dir", type=Path, default=dg.default_cache_dir())
    parser.add_argument("--eps-cache-dir", type=Path, default=dg.default_cache_dir(),
                        help="where examples/digits.py cached its eps model (read only)")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS_DIR} for the full "
                        "run, none for --quick)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("SDEKIT_TORCH_THREADS", "1")))
    cfg = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else RESULTS_DIR)
    res = run(cfg, args.cache_dir, args.eps_cache_dir, args.retrain, out)
    print(f"done in {res['seconds']:.0f} s" + (f"; wrote {', '.join(str(p) for p in res['paths'])}"
                                               if res["paths"] else ""))
    return res


if __name__ == "__main__":
    main()
