"""Small networks for learned scores: an MLP on (x, c) for vectors and a small convolutional U-Net for images, each
with a Fourier-feature embedding of the noise condition c.

The condition c (one float per example: the log-SNR log(alpha_t / sigma_t), or the time t) enters through Gaussian
Fourier features (Tancik et al. 2020, "Fourier features let networks learn high frequency functions in low
dimensional domains"; Song et al. 2021, "Score-based generative modeling through stochastic differential
equations", use them for the noise level):

    gamma(c) = [sin(2 pi W c), cos(2 pi W c)],   W ~ N(0, scale^2 I_{m/2}) drawn once and kept fixed,

concatenated to x and passed through an MLP (`ScoreMLP`), or projected to one value per channel and added to the
feature maps of every residual block (`ConvScoreNet`, after Ho et al. 2020). Everything random (W and the weights,
torch's default initialisation) is drawn from torch's global generator, so ``torch.manual_seed(s)`` before
construction fixes the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sdekit.errors import SDEKitError

__all__ = ["ACTIVATIONS", "ConvScoreNet", "FourierEmbedding", "ScoreMLP"]

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


def _conditions(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """c (n,), (n, 1) or 0-d (used for every example) as an (n,) tensor in x's dtype and device."""
    c = c.to(x).reshape(-1)
    if c.numel() == 1:
        return c.expand(x.shape[0])
    if c.shape[0] != x.shape[0]:
        raise SDEKitError(f"c must have shape ({x.shape[0]},) (one condition per example of x); got {tuple(c.shape)}")
    return c


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
        return self.mlp(torch.cat([x, self.embedding(_conditions(c, x))], dim=1))


class _ResidualBlock(nn.Module):
    """h + conv(silu(norm(conv(silu(norm(h))) + W e))): the residual block of Ho et al. 2020 (no dropout, no
    attention), with the condition's embedding e projected to one value per channel and added to every pixel."""

    def __init__(self, width: int, embedding_width: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.condition = nn.Linear(embedding_width, width)
        self.norm2 = nn.GroupNorm(groups, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        r = self.conv1(F.silu(self.norm1(h))) + self.condition(e)[:, :, None, None]
        return h + self.conv2(F.silu(self.norm2(r)))


class ConvScoreNet(nn.Module):
    """A small convolutional U-Net (x (n, C, H, W), c (n,)) -> (n, C, H, W) for images (Ronneberger et al. 2015; the
    block design of Ho et al. 2020, "Denoising diffusion probabilistic models"), c embedded by Gaussian Fourier
    features gamma(c) (Song et al. 2021) and an MLP to e, which every residual block adds per channel.

    Layers: a 3x3 convolution C -> hidden; ``depth`` residual blocks at full resolution; a stride-2 3x3 convolution
    to 2 hidden channels at half resolution (ceil(H / 2) x ceil(W / 2)); ``depth`` blocks there; nearest upsampling
    back to H x W, a 3x3 convolution to hidden, concatenation with the full-resolution features (the skip) and a
    1x1 convolution to hidden; ``depth`` blocks; GroupNorm, SiLU and a 3x3 convolution hidden -> C, initialised to
    zero (the net starts by predicting 0). Each block: GroupNorm (``groups`` groups), SiLU, 3x3 convolution, + W e,
    GroupNorm, SiLU, 3x3 convolution, + the block's input. Any H, W >= 1. ``fourier_scale`` as in `ScoreMLP` (about
    1 for a log-SNR condition). Initialised from torch's global generator. hidden = 32, depth = 1 has 0.17 M
    parameters (8x8 digits train on a CPU in minutes). ``channels`` is kept as an attribute.
    """

    def __init__(self, channels: int, hidden: int = 32, depth: int = 1, embedding_dim: int = 32,
                 fourier_scale: float = 1.0, groups: int = 8) -> None:
        super().__init__()
        self.channels = _count(channels, "channels")
        hidden = _count(hidden, "hidden")
        depth = _count(depth, "depth")
        groups = _count(groups, "groups")
        if hidden % groups:
            raise SDEKitError(f"hidden must be a multiple of groups (GroupNorm); got hidden={hidden}, groups={groups}")
        width = 2 * hidden
        self.embedding = FourierEmbedding(embedding_dim, fourier_scale)
        self.embed = nn.Sequential(nn.Linear(embedding_dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU())
        self.conv_in = nn.Conv2d(self.channels, hidden, 3, padding=1)
        self.blocks_high = nn.ModuleList(_ResidualBlock(hidden, width, groups) for _ in range(depth))
        self.down = nn.Conv2d(hidden, width, 3, stride=2, padding=1)
        self.blocks_low = nn.ModuleList(_ResidualBlock(width, width, groups) for _ in range(depth))
        self.up = nn.Conv2d(width, hidden, 3, padding=1)
        self.merge = nn.Conv2d(2 * hidden, hidden, 1)
        self.blocks_out = nn.ModuleList(_ResidualBlock(hidden, width, groups) for _ in range(depth))
        self.norm_out = nn.GroupNorm(groups, hidden)
        self.conv_out = nn.Conv2d(hidden, self.channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The U-Net of the class docstring: x (n, C, H, W), c (n,) (or a 0-d tensor, used for every image) ->
        (n, C, H, W)."""
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != self.channels:
            raise SDEKitError(f"x must have shape (n, {self.channels}, H, W) (images with the net's {self.channels} "
                              f"channels); got shape {tuple(getattr(x, 'shape', ()))}")
        e = self.embed(self.embedding(_conditions(c, x)))
        skip = self.conv_in(x)
        for block in self.blocks_high:
            skip = block(skip, e)
        h = self.down(skip)
        for block in self.blocks_low:
            h = block(h, e)
        h = self.up(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
        h = self.merge(torch.cat([h, skip], dim=1))
        for block in self.blocks_out:
            h = block(h, e)
        return self.conv_out(F.silu(self.norm_out(h)))
