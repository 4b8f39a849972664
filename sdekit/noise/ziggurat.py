"""Tables of the 256-layer ziggurat for the standard normal distribution.

Marsaglia & Tsang (2000), "The Ziggurat Method for Generating Random Variables",
J. Stat. Softw. 5(8). The density f(x) = exp(-x^2/2) (unnormalised) is covered by
256 layers of equal area v: a base layer [0, v/f(r)] x [0, f(r)] (whose part beyond
r is the tail) and 255 rectangles with x_{i+1} = sqrt(-2 log(f(x_i) + v/x_i)).
The constants r and v are those of the 256-layer construction, so that x_256 = 0.
"""

from __future__ import annotations

import math

import numpy as np

N_LAYERS = 256
TAIL_START = 3.6541528853610088  # r: where the tail begins (Marsaglia & Tsang, n = 256)
MANTISSA = 2.0**52  # 52 random bits form the uniform inside a layer


def _density(x: float) -> float:
    return math.exp(-0.5 * x * x)


def layer_edges(r: float = TAIL_START) -> np.ndarray:
    """x_0 = v / f(r), x_1 = r, x_{i+1} = sqrt(-2 log(f(x_i) + v / x_i)), x_256 = 0, v = r f(r) + int_r^inf f."""
    v = r * _density(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = np.zeros(N_LAYERS + 1)
    x[0] = v / _density(r)
    x[1] = r
    for i in range(1, N_LAYERS - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(_density(x[i]) + v / x[i]))
    x[N_LAYERS] = 0.0
    return x


def build_tables(r: float = TAIL_START) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (k, w, f): acceptance thresholds, widths and densities per layer.

    x_0 = v / f(r), x_1 = r, x_{i+1} = sqrt(-2 log(f(x_i) + v / x_i)), x_256 = 0, with
    v = r f(r) + int_r^inf f. A layer i draws u in [0, 2^52) and x = u x_i / 2^52; it accepts
    at once when u < k_i = floor(2^52 x_{i+1} / x_i) (x inside the rectangle under f).
    """
    x = layer_edges(r)
    k = np.array([int(MANTISSA * x[i + 1] / x[i]) for i in range(N_LAYERS)], dtype=np.int64)
    w = x[:N_LAYERS] / MANTISSA
    f = np.array([_density(xi) for xi in x])
    return k, w, f


ZIG_K, ZIG_W, ZIG_F = build_tables()


ABSCISSA_BITS_32 = 23  # float32 normals: 8 bits pick the layer, 1 the sign, 23 the abscissa of a 32-bit word


def build_tables32(r: float = TAIL_START) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same 256 layers for float32 normals drawn from 32 random bits: (k, w, f) with a 23-bit abscissa.

    A layer i draws u in [0, 2^23) and x = float32(u) * w_i, w_i = float32(x_i / 2^23); it accepts at once when
    u < k_i = floor(2^23 x_{i+1} / x_i). f (float64, the density at the layer edges) is that of `build_tables`:
    the wedge and tail tests run in float64 on the float32 value returned.
    """
    _, _, f = build_tables(r)
    x = layer_edges(r)
    scale = 2.0**ABSCISSA_BITS_32
    k = np.array([int(scale * x[i + 1] / x[i]) for i in range(N_LAYERS)], dtype=np.int64)
    w = (x[:N_LAYERS] / scale).astype(np.float32)
    return k, w, f


ZIG32_K, ZIG32_W, ZIG32_F = build_tables32()


def signed_tables32(k: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 tables indexed by the 9 low bits of a 32-bit word (layer in bits 0-7, sign in bit 8): entry
    256 s + i holds (k_i, (-1)^s w_i). One load then gives the signed width, and float32(u) * (-w_i) is exactly
    -(float32(u) * w_i) (IEEE 754 rounding is symmetric in sign), so the normals are those of (k, w) bit for bit.
    """
    return np.concatenate([k, k]), np.concatenate([w, -w])


ZIG32_KS, ZIG32_WS = signed_tables32(ZIG32_K, ZIG32_W)
