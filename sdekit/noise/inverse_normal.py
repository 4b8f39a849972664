"""The standard normal quantile z = Phi^{-1}(q) from IEEE basic operations only, so that it is bit-reproducible.

Wichura (1988), "Algorithm AS 241: The percentage points of the normal distribution", Applied Statistics 37(3),
477-484 (PPND16, relative accuracy about 1e-16). With q' = q - 1/2:

    |q'| <= 0.425:  r = 0.180625 - q'^2,            z = q' A(r) / B(r);
    otherwise:      r = sqrt(-log(min(q, 1 - q))),
                    r <= 5:  z = C(r - 1.6) / D(r - 1.6),   r > 5:  z = E(r - 5) / F(r - 5),
                    z = -z when q' < 0;

A, ..., F are the degree-7 polynomials of the tables below (B, D, F with constant term 1), each evaluated by
Horner's rule from the highest coefficient down: ((c7 r + c6) r + ...) r + c0.

The logarithm is `exact_log`, not a library call: frexp (exact), one reduction to m in [sqrt(1/2), sqrt(2)), and
fdlibm's log kernel (Sun Microsystems 1993, e_log.c: log(1 + f) = f - hfsq + s (hfsq + R(s^2)), s = f / (2 + f),
R a degree-7 minimax polynomial, ln 2 split into a 32-bit head and a tail; error below 1 ulp). The square root is
`exact_sqrt` (frexp, a linear start and four Newton steps; within an ulp), not a library call either: torch's CPU
sqrt (MKL / SLEEF vector code) is not correctly rounded (about 1% of float64 results are an ulp off IEEE's). Every
step is one correctly rounded IEEE operation (+, -, *, /, frexp, ldexp by a power of two, comparisons), written in
the same order here (Numba) and in `sdekit.backends.torch.counter_noise` (torch, any device), so the two give the
same bits in float64. Nothing may be contracted into a fused multiply-add: the Numba functions are compiled without
fastmath (LLVM then keeps every multiply and add separate).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError

# AS 241 (PPND16) coefficients c0..c7, lowest degree first (Wichura 1988, p. 480; StatLib apstat/241)
PPND16_A = (3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3, 1.3731693765509461125e+4,
            4.5921953931549871457e+4, 6.7265770927008700853e+4, 3.3430575583588128105e+4, 2.5090809287301226727e+3)
PPND16_B = (1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
            2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4, 5.2264952788528545610e+3)
PPND16_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
            1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
PPND16_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
            1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)
PPND16_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
            2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
PPND16_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
            7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15)
SPLIT_CENTRAL = 0.425  # |q - 1/2| up to here: the central rational function in r = 0.180625 - q'^2
CENTRAL_R0 = 0.180625  # 0.425^2
SPLIT_TAIL = 5.0  # r = sqrt(-log(min(q, 1 - q))) up to here: the near-tail rational function in r - 1.6
NEAR_TAIL_SHIFT = 1.6

# fdlibm e_log.c: ln 2 = LN2_HI + LN2_LO with LN2_HI's low 32 bits zero (k * LN2_HI is exact for |k| < 2^20), and the
# minimax coefficients of R(z) ~ (log((1+s)/(1-s)) - 2 s) / s, z = s^2
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LOG_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01, 2.222219843214978396e-01,
          1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01)
SQRT_HALF = 0.7071067811865476  # mantissas below this are doubled, so that f = m - 1 lies in [-0.293, 0.415)
# sqrt(m) on [1/4, 1) ~ SQRT_A + SQRT_B m (the minimax line, relative error < 2.95%), then SQRT_NEWTON steps
# y <- (y + m / y) / 2: 2.9e-2 -> 4.3e-4 -> 9e-8 -> 4e-15 -> rounding (within an ulp)
SQRT_A = 0.34314575050761975
SQRT_B = 0.6862915010152396
SQRT_NEWTON = 4
MANTISSA_BITS = (1 << 52) - 1
HALF_EXPONENT_BITS = 1022 << 52  # the exponent field of [1/2, 1)
BLOCK = 2048  # quantiles per block of `quantiles_block` (its scratch stays in the cache)

_A, _B, _C, _D, _E, _F, _LG = PPND16_A, PPND16_B, PPND16_C, PPND16_D, PPND16_E, PPND16_F, LOG_LG


@nb.njit(inline="always")
def horner7(c, x):
    """c[7] x^7 + ... + c[0] by Horner's rule, highest coefficient first: ((c7 x + c6) x + ...) x + c0."""
    acc = c[7]
    for k in range(6, -1, -1):
        acc = acc * x + c[k]
    return acc


