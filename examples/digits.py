"""Train a small convolutional diffusion model on scikit-learn's 8x8 handwritten digits on the CPU, sample it, and
measure it: a Fréchet distance between real and generated digits on two fixed feature maps, and held-out bits per
dimension through the probability-flow ODE.

    python examples/digits.py              # full run (about 4 minutes once the weights are cached); writes
                                           # examples/results/digits/ (grids, fd_vs_nfe.png, results.md/json)
    python examples/digits.py --quick      # reduced run end to end, under a minute
    python examples/digits.py --retrain    # ignore the cached weights

1. Data: `sklearn.datasets.load_digits` (1,797 images shipped inside scikit-learn, nothing downloaded), pixel values
   k in {0, ..., 16}, as (n, 1, 8, 8). A fixed permutation (seed 0) holds out 360 images; the other 1,437 train.
   Pixel k is the bin [k, k + 1) of 17 levels mapped to [-1, 1): y = 2 (k + u) / 17 - 1. Training draws fresh
   uniform dequantisation noise u ~ U[0, 1) for every batch (Theis, van den Oord & Bethge 2016), so the model is a
   density of the dequantised data and its likelihood bounds the discrete code length.
2. Model: `ConvScoreNet` (a small U-Net, 0.17 M parameters) read as an eps-prediction (Ho et al. 2020) conditioned on
   the log-SNR, under `ForwardSDE.vp()`, trained with `train_score_model(loss="eps")` (Adam, cosine decay). The
   weights are cached (``--cache-dir``, default ``$SDEKIT_CACHE_DIR/examples`` or ``~/.cache/sdekit/examples``)
   under a name that encodes the training settings, so the sampling section reuses them.
3. Quality: the Fréchet distance FD = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^{1/2} S_g S_r^{1/2})^{1/2})
   (Fréchet 1957; Dowson & Landau 1982; the FID of Heusel et al. 2017 with a different feature map) between
   held-out real digits and generated ones (rounded back to pixel values, as real ones are), on two fixed feature
   maps fitted on the training digits only:
   - "pca16": the pixels' first 16 principal components (85 % of the pixel variance of the training digits);
   - "mlp64": the 64 ReLU units of the hidden layer of a small classifier (scikit-learn's MLPClassifier, seed 0)
     trained on the training digits' labels, the analogue of FID's Inception features; its held-out accuracy is
     reported.
   Next to it: the floor, FD between the held-out digits and as many training digits (what a perfect generator
   would reach at this sample size; the mean over 30 draws, whose spread is the FD's own sampling noise), and the
   FD of pure noise (prior draws N(0, I) rounded to pixels).
4. Likelihood: bits per dimension of held-out digits (with fixed dequantisation noise) through the PF-ODE
   (`torch_log_likelihood`, RK4, Hutchinson divergence with Rademacher probes), against a standard normal on the
   same dequantised data and the uniform bound log2(17) = 4.09 bits.
5. Sampling (section "SAMPLERS"): the trained net through sdekit's one model interface,
   `DiffusionNetwork(net, prediction="eps", kernel=ForwardSDE.vp(), conditioning="logsnr", shape=(1, 8, 8))`,
   by eight samplers from the same prior draws z ~ N(0, I) of shape (n, 1, 8, 8), each at several budgets of model
   evaluations (NFE): DDPM ancestral and DDIM (eta 0) on the VP SDE's own levels at uniform times, DPM-Solver++(2M)
   on a log-SNR grid ending at sigma = 0, singlestep DPM-Solver-3, EDM's Heun on Karras sigmas, the reverse SDE
   (Euler-Maruyama) and the PF-ODE (RK4) through `sdekit.simulate(..., backend="torch")`, and the predictor-corrector
   sampler; all share the noise range sigma/alpha in [0.0105, 152] of t in [eps, T]. Outputs: a grid per sampler
   (one line of digits per NFE), FD on both maps against NFE with the floor and noise, results.md / results.json.

Measured (full run, one torch thread on a 2-core machine, load average about 1; the weights from the cache: 4000
training steps took 426 s at load 5, eps loss 8.36 (first 10 %) -> 4.92 (last 10 %)): 177 s in all. The deterministic
samplers converge to the PF-ODE's map, FD 0.30 on pca16 and 2.03 on mlp64 (DPM-Solver++(2M) from NFE 20, DPM-Solver-3
from 21, EDM Heun from 19, RK4 at 201, DDIM at 100: 0.309 / 2.05); DPM-Solver++(2M) is there already at NFE 10 (0.322
/ 2.08), DPM-Solver-3 needs 15 (at 9: 6.46 / 21.3) and EDM Heun 19 (at 9: 1.27 / 5.95). The stochastic ones need more:
DDPM 0.388 / 2.19 at 50 and 0.415 / 2.27 at 100, the reverse SDE 0.250 / 1.54 at 101 and 0.226 / 1.28 at 201, the
predictor-corrector 0.357 / 2.12 at 201. The floor is 0.284 / 1.71 (30 draws: sd 0.048 / 0.32, range 0.204-0.426 /
1.10-2.53), so differences below about 0.05 / 0.3 are not resolved at n = 360; noise is 7.09 / 117. The classifier's
held-out accuracy is 98.1 %. Held-out 1.908 +- 0.012 bits per dimension (360 digits, RK4 50 steps, 2 probes; on 32
digits RK4 50 steps differs from dopri5 at rtol 1e-6 by 0.0005 in the mean), against 4.873 for a standard normal and
4.087 for the uniform bound. ``--quick`` (300 training steps, 200 digits, every sampler at one budget): 41 s in all at
load 3 (training included), FD 0.08-0.21 of noise's on pca16 and 0.04-0.11 on mlp64, 2.54 bits per dimension. """

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sdekit
from sdekit.diffusion import ForwardSDE, bits_per_dim, probability_flow_ode, reverse_sde
from sdekit.diffusion.networks import DiffusionNetwork
from sdekit.diffusion.samplers.ddim import ddim_sample
from sdekit.diffusion.samplers.ddpm import ddpm_sample
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.diffusion.samplers.predictor_corrector import pc_sample
from sdekit.diffusion.samplers.run import SampleResult
from sdekit.diffusion.torch_likelihood import torch_log_likelihood
from sdekit.learn import ConvScoreNet, ScoreModel, train_score_model

