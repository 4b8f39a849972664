"""sdekit's counter-based normals (`sdekit.noise.counter`) as torch tensors on any device, with no host round trip.

N(seed, stream, path, i) = Phi^{-1}((2 (splitmix64(key + i GOLDEN) >> 12) + 1) 2^-53), key = the streams' key of
(seed, stream, path), Phi^{-1} by Wichura's AS 241 (1988, Applied Statistics 37, 477-484) with fdlibm's logarithm
kernel (`sdekit.noise.inverse_normal`). On a CPU device the Numba generator fills the tensor (`torch.from_numpy`);
on any other device the same operations run as torch operations:

* uint64 arithmetic on int64 tensors: addition and multiplication wrap modulo 2^64 in two's complement, so they are
  the uint64 operations bit for bit; a right shift is made logical by masking off the copied sign bits;
* the float64 steps are the ones of the Numba code, in the same order, each a correctly rounded IEEE operation
  (+, -, *, /, comparisons; frexp and powers of two read from and written into the bits; no torch.sqrt or
  torch.log, which are not correctly rounded on the CPU): the same bits (tested on the CPU against Numba);
* on CUDA the core is wrapped in ``torch.compile`` (one fused kernel instead of some 150 elementwise ones), with
  Inductor's ``emulate_precision_casts`` so that Triton does not contract a multiply and an add into an FMA; if
  compilation fails the eager core runs instead. No call here reads a device value on the host.

float32 results are the float64 normals rounded to float32 (the same numbers to rounding on every device).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sdekit.errors import SDEKitError
from sdekit.noise.counter import INV_2_53, U64_RANGE, check_counter_args, fill_counter_normals, stream_base
from sdekit.noise.inverse_normal import (
    CENTRAL_R0,
    HALF_EXPONENT_BITS,
    LN2_HI,
    LN2_LO,
    LOG_LG,
    MANTISSA_BITS,
    NEAR_TAIL_SHIFT,
    PPND16_A,
    PPND16_B,
    PPND16_C,
    PPND16_D,
    PPND16_E,
    PPND16_F,
    SPLIT_CENTRAL,
    SPLIT_TAIL,
    SQRT_A,
    SQRT_B,
    SQRT_HALF,
    SQRT_NEWTON,
)
from sdekit.noise.streams import GOLDEN, MIX1, MIX2

FLOAT_DTYPES = (torch.float64, torch.float32)
_MASK64 = (1 << 64) - 1


def as_int64(v: int) -> int:
    """The int64 with the same 64 bits as the uint64 v (mod 2^64)."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN, _MIX1, _MIX2 = as_int64(GOLDEN), as_int64(MIX1), as_int64(MIX2)


def _lsr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns: the arithmetic shift with the copied sign bits masked off."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _splitmix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser of z + GOLDEN on int64 bit patterns (= `sdekit.noise.streams.splitmix64`)."""
    z = z + _GOLDEN
    z = (z ^ _lsr(z, 30)) * _MIX1
    z = (z ^ _lsr(z, 27)) * _MIX2
    return z ^ _lsr(z, 31)


def _horner7(c: tuple, x: torch.Tensor) -> torch.Tensor:
    """((c7 x + c6) x + ...) x + c0, as `sdekit.noise.inverse_normal.horner7`."""
    acc = x * c[7] + c[6]
    for k in range(5, -1, -1):
        acc = acc * x + c[k]
    return acc


