"""Small networks for learned scores: an MLP on (x, c) with a Fourier-feature embedding of the noise condition c.

The condition c (one float per example: the log-SNR log(alpha_t / sigma_t), or the time t) enters through Gaussian
Fourier features (Tancik et al. 2020, "Fourier features let networks learn high frequency functions in low
dimensional domains"; Song et al. 2021, "Score-based generative modeling through stochastic differential
equations", use them for the noise level):

    gamma(c) = [sin(2 pi W c), cos(2 pi W c)],   W ~ N(0, scale^2 I_{m/2}) drawn once and kept fixed,

concatenated to x and passed through an MLP. Everything random (W and the weights, torch's default initialisation)
is drawn from torch's global generator, so ``torch.manual_seed(s)`` before construction fixes the network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sdekit.errors import SDEKitError

__all__ = ["ACTIVATIONS", "FourierEmbedding", "ScoreMLP"]

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def _count(value: object, name: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SDEKitError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


class FourierEmbedding(nn.Module):
    """gamma(c) = [sin(2 pi W c), cos(2 pi W c)] with fixed W ~ N(0, scale^2 I_{m/2}) (Tancik et al. 2020).

    c: shape (n,) -> (n, m), m = embedding_dim (even). W is a buffer (moves with ``.to``, is not trained).
    """

    def __init__(self, embedding_dim: int = 32, scale: float = 1.0) -> None:
        super().__init__()
        m = _count(embedding_dim, "embedding_dim", 2)
        if m % 2:
            raise SDEKitError(f"embedding_dim must be even (sin and cos halves); got {m}")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not (math.isfinite(scale) and scale > 0):
            raise SDEKitError(f"scale must be a positive number; got {scale!r}")
        self.register_buffer("W", torch.randn(m // 2) * float(scale))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """[sin(2 pi W c), cos(2 pi W c)] for each entry of c (n,) (or (n, 1)); shape (n, m)."""
        if not torch.is_tensor(c) or c.ndim > 2 or (c.ndim == 2 and c.shape[1] != 1):
            raise SDEKitError(f"c must be a tensor of shape (n,) or (n, 1), one condition per example; got "
                              f"{tuple(getattr(c, 'shape', ()))}")
        proj = 2.0 * math.pi * c.reshape(-1, 1) * self.W.to(c)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


class ScoreMLP(nn.Module):
    """An MLP (x (n, d), c (n,)) -> (n, d) with c embedded by Gaussian Fourier features (Song et al. 2021).

    Layers: [x, gamma(c)] (d + embedding_dim) -> hidden -> ... -> hidden -> d, ``depth`` hidden layers, each a Linear
    followed by ``activation`` ("silu", "relu", "gelu", "tanh" or "softplus"). ``fourier_scale`` is the standard
    deviation of the frequencies W: about 1 suits a log-SNR condition (|c| up to ~10), about 16 a time t in [0, 1]
    (Song et al. 2021 use 16 with log sigma). Initialised from torch's global generator. ``dim`` is kept as an
    attribute (the losses check data against it).
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, embedding_dim: int = 32,
                 activation: str = "silu", fourier_scale: float = 1.0) -> None:
        super().__init__()
        self.dim = _count(dim, "dim")
        hidden = _count(hidden, "hidden")
        depth = _count(depth, "depth")
        if activation not in ACTIVATIONS:
            raise SDEKitError(f"activation must be one of {tuple(ACTIVATIONS)}; got {activation!r}")
        self.embedding = FourierEmbedding(embedding_dim, fourier_scale)
        layers: list[nn.Module] = []
        width = self.dim + embedding_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, self.dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """MLP([x, gamma(c)]): x (n, d), c (n,) (or a 0-d tensor, used for every row) -> (n, d)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise SDEKitError(f"x must have shape (n, {self.dim}); got shape {tuple(x.shape)}")
        c = c.to(x).reshape(-1)
        if c.numel() == 1:
            c = c.expand(x.shape[0])
        elif c.shape[0] != x.shape[0]:
            raise SDEKitError(f"c must have shape ({x.shape[0]},) (one condition per row of x); got {tuple(c.shape)}")
        return self.mlp(torch.cat([x, self.embedding(c)], dim=1))