LEVELS = 17  # the digits' pixel values 0..16
DATA_SCALE = 2.0 / LEVELS  # y = DATA_SCALE (k + u) - 1
SHAPE = (1, 8, 8)
FORWARD = ForwardSDE.vp()
HELD_OUT = 360
WEIGHTS_VERSION = 1  # bump when the model or the training changes meaning
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "digits"


@dataclass(frozen=True)
class Config:
    """Sizes of one run. Training: steps, batch size, Adam learning rate, the net's width and blocks per level, seed.
    Evaluation: generated digits per sampler and budget, whether the samplers run at their quick budget only (else at
    every budget of `SAMPLERS`), held-out digits for the bits per dimension and the PF-ODE's RK4 steps and
    Hutchinson probes."""

    train_steps: int = 4000
    batch_size: int = 128
    lr: float = 2e-3
    hidden: int = 32
    depth: int = 1
    seed: int = 0
    n_samples: int = HELD_OUT
    quick: bool = False
    bpd_examples: int = HELD_OUT
    bpd_steps: int = 50
    bpd_probes: int = 2

    def training_key(self) -> str:
        """A short digest of everything that determines the trained weights (the cache file's name)."""
        fields = {k: getattr(self, k) for k in ("train_steps", "batch_size", "lr", "hidden", "depth", "seed")}
        fields["version"] = WEIGHTS_VERSION
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


FULL = Config()
QUICK = Config(train_steps=300, batch_size=96, n_samples=200, quick=True, bpd_examples=48, bpd_steps=12,
               bpd_probes=1)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    """Pixel values (n, 1, 8, 8) in {0, ..., 16} and labels, split once into training and held-out images."""

    train: np.ndarray
    train_labels: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray


def load_split(held_out: int = HELD_OUT, seed: int = 0) -> Digits:
    """scikit-learn's digits (read from the package's own data file), a fixed permutation, the last ``held_out``
    images held out."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images).astype(np.int64)[:, None]  # (1797, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    tr, ho = order[:-held_out], order[-held_out:]
    return Digits(images[tr], labels[tr], images[ho], labels[ho])


def to_model_space(pixels: np.ndarray, u: Any = 0.5) -> np.ndarray:
    """y = 2 (k + u) / 17 - 1 in [-1, 1): pixel values k with dequantisation offsets u in [0, 1) (0.5: bin
    centres)."""
    return (np.asarray(pixels, dtype=np.float64) + u) * DATA_SCALE - 1.0


def to_pixels(y: np.ndarray) -> np.ndarray:
    """The pixel value k whose bin [2 k / 17 - 1, 2 (k + 1) / 17 - 1) holds y (clipped to 0..16)."""
    return np.clip(np.floor((np.asarray(y, dtype=np.float64) + 1.0) / DATA_SCALE), 0, LEVELS - 1).astype(np.int64)


def dequantised_draws(pixels: np.ndarray) -> Callable[[int, torch.Generator], torch.Tensor]:
    """A batch source for `train_score_model`: n training images drawn with replacement, each with fresh uniform
    dequantisation noise, in model space (float32)."""
    table = torch.as_tensor(pixels, dtype=torch.float32)

    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        rows = table[torch.randint(len(table), (n,), generator=gen)]
        return (rows + torch.rand(rows.shape, generator=gen)) * DATA_SCALE - 1.0

    return draw


# --------------------------------------------------------------------------------------------
# training (cached)
# --------------------------------------------------------------------------------------------


@dataclass
class Trained:
    """The model, its per-step training losses and wall time, and whether it came from the cache file ``path``."""

    model: ScoreModel
    losses: np.ndarray
    seconds: float
    cached: bool
    path: Path | None


def default_cache_dir() -> Path:
    """$SDEKIT_CACHE_DIR/examples, else $XDG_CACHE_HOME (or ~/.cache)/sdekit/examples."""
    base = os.environ.get("SDEKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "sdekit")
    return Path(base) / "examples"


def build_model(cfg: Config) -> ScoreModel:
    """A float32 ConvScoreNet(1 channel) read as eps under FORWARD, log-SNR conditioning, initialised from cfg.seed."""
    torch.manual_seed(cfg.seed)
    net = ConvScoreNet(1, hidden=cfg.hidden, depth=cfg.depth, embedding_dim=32)
    return ScoreModel(net, FORWARD, parametrization="eps", conditioning="logsnr")


def train(digits: Digits, cfg: Config, cache_dir: Path | None = None, retrain: bool = False) -> Trained:
    """Train (or load from ``cache_dir``) the eps-model on the training digits: eps loss (Ho et al. 2020), Adam,
    cosine decay, gradient norm clipped at 1, fresh dequantisation noise per batch. cache_dir None: no cache."""
    model = build_model(cfg)
    path = None if cache_dir is None else Path(cache_dir) / f"digits_eps_{cfg.training_key()}.pt"
    if path is not None and path.exists() and not retrain:
        saved = torch.load(path, weights_only=True)
        model.net.load_state_dict(saved["state_dict"])
        model.eval()
        return Trained(model, saved["losses"].numpy(), float(saved["seconds"]), True, path)
    result = train_score_model(model, dequantised_draws(digits.train), FORWARD, loss="eps", steps=cfg.train_steps,
                               batch_size=cfg.batch_size, lr=cfg.lr, grad_clip=1.0, seed=cfg.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": model.net.state_dict(), "losses": torch.as_tensor(result.losses),
                    "seconds": result.seconds, "config": asdict(cfg)}, tmp)
        tmp.replace(path)
    return Trained(model, result.losses, result.seconds, False, path)


# --------------------------------------------------------------------------------------------
# feature maps and the Fréchet distance
# --------------------------------------------------------------------------------------------


class PixelPCA:
    """The first k principal components (Pearson 1901) of the training digits' pixels (bin centres, model space):
    f(x) = V_k^T (x - mean), V_k the top-k right singular vectors of the centred training matrix."""

    name = "pca16"

    def __init__(self, train_pixels: np.ndarray, k: int = 16) -> None:
        x = to_model_space(train_pixels).reshape(len(train_pixels), -1)
        self.mean = x.mean(axis=0)
        _, sv, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = vt[:k]
        self.explained = float((sv[:k] ** 2).sum() / (sv ** 2).sum())

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return (to_model_space(pixels).reshape(len(pixels), -1) - self.mean) @ self.components.T


class ClassifierFeatures:
    """The hidden layer relu(W x + b) (64 units) of an MLP classifier (scikit-learn's MLPClassifier, Adam, seed 0)
    trained on the training digits' labels: a digit-aware feature map, as Inception features are for the FID
    (Heusel et al. 2017)."""

    name = "mlp64"

    def __init__(self, digits: Digits, hidden: int = 64, seed: int = 0) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        self.classifier = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, max_iter=400, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of epochs is the map's definition
            self.classifier.fit(self._inputs(digits.train), digits.train_labels)
        self.held_out_accuracy = float(self.classifier.score(self._inputs(digits.held_out), digits.held_out_labels))

    @staticmethod
    def _inputs(pixels: np.ndarray) -> np.ndarray:
        return to_model_space(pixels).reshape(len(pixels), -1)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        w, b = self.classifier.coefs_[0], self.classifier.intercepts_[0]
        return np.maximum(self._inputs(pixels) @ w + b, 0.0)

    def labels(self, pixels: np.ndarray) -> np.ndarray:
        """The classifier's predicted digit for each image."""
        return self.classifier.predict(self._inputs(pixels))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FD between Gaussians fitted to two feature sets (rows are examples): ||mu_r - mu_g||^2 + tr S_r + tr S_g
    - 2 tr (S_r^{1/2} S_g S_r^{1/2})^{1/2} (Fréchet 1957; Dowson & Landau 1982; Heusel et al. 2017); the square
    root of the symmetric PSD matrix by its eigendecomposition (negative rounding clipped to 0)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    mu_r, mu_g = real.mean(axis=0), fake.mean(axis=0)
    s_r, s_g = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    w, v = np.linalg.eigh(s_r)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root @ s_g @ root)
    trace_root = np.sqrt(np.clip(cross, 0.0, None)).sum()
    return float(((mu_r - mu_g) ** 2).sum() + np.trace(s_r) + np.trace(s_g) - 2.0 * trace_root)