def _frexp(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, e) with x = m 2^e, m in [1/2, 1), e int64, for positive normal float64 x, read from the bits (what
    frexp returns). Bit operations rather than torch.frexp, whose int32 exponent Inductor's CPU code generator of
    torch 2.13 fails to compile."""
    bits = x.view(torch.int64)
    e = ((bits >> 52) & 0x7FF) - 1022
    m = ((bits & MANTISSA_BITS) | HALF_EXPONENT_BITS).view(torch.float64)
    return m, e


def _exact_log(x: torch.Tensor) -> torch.Tensor:
    """`sdekit.noise.inverse_normal.exact_log` in torch operations (the same steps in the same order)."""
    m, e = _frexp(x)
    small = m < SQRT_HALF
    m = torch.where(small, m * 2.0, m)
    k = e.to(x.dtype) - small.to(x.dtype)  # small integers: exact in float64
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LOG_LG[1] + w * (LOG_LG[3] + w * LOG_LG[5]))
    t2 = z * (LOG_LG[0] + w * (LOG_LG[2] + w * (LOG_LG[4] + w * LOG_LG[6])))
    r = t2 + t1
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)


def _exact_sqrt(x: torch.Tensor) -> torch.Tensor:
    """`sdekit.noise.inverse_normal.exact_sqrt` in torch operations; 2^(e/2) is built from its bits (exact)."""
    m, e = _frexp(x)
    odd = (e & 1) != 0
    m = torch.where(odd, m * 0.5, m)
    e = e + odd.to(torch.int64)
    y = SQRT_A + SQRT_B * m
    for _ in range(SQRT_NEWTON):
        y = 0.5 * (y + m / y)
    return y * (((e >> 1) + 1023) << 52).view(torch.float64)


def ppnd16_torch(q: torch.Tensor) -> torch.Tensor:
    """Phi^{-1}(q) by AS 241 on a float64 tensor: both branches everywhere, then a selection (no data-dependent
    control flow, so no host synchronisation); elementwise equal to `sdekit.noise.inverse_normal.ppnd16`."""
    qc = q - 0.5
    r = CENTRAL_R0 - qc * qc
    central = qc * _horner7(PPND16_A, r) / _horner7(PPND16_B, r)
    neg = qc < 0.0
    rt = _exact_sqrt(-_exact_log(torch.where(neg, q, 1.0 - q)))
    rn = rt - NEAR_TAIL_SHIFT
    rf = rt - SPLIT_TAIL
    tail = torch.where(rt <= SPLIT_TAIL, _horner7(PPND16_C, rn) / _horner7(PPND16_D, rn),
                       _horner7(PPND16_E, rf) / _horner7(PPND16_F, rf))
    return torch.where(qc.abs() > SPLIT_CENTRAL, torch.where(neg, -tail, tail), central)


def counter_core(path_words: torch.Tensor, draw_words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Normals from path_words (n, 1) = stream base ^ path and draw_words (1, m) = draw index * GOLDEN (int64 bit
    patterns): word = splitmix64(splitmix64(path word) + draw word), q = (2 (word >> 12) + 1) 2^-53, Phi^{-1}(q)."""
    word = _splitmix64(_splitmix64(path_words) + draw_words)
    q = ((_lsr(word, 12) << 1) | 1).to(torch.float64) * INV_2_53
    return ppnd16_torch(q).to(dtype)


class _CompiledOrEager:
    """``torch.compile(fn)`` on first use, falling back to fn for good if compiling or running the compiled
    function raises (an old toolchain, no Triton)."""

    def __init__(self, fn: Any):
        self.fn = fn
        self.compiled: Any = None
        self.failed: str | None = None

    def __call__(self, *args: Any) -> torch.Tensor:
        if self.failed is None:
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(self.fn, dynamic=True, options={"emulate_precision_casts": True})
                return self.compiled(*args)
            except Exception as exc:  # any compiler failure: run eager from now on
                self.failed = f"{type(exc).__name__}: {exc}"
        return self.fn(*args)


_CUDA_CORE = _CompiledOrEager(counter_core)


def _core_for(device: torch.device) -> Any:
    return _CUDA_CORE if device.type == "cuda" and hasattr(torch, "compile") else counter_core


def path_words(seed: int, stream: int, n_paths: int, path_offset: int, device: Any) -> torch.Tensor:
    """(n_paths, 1) int64: splitmix64(splitmix64(seed) ^ stream) ^ (path_offset + p), the key before its last mix."""
    paths = torch.arange(n_paths, dtype=torch.int64, device=device) + as_int64(path_offset)
    return (paths ^ as_int64(stream_base(seed, stream))).unsqueeze(1)


def draw_words(n_draws: int, draw_offset: int, device: Any) -> torch.Tensor:
    """(1, n_draws) int64: (draw_offset + j) * GOLDEN mod 2^64."""
    j = torch.arange(n_draws, dtype=torch.int64, device=device) * _GOLDEN
    return (j + as_int64(draw_offset * GOLDEN)).unsqueeze(0)


