"""Integrators as data: Butcher tableaus (ODE), SRA tableaus (additive-noise SDE), SRI tableaus (diagonal noise).

Each tableau checks itself at construction (row sums equal c, weights sum to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TOL = 1e-14


def _arr(rows, shape=None) -> np.ndarray:
    a = np.array(rows, dtype=np.float64)
    if shape is not None:
        a = a.reshape(shape)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ButcherTableau:
    """Explicit Runge–Kutta method: k_s = v(x + h sum_{j<s} a_sj k_j, t + c_s h), x' = x + h sum_s b_s k_s.

    b_low (optional) is an embedded lower-order solution; err = h sum_s (b_s - b_low_s) k_s.
    """

    name: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    order: int
    b_low: np.ndarray | None = None
    fsal: bool = False

    def __post_init__(self) -> None:
        s = self.stages
        if self.a.shape != (s, s) or self.c.shape != (s,):
            raise ValueError(f"{self.name}: a must be ({s},{s}) and c ({s},)")
        if np.any(np.triu(self.a) != 0):
            raise ValueError(f"{self.name}: a must be strictly lower triangular (explicit method)")
        if not np.allclose(self.a.sum(axis=1), self.c, atol=_TOL, rtol=0):
            raise ValueError(f"{self.name}: row sums of a must equal c")
        if abs(self.b.sum() - 1.0) > _TOL:
            raise ValueError(f"{self.name}: weights b must sum to 1")
        if self.b_low is not None and abs(self.b_low.sum() - 1.0) > _TOL:
            raise ValueError(f"{self.name}: embedded weights must sum to 1")

    @property
    def stages(self) -> int:
        return int(self.b.shape[0])

    @property
    def b_err(self) -> np.ndarray:
        """Weights of the local error estimate, b - b_low."""
        return self.b - self.b_low if self.b_low is not None else np.zeros_like(self.b)


@dataclass(frozen=True)
class SRATableau:
    """Rößler's SRA method for additive noise dX = f(X, t) dt + g(t) dW.

    H_i = x + h sum_{j<i} A0_ij f(H_j, t + c0_j h) + sum_{j<i} B0_ij g(t + c1_j h) I10 / h,
    x' = x + h sum_i alpha_i f(H_i, t + c0_i h) + sum_i (beta1_i I1 + beta2_i I10 / h) g(t + c1_i h),
    with I1 = dW and I10 = int int dW ds. Rößler (2010), SIAM J. Numer. Anal. 48(3), 922–952.
    """

    name: str
    c0: np.ndarray
    c1: np.ndarray
    a0: np.ndarray
    b0: np.ndarray
    alpha: np.ndarray
    beta1: np.ndarray
    beta2: np.ndarray

    def __post_init__(self) -> None:
        s = self.stages
        for nm in ("c0", "c1", "alpha", "beta1", "beta2"):
            if getattr(self, nm).shape != (s,):
                raise ValueError(f"{self.name}: {nm} must have {s} entries")
        if not np.allclose(self.a0.sum(axis=1), self.c0, atol=_TOL, rtol=0):
            raise ValueError(f"{self.name}: row sums of A0 must equal c0")
        if abs(self.alpha.sum() - 1) > _TOL or abs(self.beta1.sum() - 1) > _TOL or abs(self.beta2.sum()) > _TOL:
            raise ValueError(f"{self.name}: need sum(alpha) = sum(beta1) = 1 and sum(beta2) = 0")

    @property
    def stages(self) -> int:
        return int(self.alpha.shape[0])


EULER = ButcherTableau("euler", _arr([[0.0]]), _arr([1.0]), _arr([0.0]), order=1)
HEUN2 = ButcherTableau("heun", _arr([[0, 0], [1, 0]]), _arr([0.5, 0.5]), _arr([0, 1]), order=2)
MIDPOINT = ButcherTableau("midpoint", _arr([[0, 0], [0.5, 0]]), _arr([0, 1]), _arr([0, 0.5]), order=2)
RK4 = ButcherTableau(
    "rk4",
    _arr([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0]]),
    _arr([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    _arr([0, 0.5, 0.5, 1]),
    order=4,
)
# Dormand & Prince (1980), J. Comput. Appl. Math. 6(1), 19–26: order 5 with embedded order 4, FSAL.
DOPRI5 = ButcherTableau(
    "dopri5",
    _arr([
        [0, 0, 0, 0, 0, 0, 0],
        [1 / 5, 0, 0, 0, 0, 0, 0],
        [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
        [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
        [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    ]),
    _arr([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]),
    _arr([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]),
    order=5,
    b_low=_arr([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]),
    fsal=True,
)
# Rößler (2010), Table 5.1 "SRA1": strong order 1.5 for additive noise, weak order 2.
SRA1 = SRATableau(
    "sra1",
    c0=_arr([0, 3 / 4]),
    c1=_arr([1, 0]),
    a0=_arr([[0, 0], [3 / 4, 0]]),
    b0=_arr([[0, 0], [3 / 2, 0]]),
    alpha=_arr([1 / 3, 2 / 3]),
    beta1=_arr([1, 0]),
    beta2=_arr([-1, 1]),
)
# Rößler (2010)'s SRA3: strong order 1.5 for additive noise, deterministic order 3 (Shu–Osher's
# three-stage drift weights). Cross-checked against torchsde's tableaus/sra3.py and StochasticDiffEq.jl's SRA3.
SRA3 = SRATableau(
    "sra3",
    c0=_arr([0, 1, 1 / 2]),
    c1=_arr([1, 0, 0]),
    a0=_arr([[0, 0, 0], [1, 0, 0], [1 / 4, 1 / 4, 0]]),
    b0=_arr([[0, 0, 0], [0, 0, 0], [1, 1 / 2, 0]]),
    alpha=_arr([1 / 6, 1 / 6, 2 / 3]),
    beta1=_arr([1, 0, 0]),
    beta2=_arr([-1, 1, 0]),
)
# Rackauckas & Nie (2018), "Stability-optimized high order methods and stiffness detection for pathwise stiff
# stochastic differential equations" (arXiv:1804.04344), SOSRA: the SRA conditions of Rößler (2010) with the
# mean-square stability region enlarged. Cross-checked against StochasticDiffEq.jl's constructSOSRA.
SOSRA = SRATableau(
    "sosra",
    c0=_arr([0, 0.6923962376159507, 1]),
    c1=_arr([0, 0.041248171110700504, 1]),
    a0=_arr([[0, 0, 0], [0.6923962376159507, 0, 0], [-3.1609142252828395, 4.1609142252828395, 0]]),
    b0=_arr([[0, 0, 0], [1.3371632704399763, 0, 0], [1.442371048468624, 1.8632741501139225, 0]]),
    alpha=_arr([0.2889874966892885, 0.6859880440839937, 0.025024459226717772]),
    beta1=_arr([-16.792534242221663, 17.514995785380226, 0.27753845684143835]),
    beta2=_arr([0.4237535769069274, 0.6010381474428539, -1.0247917243497813]),
)
# Rackauckas & Nie (2018), SOSRA2: the second stability-optimised SRA (c0 = c1 = (0, 1, 1)). Cross-checked against
# StochasticDiffEq.jl's constructSOSRA2.
SOSRA2 = SRATableau(
    "sosra2",
    c0=_arr([0, 1, 1]),
    c1=_arr([0, 1, 1]),
    a0=_arr([[0, 0, 0], [1, 0, 0], [0.9511849235504364, 0.04881507644956362, 0]]),
    b0=_arr([[0, 0, 0], [0.7686101171003622, 0, 0], [0.43886792994934987, 0.7490415909204886, 0]]),
    alpha=_arr([0.4999999999999998, -0.9683897375354181, 1.4683897375354185]),
    beta1=_arr([0.0, 0.92438032145683, 0.07561967854316998]),
    beta2=_arr([1.0, -0.8169981105823436, -0.18300188941765633]),
)


@dataclass(frozen=True)
class SRITableau:
    """Rößler's SRI method, strong order 1.5 for Itô SDEs with scalar or diagonal noise.

    With chi1 = I_(1,1) / sqrt(h) = (dW^2 - h) / (2 sqrt(h)), chi2 = I_(1,0) / h and
    chi3 = I_(1,1,1) / h = (dW^3 - 3 h dW) / (6 h), per Brownian component:
        H0_i = x + h sum_{j<i} A0_ij f(H0_j, t + c0_j h) + chi2 sum_{j<i} B0_ij g(H1_j, t + c1_j h),
        H1_i = x + h sum_{j<i} A1_ij f(H0_j, t + c0_j h) + sqrt(h) sum_{j<i} B1_ij g(H1_j, t + c1_j h),
        x' = x + h sum_i alpha_i f(H0_i, t + c0_i h)
               + sum_i (beta1_i dW + beta2_i chi1 + beta3_i chi2 + beta4_i chi3) g(H1_i, t + c1_i h).
    Rößler (2010), SIAM J. Numer. Anal. 48(3), 922–952, §6 (diagonal noise: g_k depends on x_k only, as in
    Kloeden & Platen 1992, §10.3; I_(1,1) and I_(1,1,1) are then functions of dW).
    """

    name: str
    c0: np.ndarray
    c1: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    b0: np.ndarray
    b1: np.ndarray
    alpha: np.ndarray
    beta1: np.ndarray
    beta2: np.ndarray
    beta3: np.ndarray
    beta4: np.ndarray

    def __post_init__(self) -> None:
        s = self.stages
        for nm in ("c0", "c1", "alpha", "beta1", "beta2", "beta3", "beta4"):
            if getattr(self, nm).shape != (s,):
                raise ValueError(f"{self.name}: {nm} must have {s} entries")
        for nm in ("a0", "a1", "b0", "b1"):
            mat = getattr(self, nm)
            if mat.shape != (s, s) or np.any(np.triu(mat) != 0):
                raise ValueError(f"{self.name}: {nm} must be strictly lower triangular ({s}, {s}) (explicit)")
        if not (np.allclose(self.a0.sum(axis=1), self.c0, atol=_TOL, rtol=0)
                and np.allclose(self.a1.sum(axis=1), self.c1, atol=_TOL, rtol=0)):
            raise ValueError(f"{self.name}: row sums of A0 and A1 must equal c0 and c1")
        sums = (self.alpha.sum() - 1, self.beta1.sum() - 1, self.beta2.sum(), self.beta3.sum(), self.beta4.sum())
        if max(abs(v) for v in sums) > _TOL:
            raise ValueError(f"{self.name}: need sum(alpha) = sum(beta1) = 1 and sum(beta2..beta4) = 0")

    @property
    def stages(self) -> int:
        return int(self.alpha.shape[0])

    def step_arrays(self) -> tuple:
        """The coefficients in the order the step functions read them."""
        return (self.c0, self.c1, self.a0, self.a1, self.b0, self.b1, self.alpha, self.beta1, self.beta2,
                self.beta3, self.beta4)


def _sri(name: str, a0, a1, b0, b1, alpha, beta1, beta2, beta3, beta4) -> SRITableau:
    """An SRI tableau with c0 and c1 the row sums of A0 and A1."""
    a0, a1 = _arr(a0), _arr(a1)
    return SRITableau(name, c0=_arr(a0.sum(axis=1)), c1=_arr(a1.sum(axis=1)), a0=a0, a1=a1, b0=_arr(b0),
                      b1=_arr(b1), alpha=_arr(alpha), beta1=_arr(beta1), beta2=_arr(beta2), beta3=_arr(beta3),
                      beta4=_arr(beta4))


_Z4 = [0, 0, 0, 0]
# Rößler (2010)'s SRI scheme with the coefficients StochasticDiffEq.jl calls SRIW1 (torchsde: tableaus/srid1.py):
# strong 1.5, weak 2, deterministic order 2.
SRIW1 = _sri(
    "sriw1",
    a0=[_Z4, [3 / 4, 0, 0, 0], _Z4, _Z4],
    a1=[_Z4, [1 / 4, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1 / 4, 0]],
    b0=[_Z4, [3 / 2, 0, 0, 0], _Z4, _Z4],
    b1=[_Z4, [1 / 2, 0, 0, 0], [-1, 0, 0, 0], [-5, 3, 1 / 2, 0]],
    alpha=[1 / 3, 2 / 3, 0, 0],
    beta1=[-1, 4 / 3, 2 / 3, 0],
    beta2=[-1, 4 / 3, -1 / 3, 0],
    beta3=[2, -4 / 3, -2 / 3, 0],
    beta4=[-2, 5 / 3, -2 / 3, 1],
)
# Rößler (2010)'s SRI scheme with the coefficients StochasticDiffEq.jl calls SRIW2 (torchsde: tableaus/srid2.py,
# the tableau of torchsde's "srk" on diagonal and scalar noise): strong 1.5, deterministic order 3.
SRIW2 = _sri(
    "sriw2",
    a0=[_Z4, [1, 0, 0, 0], [1 / 4, 1 / 4, 0, 0], _Z4],
    a1=[_Z4, [1 / 4, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1 / 4, 0]],
    b0=[_Z4, _Z4, [1, 1 / 2, 0, 0], _Z4],
    b1=[_Z4, [-1 / 2, 0, 0, 0], [1, 0, 0, 0], [2, -1, 1 / 2, 0]],
    alpha=[1 / 6, 1 / 6, 2 / 3, 0],
    beta1=[-1, 4 / 3, 2 / 3, 0],
    beta2=[1, -4 / 3, 1 / 3, 0],
    beta3=[2, -4 / 3, -2 / 3, 0],
    beta4=[-2, 5 / 3, -2 / 3, 1],
)
# Rackauckas & Nie (2018), arXiv:1804.04344, SOSRI: the SRI conditions of Rößler (2010) with the mean-square
# stability region enlarged (StochasticDiffEq.jl's SOSRIConstantCache, also its constructSRIOpt1).
SOSRI = _sri(
    "sosri",
    a0=[_Z4, [-0.04199224421316468, 0, 0, 0], [2.842612915017106, -2.0527723684000727, 0, 0],
        [4.338237071435815, -2.8895936137439793, 2.3017575594644466, 0]],
    a1=[_Z4, [0.26204282091330466, 0, 0, 0], [0.20903646383505375, -0.1502377115150361, 0, 0],
        [0.05836595312746999, 0.6149440396332373, 0.08535117634046772, 0]],
    b0=[_Z4, [-0.21641093549612528, 0, 0, 0], [1.5336352863679572, 0.26066223492647056, 0, 0],
        [-1.0536037558179159, 1.7015284721089472, -0.20725685784180017, 0]],
    b1=[_Z4, [-0.5119011827621657, 0, 0, 0], [2.67767339866713, -4.9395031322250995, 0, 0],
        [0.15580956238299215, 3.2361551006624674, -1.4223118283355949, 0]],
    alpha=[1.140099274172029, -0.6401334255743456, 0.4736296532772559, 0.026404498125060714],
    beta1=[-1.8453464565104432, 2.688764531100726, -0.2523866501071323, 0.40896857551684956],
    beta2=[0.4969658141589478, -0.5771202869753592, -0.12919702470322217, 0.2093514975196336],
    beta3=[2.8453464565104425, -2.688764531100725, 0.2523866501071322, -0.40896857551684945],
    beta4=[0.11522663875443433, -0.57877086147738, 0.2857851028163886, 0.17775911990655704],
)
# Rackauckas & Nie (2018), SOSRI2: the second stability-optimised SRI (StochasticDiffEq.jl's SOSRI2ConstantCache,
# also its constructSRIOpt2).
SOSRI2 = _sri(
    "sosri2",
    a0=[_Z4, [0.13804532298278663, 0, 0, 0], [0.5818361298250374, 0.4181638701749618, 0, 0],
        [0.4670018408674211, 0.8046204792187386, -0.27162232008616016, 0]],
    a1=[_Z4, [0.45605532163856893, 0, 0, 0], [0.7555807846451692, 0.24441921535482677, 0, 0],
        [0.6981181143266059, 0.3453277086024727, -0.04344582292908241, 0]],
    b0=[_Z4, [0.08852381537667678, 0, 0, 0], [1.0317752458971061, 0.4563552922077882, 0, 0],
        [1.73078280444124, -0.46089678470929774, -0.9637509618944188, 0]],
    b1=[_Z4, [0.6753186815412179, 0, 0, 0], [-0.07452812525785148, -0.49783736486149366, 0, 0],
        [-0.5591906709928903, 0.022696571806569924, -0.8984927888368557, 0]],
    alpha=[-0.15036858140642623, 0.7545275856696072, 0.686995463807979, -0.2911544680711602],
    beta1=[-0.45315689727309133, 0.8330937231303951, 0.3792843195533544, 0.24077885458934192],
    beta2=[-0.4994383733810986, 0.9181786186154077, -0.25613778661003145, -0.16260245862427797],
    beta3=[1.4531568972730915, -0.8330937231303933, -0.3792843195533583, -0.24077885458934023],
    beta4=[-0.4976090683622265, 0.9148155835648892, -1.4102107084476505, 0.9930041932449877],
)