@dataclass
class Judge:
    """The fixed feature maps (fitted on the training digits) and the reference sets of the FD table: held-out real
    digits, the floor (as many training digits) and noise (as many prior draws rounded to pixels)."""

    digits: Digits
    maps: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.maps:
            self.maps = [PixelPCA(self.digits.train), ClassifierFeatures(self.digits)]
        self._real = {f.name: f(self.digits.held_out) for f in self.maps}

    def fd(self, pixels: np.ndarray) -> dict[str, float]:
        """FD between the held-out digits and ``pixels`` (n, 1, 8, 8) on each feature map."""
        return {f.name: frechet_distance(self._real[f.name], f(pixels)) for f in self.maps}

    def floor(self, n: int, seed: int = 1) -> dict[str, float]:
        """FD of n training digits (real vs real, disjoint sets): what a perfect generator reaches at size n."""
        rows = np.random.default_rng(seed).choice(len(self.digits.train), n, replace=False)
        return self.fd(self.digits.train[rows])

    def floor_spread(self, n: int, draws: int = 30) -> dict[str, dict[str, float]]:
        """The floor over ``draws`` draws of n training digits (seeds 1..draws): per feature map its mean, standard
        deviation, minimum and maximum. The spread is the FD's own sampling noise at size n: two samplers whose FD
        differ by less than about one sd are not told apart by this measurement."""
        fds = [self.floor(n, seed) for seed in range(1, draws + 1)]
        out = {}
        for f in self.maps:
            v = np.array([d[f.name] for d in fds])
            out[f.name] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)), "min": float(v.min()),
                           "max": float(v.max()), "draws": draws}
        return out

    def noise(self, n: int, seed: int = 2) -> dict[str, float]:
        """FD of n prior draws N(0, I) rounded to pixels (what the samplers start from)."""
        return self.fd(to_pixels(FORWARD.prior_sample(n, math.prod(SHAPE), seed=seed).reshape(n, *SHAPE)))


# --------------------------------------------------------------------------------------------
# held-out bits per dimension through the PF-ODE
# --------------------------------------------------------------------------------------------


def held_out_bpd(model: ScoreModel, digits: Digits, n: int, steps: int, probes: int, seed: int = 3) -> dict:
    """Bits per dimension of the first n held-out digits, dequantised with fixed noise u ~ U[0, 1) (seed), through
    the PF-ODE (`torch_log_likelihood`: RK4 with ``steps`` steps, Hutchinson divergence with ``probes`` Rademacher
    probes; Song et al. 2021, App. D.2): mean, standard error over the digits (it includes the probes' noise), the
    same for a standard normal density on the same points, and the uniform bound log2(17)."""
    pixels = digits.held_out[:n]
    u = np.random.default_rng(seed).uniform(size=pixels.shape)
    y = torch.as_tensor(to_model_space(pixels, u))
    start = time.perf_counter()
    with torch.no_grad():
        lik = torch_log_likelihood(model.score, FORWARD, y, steps=steps, divergence="hutchinson", probes=probes,
                                   seed=seed)
    bpd = bits_per_dim(lik.log_prob.numpy(), SHAPE, data_scale=DATA_SCALE)
    flat = y.numpy().reshape(n, -1)
    normal = bits_per_dim(-0.5 * (flat ** 2).sum(axis=1) - 0.5 * flat.shape[1] * math.log(2 * math.pi), SHAPE,
                          data_scale=DATA_SCALE)
    return {"bpd": float(bpd.mean()), "bpd_se": float(bpd.std(ddof=1) / math.sqrt(n)),
            "normal_bpd": float(normal.mean()), "uniform_bpd": math.log2(LEVELS), "n": n, "nfe": int(lik.nfe),
            "seconds": time.perf_counter() - start}

# --------------------------------------------------------------------------------------------
# SAMPLERS
# Every sampler takes the trained net through `DiffusionNetwork` (the one model interface), starts from the same
# prior draws z ~ N(0, I) of shape (n, 1, 8, 8) at t = T, and is given a budget of model evaluations (NFE) that it
# turns into its own step count; the NFE it really used is read from its `SampleResult`.
# --------------------------------------------------------------------------------------------


def network(model: ScoreModel) -> DiffusionNetwork:
    """The trained ScoreModel's net read through sdekit's model interface: its prediction (eps) on the training
    SDE's kernel, conditioned as it was trained (ScoreModel's "logsnr" is lambda = log(alpha / sigma), the same as
    DiffusionNetwork's), taking (n, 1, 8, 8) batches or their flattened (n, 64) form (the SDE / ODE solvers')."""
    return DiffusionNetwork(model.net, prediction=model.parametrization, kernel=FORWARD,
                            conditioning=model.conditioning, shape=SHAPE)


def _edm_sigma(t: float) -> float:
    """sigma / alpha of FORWARD's kernel at time t (the EDM noise level of the same SNR)."""
    alpha, sigma = FORWARD.kernel(t)
    return sigma / alpha


SIGMA_MIN, SIGMA_MAX = _edm_sigma(FORWARD.eps), _edm_sigma(FORWARD.T)  # 0.0100, 152: every sampler's noise range


def vp_levels(n: int) -> DiscreteSchedule:
    """The n-level discrete schedule of FORWARD's kernel at times uniform in [eps, T]: alphabar_k = alpha_{t_k}^2,
    t_k = eps + (k - 1) (T - eps) / (n - 1), k = 1..n (level n is the prior's, level 1 the last noisy one; the
    respaced schedule of Nichol & Dhariwal 2021 on the training SDE's own levels)."""
    ts = np.linspace(FORWARD.eps, FORWARD.T, n)
    return DiscreteSchedule.from_alphas_cumprod([FORWARD.kernel(float(t))[0] ** 2 for t in ts])