def device_counter_normals(seed: int, n_paths: int, n_draws: int, path_offset: int, stream: int, draw_offset: int,
                           dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The torch implementation (any device, the CPU included); arguments already checked."""
    if n_paths == 0 or n_draws == 0:
        return torch.empty((n_paths, n_draws), dtype=dtype, device=device)
    core = _core_for(device)
    return core(path_words(seed, stream, n_paths, path_offset, device), draw_words(n_draws, draw_offset, device),
                dtype)


def _dtype_arg(dtype: Any) -> torch.dtype:
    if dtype not in FLOAT_DTYPES:
        raise SDEKitError(f"dtype must be torch.float64 or torch.float32; got {dtype!r}")
    return dtype


def _device_arg(device: Any) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SDEKitError(f"device must be a torch device or its name; got {device!r}") from exc


def uses_numba(device: torch.device) -> bool:
    """Whether blocks on ``device`` come from the Numba generator (the CPU) rather than torch operations."""
    return device.type == "cpu"


class CounterNormals:
    """Blocks of counter normals of fixed (seed, stream, paths, width) on one device, for loops that draw every step.

    ``block(draw_offset)`` is N(seed, stream, path_offset + p, draw_offset + j) at [p, j], shape (n_paths, width):
    the numbers of `torch_counter_normals` with the arguments checked once, here, and the per-path words built once
    (on a device other than the CPU a block costs one small addition and the generator's kernel, no host read).
    """

    def __init__(self, seed: int, n_paths: int, width: int, *, stream: int = 0, path_offset: int = 0,
                 dtype: torch.dtype = torch.float64, device: Any = "cpu"):
        seed, n_paths, width, path_offset, stream, _ = check_counter_args(seed, n_paths, width, path_offset, stream,
                                                                          0)
        self.shape = (n_paths, width)
        self.path_offset = path_offset
        self.dtype = _dtype_arg(dtype)
        self.device = _device_arg(device)
        self._base = stream_base(seed, stream)
        self._on_cpu = uses_numba(self.device)
        if not self._on_cpu and n_paths and width:
            self._paths = path_words(seed, stream, n_paths, path_offset, self.device)
            self._cols = draw_words(width, 0, self.device)
            self._core = _core_for(self.device)

    def block(self, draw_offset: int) -> torch.Tensor:
        """The normals of draws draw_offset ... draw_offset + width - 1 of every path, (n_paths, width)."""
        n, width = self.shape
        if isinstance(draw_offset, bool) or not isinstance(draw_offset, int) or not (
                0 <= draw_offset <= U64_RANGE - width):
            raise SDEKitError(f"draw_offset must be an integer in [0, 2**64 - {width}]; got {draw_offset!r}")
        if self._on_cpu:
            out = np.empty(self.shape)
            fill_counter_normals(out, self._base, self.path_offset, draw_offset)
            t = torch.from_numpy(out)
            return t if self.dtype == torch.float64 else t.to(self.dtype)
        if n == 0 or width == 0:
            return torch.empty(self.shape, dtype=self.dtype, device=self.device)
        return self._core(self._paths, self._cols + as_int64(draw_offset * GOLDEN), self.dtype)


def torch_counter_normals(seed: int, n_paths: int, n_draws: int, *, path_offset: int = 0, stream: int = 0,
                          draw_offset: int = 0, dtype: torch.dtype = torch.float64,
                          device: Any = "cpu") -> torch.Tensor:
    """Standard normals N(seed, stream, path_offset + p, draw_offset + j) at [p, j], shape (n_paths, n_draws),
    as a tensor of ``dtype`` on ``device``: the numbers of `sdekit.noise.counter.counter_normals`.

    N(s, c, p, i) = Phi^{-1}((2 (splitmix64(key(s, c, p) + i GOLDEN) >> 12) + 1) 2^-53), Phi^{-1} by Wichura's
    AS 241 (1988). CPU: the Numba generator; other devices: torch operations (compiled on CUDA), bit-equal in
    float64; float32 is the float64 value rounded.
    """
    seed, n_paths, n_draws, path_offset, stream, draw_offset = check_counter_args(
        seed, n_paths, n_draws, path_offset, stream, draw_offset)
    return CounterNormals(seed, n_paths, n_draws, stream=stream, path_offset=path_offset, dtype=dtype,
                          device=device).block(draw_offset)


def torch_counter_normals_like(seed: int, like: torch.Tensor, *, stream: int, draw_offset: int = 0,
                               path_offset: int = 0) -> torch.Tensor:
    """Normals of ``like``'s shape (n, *shape), dtype and device: row p is path path_offset + p, and the trailing
    dimensions, flattened in C order, are the draws draw_offset, ..., draw_offset + prod(shape) - 1 of that path.

    What a sampler uses for a state of shape (n, C, H, W): element [p, c, h, w] is
    N(seed, stream, path_offset + p, draw_offset + (c H + h) W + w) (`torch_counter_normals`).
    """
    if not torch.is_tensor(like) or like.ndim < 1:
        raise SDEKitError(f"like must be a tensor of shape (n, ...); got {type(like).__name__}"
                          f"{' of shape ()' if torch.is_tensor(like) else ''}")
    if like.dtype not in FLOAT_DTYPES:
        raise SDEKitError(f"like must be a float64 or float32 tensor; got dtype {like.dtype}")
    n_draws = math.prod(like.shape[1:])
    out = torch_counter_normals(seed, like.shape[0], n_draws, path_offset=path_offset, stream=stream,
                                draw_offset=draw_offset, dtype=like.dtype, device=like.device)
    return out.reshape(like.shape)