@nb.njit(inline="always")
def log_parts(m, e):
    """log(m 2^e) for m in [1/2, 1) and an integer e (the output of frexp), from basic operations only.

    m doubled (k = e - 1) when m < sqrt(1/2), else k = e; f = m - 1 (exact), s = f / (2 + f), z = s^2, w = z^2,
    R = z (Lg1 + w (Lg3 + w (Lg5 + w Lg7))) + w (Lg2 + w (Lg4 + w Lg6)), hfsq = f^2 / 2,
    log = k LN2_HI - ((hfsq - (s (hfsq + R) + k LN2_LO)) - f)   (fdlibm e_log.c; error below 1 ulp).
    """
    small = m < SQRT_HALF
    k = float(e) - 1.0 if small else float(e)
    m = m * 2.0 if small else m
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG[1] + w * (_LG[3] + w * _LG[5]))
    t2 = z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6])))
    r = t2 + t1
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)


@nb.njit(inline="always")
def exact_log(x):
    """log(x) for a positive normal float64 from basic operations only: `log_parts` of frexp(x)."""
    m, e = math.frexp(x)
    return log_parts(m, e)


@nb.njit(inline="always")
def sqrt_parts(m, e):
    """(y, h) with y 2^h = sqrt(m 2^e), m in [1/2, 1), e an integer, from basic operations only (within an ulp).

    e made even (m halved, e + 1, when e is odd), so m in [1/4, 1); y = SQRT_A + SQRT_B m, then SQRT_NEWTON Newton
    steps y <- 0.5 (y + m / y); h = e / 2.
    """
    odd = (e & 1) != 0
    m = m * 0.5 if odd else m
    e = e + 1 if odd else e
    y = SQRT_A + SQRT_B * m
    for _ in range(SQRT_NEWTON):
        y = 0.5 * (y + m / y)
    return y, e >> 1


@nb.njit(inline="always")
def exact_sqrt(x):
    """sqrt(x) for a positive normal float64: `sqrt_parts` of frexp(x), scaled by 2^h (exact). Not a library
    sqrt: torch's CPU sqrt is not correctly rounded, and this one gives the same bits in torch."""
    m, e = math.frexp(x)
    y, h = sqrt_parts(m, e)
    return y * math.ldexp(1.0, h)


@nb.njit(inline="always")
def ppnd16_central(q):
    """AS 241's central branch, for |q - 1/2| <= 0.425: q' A(r) / B(r), q' = q - 1/2, r = 0.180625 - q'^2."""
    qc = q - 0.5
    r = CENTRAL_R0 - qc * qc
    return qc * horner7(_A, r) / horner7(_B, r)


@nb.njit(inline="always")
def tail_from_root(r, q):
    """AS 241's tail value from r = sqrt(-log(min(q, 1 - q))): C/D at r - 1.6 (r <= 5), else E/F at r - 5, with
    the sign of q - 1/2 (both evaluated, one selected: no branch, so loops over it vectorise)."""
    rn = r - NEAR_TAIL_SHIFT
    rf = r - SPLIT_TAIL
    near = horner7(_C, rn) / horner7(_D, rn)
    far = horner7(_E, rf) / horner7(_F, rf)
    z = near if r <= SPLIT_TAIL else far
    return -z if q - 0.5 < 0.0 else z


@nb.njit(inline="always")
def tail_argument(q):
    """min(q, 1 - q), the argument of AS 241's tail logarithm: q when q - 1/2 < 0, else 1 - q (exact)."""
    return q if q - 0.5 < 0.0 else 1.0 - q