class _Counted:
    """A score(x, t) that counts its calls (the NFE of the SDE / ODE solvers, which report none)."""

    def __init__(self, score: Callable) -> None:
        self.score, self.calls = score, 0

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        self.calls += 1
        return self.score(x, t)


def _solve(model: DiffusionNetwork, z: torch.Tensor, sde: bool, steps: int, seed: int) -> SampleResult:
    """The reverse SDE (Euler-Maruyama, then Tweedie's denoise at t = eps, as score_sde's denoise=True) or the
    PF-ODE (RK4) from z at T to eps, on the torch backend with the state flattened to (n, 64)."""
    n = z.shape[0]
    score = _Counted(model.score_in_time(FORWARD))
    span = (FORWARD.T, FORWARD.eps)
    if sde:
        problem = reverse_sde(FORWARD, score, math.prod(SHAPE))
        sol = sdekit.simulate(problem, z.reshape(n, -1), span, steps=steps, seed=seed, solver="euler_maruyama",
                              backend="torch")
    else:
        problem = probability_flow_ode(FORWARD, score, math.prod(SHAPE))
        sol = sdekit.simulate(problem, z.reshape(n, -1), span, steps=steps, solver="rk4", backend="torch")
    x = torch.as_tensor(sol.final).reshape(z.shape)
    levels = [FORWARD.kernel(float(t)) for t in np.linspace(*span, steps + 1)]
    if sde:
        alpha, sigma = levels[-1]
        x = model.denoise(x, alpha, sigma)
        score.calls += 1
        levels.append((1.0, 0.0))
    alphas, sigmas = (np.array(v) for v in zip(*levels))
    return SampleResult(x, score.calls, alphas, sigmas)