@nb.njit(inline="always")
def ppnd16_tail(q):
    """AS 241's tail branches, for |q - 1/2| > 0.425: r = sqrt(-log(min(q, 1 - q))), then `tail_from_root`."""
    return tail_from_root(exact_sqrt(-exact_log(tail_argument(q))), q)


@nb.njit(inline="always")
def in_tail(q):
    """Whether q takes AS 241's tail branches (|q - 1/2| > 0.425)."""
    return abs(q - 0.5) > SPLIT_CENTRAL


@nb.njit(inline="always")
def ppnd16(q):
    """Phi^{-1}(q) for q in (0, 1) by AS 241 (PPND16) with `exact_log` and `exact_sqrt` (module docstring)."""
    return ppnd16_tail(q) if in_tail(q) else ppnd16_central(q)


@nb.njit(inline="always")
def _frexp_bits(x, n, m_out, e_out, bits):
    """m_out[:n], e_out[:n] = frexp(x[:n]) for positive normal x, read from the bits (exponent field - 1022, and
    the mantissa with the exponent field of [1/2, 1)); bits: int64 scratch. Equals math.frexp there."""
    xb = x.view(np.int64)
    for i in range(n):
        b = xb[i]
        e_out[i] = ((b >> 52) & 0x7FF) - 1022
        bits[i] = (b & MANTISSA_BITS) | HALF_EXPONENT_BITS
    mv = bits.view(np.float64)
    for i in range(n):
        m_out[i] = mv[i]


@nb.njit(inline="always")
def quantiles_block(q, n, out):
    """out[:n] = Phi^{-1}(q[:n]), the same bits as `ppnd16` elementwise, in passes that LLVM vectorises: the central
    branch for all; the tail entries (15%) gathered without branches; their logarithm, square root and rational
    function, each a loop over the gathered entries (frexp read from the bits); scattered back."""
    for i in range(n):
        out[i] = ppnd16_central(q[i])
    pos = np.empty(n, dtype=np.int64)
    tq = np.empty(n)
    fa = np.empty(n)
    fb = np.empty(n)
    ia = np.empty(n, dtype=np.int64)
    ib = np.empty(n, dtype=np.int64)
    nt = 0
    for i in range(n):
        pos[nt] = i
        tq[nt] = q[i]
        nt += 1 if in_tail(q[i]) else 0
    for t in range(nt):
        fa[t] = tail_argument(tq[t])
    _frexp_bits(fa, nt, fb, ia, ib)
    for t in range(nt):
        fa[t] = -log_parts(fb[t], ia[t])
    _frexp_bits(fa, nt, fb, ia, ib)
    for t in range(nt):
        y, h = sqrt_parts(fb[t], ia[t])
        fa[t] = y
        ib[t] = (h + 1023) << 52
    scale = ib.view(np.float64)
    for t in range(nt):
        fb[t] = tail_from_root(fa[t] * scale[t], tq[t])
    for t in range(nt):
        out[pos[t]] = fb[t]


@nb.njit(cache=True, error_model="numpy")
def _quantiles(q, out):
    for start in range(0, q.size, BLOCK):
        n = min(BLOCK, q.size - start)
        quantiles_block(q[start:start + n], n, out[start:start + n])


def normal_quantile(q: np.ndarray) -> np.ndarray:
    """Phi^{-1}(q) elementwise for q in (0, 1), float64, by AS 241 (Wichura 1988, Appl. Statist. 37, 477-484).

    The quantile function the counter-based generator (`sdekit.noise.counter`) applies to its uniforms; relative
    accuracy about 1e-16 (tested against scipy.special.ndtri).
    """
    arr = np.asarray(q, dtype=np.float64)
    if not np.all((arr > 0.0) & (arr < 1.0)):
        raise SDEKitError("q must lie strictly between 0 and 1 (and be finite)")
    flat = np.ascontiguousarray(arr).reshape(-1)
    out = np.empty_like(flat)
    _quantiles(flat, out)
    return out.reshape(arr.shape)