def ddpm(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2; posterior variance) on `vp_levels(nfe)`: NFE = nfe."""
    return ddpm_sample(model, vp_levels(nfe), z, variance="posterior", seed=seed)


def ddim(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """DDIM with eta = 0 (Song, Meng & Ermon 2021, eq. 12) on every level of `vp_levels(nfe)`: NFE = nfe."""
    return ddim_sample(model, vp_levels(nfe), z, steps=nfe, eta=0.0)


def dpm_solver_pp_2m(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """DPM-Solver++(2M) (Lu et al. 2022b) on nfe - 1 steps uniform in log-SNR from T to eps, then the final denoise
    to sigma = 0 (``to_zero``; lower-order final step): NFE = nfe."""
    return dpm_solver_sample(model, FORWARD, z, method="multistep", algorithm="dpmsolver++", order=2,
                             steps=nfe - 1, skip="logSNR", to_zero=True)


def dpm_solver_3(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """DPM-Solver-3, singlestep (Lu et al. 2022), nfe // 3 steps uniform in log-SNR from T to eps:
    NFE = 3 (nfe // 3)."""
    return dpm_solver_sample(model, FORWARD, z, method="singlestep", algorithm="dpmsolver", order=3,
                             steps=max(1, nfe // 3), skip="logSNR")


def edm_heun(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 1) on (nfe + 1) // 2 Karras sigmas (rho = 7)
    from SIGMA_MAX to SIGMA_MIN then 0, started from z sqrt(1 + SIGMA_MAX^2) (the same prior point in EDM's
    x = x_0 + sigma eps coordinates): NFE = 2 ((nfe + 1) // 2) - 1."""
    levels = max(2, (nfe + 1) // 2)
    return edm_sample(model, karras_sigmas(levels, SIGMA_MIN, SIGMA_MAX), z * math.hypot(1.0, SIGMA_MAX),
                      method="heun")


def reverse_sde_em(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """The reverse-time SDE (Anderson 1982; Song et al. 2021) by Euler-Maruyama with nfe - 1 uniform steps from T to
    eps on the torch backend, then Tweedie's denoise at eps: NFE = nfe."""
    return _solve(model, z, True, nfe - 1, seed)


def pf_ode_rk4(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """The probability-flow ODE (Song et al. 2021) by classical RK4 with nfe // 4 uniform steps from T to eps on the
    torch backend (torchdiffeq): NFE = 4 (nfe // 4)."""
    return _solve(model, z, False, max(1, nfe // 4), seed)


def predictor_corrector(model: DiffusionNetwork, z: torch.Tensor, nfe: int, seed: int) -> SampleResult:
    """Predictor-corrector (Song et al. 2021, Algorithm 3): reverse-diffusion predictor and one Langevin corrector
    (score_sde's signal-to-noise rule, snr 0.16) on (nfe - 1) // 2 uniform steps, then Tweedie's denoise at eps:
    NFE = 2 ((nfe - 1) // 2) + 1."""
    return pc_sample(model, FORWARD, z, steps=max(1, (nfe - 1) // 2), predictor="reverse_diffusion",
                     corrector="langevin", snr=0.16, n_corrector=1, final_denoise=True, seed=seed)


@dataclass(frozen=True)
class Sampler:
    """One entry of the registry: ``draw(model, z, nfe, seed) -> SampleResult`` turns a budget of model
    evaluations into the sampler's settings; ``nfes`` are the full run's budgets, ``quick_nfe`` the quick run's."""

    name: str
    draw: Callable[[DiffusionNetwork, torch.Tensor, int, int], SampleResult]
    nfes: tuple[int, ...]
    quick_nfe: int


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("DDPM ancestral", ddpm, (10, 20, 50, 100, 200), 20),
    Sampler("DDIM (eta 0)", ddim, (10, 20, 50, 100), 10),
    Sampler("DPM-Solver++(2M)", dpm_solver_pp_2m, (5, 10, 20, 50, 100), 10),
    Sampler("DPM-Solver-3", dpm_solver_3, (9, 15, 21, 51, 99), 21),
    Sampler("EDM Heun", edm_heun, (9, 19, 49, 99), 19),
    Sampler("reverse SDE (EM)", reverse_sde_em, (20, 50, 100, 200, 500), 31),
    Sampler("PF-ODE (RK4)", pf_ode_rk4, (20, 40, 100, 200), 20),
    Sampler("predictor-corrector", predictor_corrector, (21, 51, 101, 201), 41),
)}


@dataclass
class SampleRow:
    """One sampler at one budget: the NFE it used, its wall time, the digits (n, 1, 8, 8) in model space, and their
    FD per feature map."""

    sampler: str
    nfe: int
    seconds: float
    x: np.ndarray
    fd: dict[str, float]


def prior_draws(n: int, seed: int) -> torch.Tensor:
    """z ~ N(0, I) of shape (n, 1, 8, 8), float64: where every sampler starts (FORWARD's prior at T)."""
    return torch.as_tensor(FORWARD.prior_sample(n, math.prod(SHAPE), seed=seed).reshape(n, *SHAPE))


def sample_all(model: ScoreModel, judge: Judge, cfg: Config, samplers: dict[str, Sampler] | None = None,
               log: Callable[[str], None] | None = None) -> list[SampleRow]:
    """Every sampler at every budget (cfg.quick: its quick budget only) from the same cfg.n_samples prior draws
    (seed cfg.seed + 100), under torch.no_grad(); FD of each output (rounded to pixels) against the held-out
    digits."""
    net = network(model)
    z = prior_draws(cfg.n_samples, cfg.seed + 100)
    rows = []
    for s in (SAMPLERS if samplers is None else samplers).values():
        for budget in ((s.quick_nfe,) if cfg.quick else s.nfes):
            start = time.perf_counter()
            with torch.no_grad():
                res = s.draw(net, z, budget, cfg.seed + 200)
            seconds = time.perf_counter() - start
            x = res.x.detach().cpu().numpy().astype(np.float64).reshape(z.shape)
            rows.append(SampleRow(s.name, int(res.nfe), seconds, x, judge.fd(to_pixels(x))))
            if log is not None:
                r = rows[-1]
                log(f"  {r.sampler:22s} NFE {r.nfe:4d} {r.seconds:7.1f} s  FD pca16 {r.fd['pca16']:7.3f}  "
                    f"mlp64 {r.fd['mlp64']:8.3f}")
    return rows


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

FLOOR, NOISE = "real held-out vs training digits (floor)", "N(0, I) noise"


@dataclass
class DigitsRun:
    """Everything a run measured: training, one row per sampler and budget, the floor and noise FD, bpd, and the
    machine it ran on."""

    config: Config
    trained: Trained
    rows: list[SampleRow]
    reference: dict[str, dict[str, float]]
    floor_spread: dict[str, dict[str, float]]
    bpd: dict[str, float]
    classifier_accuracy: float
    pca_explained: float
    machine: dict[str, Any]
    seconds: float


def machine_info() -> dict[str, Any]:
    """The CPU model, core count, torch threads and the 1-minute load average (other jobs on a shared machine)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "load_1min": os.getloadavg()[0]}


def run(cfg: Config = FULL, cache_dir: Path | None = None, retrain: bool = False,
        log: Callable[[str], None] | None = None) -> DigitsRun:
    """Load, train (or load the cached weights), sample with every sampler, and measure FD and held-out bits per
    dimension."""
    start = time.perf_counter()
    machine = machine_info()
    digits = load_split()
    trained = train(digits, cfg, cache_dir, retrain)
    judge = Judge(digits)
    rows = sample_all(trained.model, judge, cfg, log=log)
    spread = judge.floor_spread(cfg.n_samples)
    reference = {FLOOR: {k: v["mean"] for k, v in spread.items()}, NOISE: judge.noise(cfg.n_samples)}
    bpd = held_out_bpd(trained.model, digits, cfg.bpd_examples, cfg.bpd_steps, cfg.bpd_probes)
    machine["load_1min_end"] = os.getloadavg()[0]
    pca, mlp = judge.maps
    return DigitsRun(cfg, trained, rows, reference, spread, bpd, mlp.held_out_accuracy, pca.explained, machine,
                     time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# outputs: image grids, the quality-vs-NFE plot, the table
# --------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _digit_cmap(plt: Any) -> Any:
    """White (0) to black (16), the gaps between digits (value -1) light blue."""
    return plt.get_cmap("gray_r").with_extremes(under="#c8d4e6")


def _tiles(images: np.ndarray, columns: int) -> np.ndarray:
    """Pixel values of the first rows x columns images (n, 1, 8, 8) in model space, tiled with 1-pixel gaps (-1)."""
    rows = max(1, min(len(images), 100) // columns)
    pix = to_pixels(images[:rows * columns])[:, 0]
    tiles = -np.ones((rows * 9 - 1, columns * 9 - 1))
    for k, img in enumerate(pix):
        r, c = divmod(k, columns)
        tiles[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = img
    return tiles


def save_grid(images: np.ndarray, path: Path, title: str = "", columns: int = 10) -> None:
    """The first rows x columns images (n, 1, 8, 8) in model space as one grey-scale PNG (needs matplotlib)."""
    plt = _pyplot()
    tiles = _tiles(images, columns)
    fig, ax = plt.subplots(figsize=(columns * 0.5, tiles.shape[0] / 18 + 0.4))
    ax.imshow(tiles, cmap=_digit_cmap(plt), vmin=0, vmax=LEVELS - 1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_sampler_grid(rows: list[SampleRow], path: Path, columns: int = 16) -> None:
    """One sampler's digits at each of its budgets, one line of ``columns`` digits per NFE (the same prior draws, so
    for a deterministic sampler a column follows one starting point as the NFE grows; a stochastic one draws other
    noise on each grid)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(columns * 0.45 + 0.9, len(rows) * 0.5 + 0.35), squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        ax.imshow(_tiles(row.x, columns)[:8], cmap=_digit_cmap(plt), vmin=0, vmax=LEVELS - 1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"NFE {row.nfe}", rotation=0, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title(rows[0].sampler, fontsize=8)
    fig.tight_layout(h_pad=0.2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_nfe_plot(res: DigitsRun, path: Path) -> None:
    """FD on each feature map against NFE (log-log), one line per sampler, the floor and noise as horizontal
    lines."""
    plt = _pyplot()
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, feature in zip(axes, ("pca16", "mlp64")):
        for name in dict.fromkeys(r.sampler for r in res.rows):
            rows = [r for r in res.rows if r.sampler == name]
            ax.plot([r.nfe for r in rows], [r.fd[feature] for r in rows], "o-", ms=3, lw=1.2, label=name)
        band = res.floor_spread[feature]
        ax.axhspan(band["min"], band["max"], color="k", alpha=0.08, lw=0,
                   label=f"floor's range over {band['draws']} draws")
        ax.axhline(res.reference[FLOOR][feature], color="k", ls="--", lw=1, label="floor (real vs real, mean)")
        ax.axhline(res.reference[NOISE][feature], color="grey", ls=":", lw=1, label="N(0, I) noise")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(FormatStrFormatter(""))
        ax.set_xlabel("NFE (model evaluations)")
        ax.set_ylabel(f"Fréchet distance ({feature})")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"8x8 digits, {res.config.n_samples} samples per point: quality vs NFE", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def slug(name: str) -> str:
    """A file-name form of a sampler name: lower case, runs of other characters as one '_'."""
    return "_".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def results_json(res: DigitsRun) -> dict[str, Any]:
    """The run's numbers as plain data (what results.json holds)."""
    losses, k = res.trained.losses, max(1, len(res.trained.losses) // 10)
    return {
        "config": asdict(res.config),
        "machine": res.machine,
        "training": {"steps": len(losses), "seconds": res.trained.seconds, "cached": res.trained.cached,
                     "loss_first_10pct": float(losses[:k].mean()), "loss_last_10pct": float(losses[-k:].mean())},
        "feature_maps": {"pca16_explained": res.pca_explained, "mlp64_held_out_accuracy": res.classifier_accuracy},
        "samplers": [{"sampler": r.sampler, "nfe": r.nfe, "seconds": r.seconds, **{f"fd_{k}": v for k, v in
                                                                                  r.fd.items()}} for r in res.rows],
        "reference": res.reference,
        "floor_spread": res.floor_spread,
        "bpd": res.bpd,
        "seconds": res.seconds,
    }


def results_markdown(res: DigitsRun) -> str:
    """The FD table (sampler, NFE, FD on both maps, seconds), the reference rows, bits per dimension, the machine."""
    m, b = res.machine, res.bpd
    lines = [f"# Digits: samplers at several NFE ({res.config.n_samples} generated digits per row)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} thread(s); "
             f"1-minute load average {m['load_1min']:.1f} at the start and {m['load_1min_end']:.1f} at the end "
             f"(a shared machine: the seconds include other jobs' contention). Total {res.seconds:.0f} s.", "",
             f"Fréchet distance to the {HELD_OUT} held-out digits on the pixels' 16 principal components (pca16) and "
             f"on the hidden layer of a digit classifier (mlp64, held-out accuracy "
             f"{100 * res.classifier_accuracy:.1f} %).", "",
             "| sampler | NFE | FD pca16 | FD mlp64 | seconds |", "|---|---:|---:|---:|---:|"]
    for r in res.rows:
        lines.append(f"| {r.sampler} | {r.nfe} | {r.fd['pca16']:.3f} | {r.fd['mlp64']:.2f} | {r.seconds:.1f} |")
    for name, d in res.reference.items():
        lines.append(f"| {name} | | {d['pca16']:.3f} | {d['mlp64']:.2f} | |")
    sp = res.floor_spread
    lines += ["", f"The floor is the mean over {sp['pca16']['draws']} draws of {res.config.n_samples} training digits; "
              f"its standard deviation, {sp['pca16']['sd']:.3f} (pca16) and {sp['mlp64']['sd']:.2f} (mlp64), range "
              f"{sp['pca16']['min']:.3f}-{sp['pca16']['max']:.3f} and {sp['mlp64']['min']:.2f}-"
              f"{sp['mlp64']['max']:.2f}, is the FD's own sampling noise at this size: differences between samplers "
              f"smaller than about one standard deviation are not resolved.", "",
              f"Held-out bits per dimension ({b['n']} digits, PF-ODE RK4 {res.config.bpd_steps} steps, Hutchinson "
              f"with {res.config.bpd_probes} probes, {b['nfe']} field evaluations, {b['seconds']:.0f} s): "
              f"{b['bpd']:.3f} ± {b['bpd_se']:.3f}; a standard normal {b['normal_bpd']:.3f}; uniform over the 17 "
              f"levels {b['uniform_bpd']:.3f}.", ""]
    return "\n".join(lines)


def write_results(res: DigitsRun, out_dir: Path) -> list[Path]:
    """Write an image grid per sampler, the quality-vs-NFE plot, results.md and results.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in dict.fromkeys(r.sampler for r in res.rows):
        paths.append(out_dir / f"grid_{slug(name)}.png")
        save_sampler_grid([r for r in res.rows if r.sampler == name], paths[-1])
    paths.append(out_dir / "fd_vs_nfe.png")
    save_nfe_plot(res, paths[-1])
    paths.append(out_dir / "results.md")
    paths[-1].write_text(results_markdown(res))
    paths.append(out_dir / "results.json")
    paths[-1].write_text(json.dumps(results_json(res), indent=1) + "\n")
    return paths


def report(res: DigitsRun) -> str:
    """The run as text: training, the FD table, bits per dimension."""
    losses, k = res.trained.losses, max(1, len(res.trained.losses) // 10)
    source = f"loaded from {res.trained.path}" if res.trained.cached else "trained now"
    lines = [f"training ({source}): {len(losses)} steps in {res.trained.seconds:.1f} s; mean eps loss first 10% "
             f"{losses[:k].mean():.4f}, last 10% {losses[-k:].mean():.4f}",
             f"feature maps: pca16 explains {100 * res.pca_explained:.1f}% of the training pixels' variance; the "
             f"mlp64 classifier's held-out accuracy is {100 * res.classifier_accuracy:.1f}%",
             f"Fréchet distance to {HELD_OUT} held-out digits ({res.config.n_samples} per row):",
             f"  {'':44s} {'NFE':>5s} {'pca16':>9s} {'mlp64':>9s} {'seconds':>8s}"]
    for r in res.rows:
        lines.append(f"  {r.sampler:44s} {r.nfe:5d} {r.fd['pca16']:9.3f} {r.fd['mlp64']:9.3f} {r.seconds:8.1f}")
    for name, d in res.reference.items():
        lines.append(f"  {name:44s} {'':5s} {d['pca16']:9.3f} {d['mlp64']:9.3f}")
    b = res.bpd
    lines.append(f"held-out bits/dim ({b['n']} digits, PF-ODE RK4 {res.config.bpd_steps} steps, {b['nfe']} field "
                 f"evaluations, {b['seconds']:.1f} s): {b['bpd']:.3f} +- {b['bpd_se']:.3f}; standard normal "
                 f"{b['normal_bpd']:.3f}; uniform over 17 levels {b['uniform_bpd']:.3f}")
    m = res.machine
    lines.append(f"total {res.seconds:.1f} s on {m['cpu']} ({m['cores']} cores, {m['torch_threads']} torch thread(s), "
                 f"load {m['load_1min']:.1f} -> {m['load_1min_end']:.1f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> DigitsRun:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, end to end in under a minute")
    parser.add_argument("--retrain", action="store_true", help="train even if cached weights exist")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the weights are cached")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the figures and tables go (default: examples/results/digits for the full run; "
                             "the quick run writes none unless given)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = QUICK if args.quick else FULL
    res = run(cfg, args.cache_dir or default_cache_dir(), args.retrain, log=lambda s: print(s, flush=True))
    print(report(res))
    out_dir = args.out_dir if args.out_dir is not None or args.quick else RESULTS_DIR
    if out_dir is not None:
        for path in write_results(res, out_dir):
            print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
