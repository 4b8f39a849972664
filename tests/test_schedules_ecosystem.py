"""Schedules, timestep spacings and sigma grids of the ecosystem, against diffusers 0.35 and the closed forms.

- constructors: float64 betas equal diffusers' formulas evaluated in float64 to 1e-15 relative (the cosine bit for
  bit; sigmoid and the zero-terminal-SNR rescaling by running diffusers' own code in float64), and diffusers' float32
  tables to float32 rounding;
- spacing: `timestep_levels` equals, as integers, the timesteps that DDIM / DDPM / DPMSolverMultistep /
  DPMSolverSinglestep / Euler / Heun set for K in {50, 1000}, steps in STEPS, each spacing and steps_offset in
  {0, 1}; wherever diffusers' rule repeats a timestep, leaves 0..K-1 or raises, sdekit refuses (SDEKitError). A
  planted off-by-one in 'leading' and a planted round-half-up in 'linspace' are caught by the same comparison;
- `timestep_of_sigma` equals diffusers' own ``_sigma_to_t`` (k-diffusion's sigma_to_t) and is exact at the levels,
  on NumPy and torch;
- sigma grids: Karras / exponential / polyexponential against k-diffusion's formulas and diffusers' converters;
  `vp_pairs` / `pairs_from_schedule` against the kernel.

diffusers is needed only by the tests that compare with it (skipped without it).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import sdekit.diffusion.samplers.timestep_spacing as spacing_mod
from sdekit.diffusion.samplers import edm
from sdekit.diffusion.samplers.discrete import DiscreteSchedule, levels_from_timesteps, timesteps_from_levels
from sdekit.diffusion.samplers.sigma_grids import (
    exponential_sigmas,
    karras_sigmas,
    pairs_from_schedule,
    polyexponential_sigmas,
    vp_pairs,
)
from sdekit.diffusion.samplers.timestep_spacing import (
    CONVENTIONS,
    SPACINGS,
    diffusers_timesteps,
    euler_sigmas,
    timestep_levels,
)
from sdekit.errors import SDEKitError

torch = pytest.importorskip("torch")

# diffusers 0.35's own schedulers call np.array on torch tensors (a NumPy 2 deprecation inside diffusers)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

EPS = np.finfo(np.float64).eps
F32_ULPS = 4 * 2.0**-23  # 4 float32 ulps, relative: diffusers keeps its betas in float32
STEPS = (1, 2, 3, 7, 10, 16, 25, 50, 999, 1000)  # 3 and 16 hit round-half ties (499.5, 937.5)
TRAIN = (1000, 50)
SD = {"beta_start": 0.00085, "beta_end": 0.012}


def _diffusers():
    return pytest.importorskip("diffusers")


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# ------------------------------------------------------------------------------------------ constructors


@pytest.mark.parametrize("k", TRAIN)
def test_linear_and_scaled_linear_equal_diffusers(k):
    d = _diffusers()
    lin, sl = DiscreteSchedule.linear(k), DiscreteSchedule.scaled_linear(k)
    # diffusers' expressions, evaluated in float64
    assert _rel(lin.betas, torch.linspace(1e-4, 0.02, k, dtype=torch.float64).numpy()) <= 1e-15
    ref = torch.linspace(0.00085**0.5, 0.012**0.5, k, dtype=torch.float64) ** 2
    assert _rel(sl.betas, ref.numpy()) <= 1e-15
    # diffusers' float32 tables
    assert _rel(lin.betas, d.DDPMScheduler(num_train_timesteps=k).betas.numpy()) <= F32_ULPS
    dd = d.DDPMScheduler(num_train_timesteps=k, beta_schedule="scaled_linear", **SD)
    assert _rel(sl.betas, dd.betas.numpy()) <= F32_ULPS
    assert _rel(sl.alphas_bar, dd.alphas_cumprod.numpy()) <= 1e-5  # float32 cumprod drift (measured 9e-7)


@pytest.mark.parametrize("k", (*TRAIN, 7))
def test_squaredcos_cap_v2_is_the_cosine_and_equals_diffusers_bit_for_bit(k):
    d = _diffusers()
    s = DiscreteSchedule.squaredcos_cap_v2(k)
    np.testing.assert_array_equal(s.betas, DiscreteSchedule.cosine(k).betas)

    def alpha_bar(t):  # diffusers' betas_for_alpha_bar(alpha_transform_type="cosine"), in float64
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    ref = [min(1 - alpha_bar((i + 1) / k) / alpha_bar(i / k), 0.999) for i in range(k)]
    np.testing.assert_array_equal(s.betas, np.array(ref))
    table = d.DDPMScheduler(num_train_timesteps=k, beta_schedule="squaredcos_cap_v2").betas.numpy()
    np.testing.assert_array_equal(s.betas.astype(np.float32), table)


@pytest.mark.parametrize("k", TRAIN)
def test_sigmoid_equals_diffusers_run_in_float64(k):
    d = _diffusers()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # diffusers' sigmoid betas follow the default dtype
    try:
        ref = d.DDPMScheduler(num_train_timesteps=k, beta_schedule="sigmoid").betas
    finally:
        torch.set_default_dtype(old)
    assert ref.dtype == torch.float64
    s = DiscreteSchedule.sigmoid(k)
    assert _rel(s.betas, ref.numpy()) <= 1e-15
    s2 = DiscreteSchedule.sigmoid(k, 1e-7, 2e-3)  # GeoDiff's range
    assert s2.betas[0] == pytest.approx(1e-7 + (2e-3 - 1e-7) / (1 + math.exp(6)), rel=1e-14)


@pytest.mark.parametrize("k", TRAIN)
@pytest.mark.parametrize("base", ["scaled_linear", "linear", "squaredcos_cap_v2"])
def test_zero_terminal_snr_equals_diffusers_algorithm_1(k, base):
    d = _diffusers()
    from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

    sched = getattr(DiscreteSchedule, base)(k)
    ref_betas = rescale_zero_terminal_snr(torch.tensor(sched.betas)).numpy()  # diffusers' own code in float64
    assert ref_betas[-1] == 1.0  # Algorithm 1 ends at alphabar_K = 0
    ref_abar = np.cumprod(1.0 - ref_betas)
    z = sched.rescaled_zero_terminal_snr(terminal_alpha_bar=1e-12)
    assert _rel(z.alphas_bar[:-1], ref_abar[:-1]) <= 1e-15
    np.testing.assert_allclose(z.betas[:-1], ref_betas[:-1], rtol=0, atol=16 * EPS)  # 1 - ratio: eps-level abs
    assert z.alphas_bar[-1] == 1e-12 and z.alphas_bar[0] == pytest.approx(sched.alphas_bar[0], rel=1e-15)
    if base == "scaled_linear":  # diffusers' DPM-Solver / Euler overwrite alphas_cumprod[-1] = 2**-24, as we do
        dpm = d.DPMSolverMultistepScheduler(num_train_timesteps=k, beta_schedule=base, rescale_betas_zero_snr=True,
                                            **SD)
        z24 = sched.rescaled_zero_terminal_snr()
        assert dpm.alphas_cumprod[-1].item() == 2.0**-24 == z24.alphas_bar[-1]
        assert _rel(z24.alphas_bar, dpm.alphas_cumprod.numpy()) <= 1e-4  # float32 cumprod (measured 3.8e-5)


def test_zero_terminal_snr_refuses_a_terminal_value_that_breaks_monotonicity():
    # Ho et al.'s linear schedule rescaled has alphabar'_{K-1} = 4.2e-9 < 2**-24: diffusers' overwrite then makes
    # alphas_cumprod increase at the last step; sdekit refuses and names the argument
    lin = DiscreteSchedule.linear()
    with pytest.raises(SDEKitError, match=r"terminal_alpha_bar must lie in \(0, alphabar'_\(K-1\) = 4\.2"):
        lin.rescaled_zero_terminal_snr()
    z = lin.rescaled_zero_terminal_snr(terminal_alpha_bar=1e-10)
    assert np.all(np.diff(z.alphas_bar) < 0) and z.alphas_bar[-1] == 1e-10


def test_from_alphas_cumprod_keeps_the_table_exactly():
    sl = DiscreteSchedule.scaled_linear()
    back = DiscreteSchedule.from_alphas_cumprod(sl.alphas_bar)
    np.testing.assert_array_equal(back.alphas_bar, sl.alphas_bar)
    np.testing.assert_allclose(back.betas, sl.betas, rtol=1e-12)
    f32 = np.cumprod(1.0 - np.float32(sl.betas), dtype=np.float32)  # what a float32 scheduler stores
    np.testing.assert_array_equal(DiscreteSchedule.from_alphas_cumprod(f32).alphas_bar, f32.astype(np.float64))
    # respaced keeps alphabar at the chosen levels exactly
    lv = np.array([1, 10, 500, 1000])
    np.testing.assert_array_equal(sl.respaced(lv).alphas_bar, sl.alphas_bar[lv - 1])


@pytest.mark.parametrize("k", TRAIN)
def test_sigmas_edm_equal_the_formula_and_diffusers_euler(k):
    d = _diffusers()
    s = DiscreteSchedule.scaled_linear(k)
    assert _rel(s.sigmas_edm, np.sqrt((1 - s.alphas_bar) / s.alphas_bar)) <= 1e-13  # the formula cancels at k = 1
    np.testing.assert_allclose(s.sigmas_edm, s.sigmas / s.alphas, rtol=1e-15)
    e = d.EulerDiscreteScheduler(num_train_timesteps=k, beta_schedule="scaled_linear", **SD)
    assert _rel(s.sigmas_edm, e.sigmas.numpy()[:-1][::-1]) <= 1e-4  # diffusers' float32 (measured 1.3e-5)
    with pytest.raises(ValueError):
        s.sigmas_edm[0] = 1.0


# ------------------------------------------------------------------------------------------ spacing


def _diffusers_grid(cls_name: str, k: int, spacing: str, offset: int, steps: int):
    """diffusers' distinct inference timesteps (decreasing) or None when its rule raises or gives a grid sdekit
    refuses (repeated, out of 0..K-1, or not `steps` of them)."""
    d = _diffusers()
    cls = getattr(d, cls_name)
    if cls_name == "DPMSolverSinglestepScheduler":
        sched = cls(num_train_timesteps=k)
    else:
        sched = cls(num_train_timesteps=k, timestep_spacing=spacing, steps_offset=offset)
    try:
        sched.set_timesteps(steps)
    except ValueError:
        return None
    t = sched.timesteps.numpy().astype(np.float64)
    if cls_name == "HeunDiscreteScheduler":  # [t0, t1, t1, t2, t2, ...]: second stages repeat a timestep
        np.testing.assert_array_equal(t[1::2], t[2::2])
        t = np.concatenate([t[:1], t[1::2]])
    if t.shape[0] != steps or t.min() < 0 or t.max() > k - 1 or np.any(np.diff(t) >= 0):
        return None
    return t


FAMILIES = {
    "DDIMScheduler": "ddim", "DDPMScheduler": "ddim", "DPMSolverMultistepScheduler": "dpmsolver",
    "DPMSolverSinglestepScheduler": "dpmsolver", "EulerDiscreteScheduler": "euler", "HeunDiscreteScheduler": "euler",
}
SCHEDULES = {k: DiscreteSchedule.linear(k) for k in TRAIN}


def _mismatches(cls_name: str) -> tuple[list, int, int]:
    """Every configuration where sdekit's grid differs from diffusers', or one refuses and the other does not;
    and the counts of compared and refused configurations."""
    convention = FAMILIES[cls_name]
    spacings = ("linspace",) if cls_name == "DPMSolverSinglestepScheduler" else SPACINGS
    offsets = (0,) if cls_name == "DPMSolverSinglestepScheduler" else (0, 1)
    bad, compared, refused = [], 0, 0
    for k in TRAIN:
        for spacing in spacings:
            for off in offsets:
                for steps in STEPS:
                    ref = _diffusers_grid(cls_name, k, spacing, off, steps)
                    case = (k, spacing, off, steps)
                    fractional = ref is not None and np.any(ref != np.floor(ref))
                    try:
                        got = timestep_levels(SCHEDULES[k], steps, spacing, off, convention)
                    except SDEKitError:
                        got = None
                    if fractional:  # Euler 'linspace': no levels; the timesteps and the sigmas instead
                        compared += 1
                        sig = euler_sigmas(SCHEDULES[k], steps, spacing, off)
                        ok = got is None and np.array_equal(
                            diffusers_timesteps(k, steps, spacing, off, convention).astype(np.float32), ref)
                        ok = ok and _euler_sigmas_match(sig, k, spacing, off, steps)
                    elif ref is None:
                        refused += 1
                        ok = got is None
                    else:
                        compared += 1
                        ok = got is not None and np.array_equal(got, ref[::-1].astype(np.int64) + 1)
                    if not ok:
                        bad.append(case)
    return bad, compared, refused


def _euler_sigmas_match(sig: np.ndarray, k: int, spacing: str, off: int, steps: int) -> bool:
    d = _diffusers()
    e = d.EulerDiscreteScheduler(num_train_timesteps=k, timestep_spacing=spacing, steps_offset=off)
    e.set_timesteps(steps)
    ref = e.sigmas.numpy().astype(np.float64)
    return bool(ref[-1] == sig[-1] == 0.0 and _rel(sig[:-1], ref[:-1]) <= 1e-4)


@pytest.mark.parametrize("cls_name", list(FAMILIES))
def test_timestep_levels_equal_diffusers(cls_name):
    bad, compared, refused = _mismatches(cls_name)
    assert bad == []
    assert compared >= 16 and (refused >= 2 or cls_name == "DPMSolverSinglestepScheduler")


def test_refused_grids_name_the_problem():
    lin50 = SCHEDULES[50]
    with pytest.raises(SDEKitError, match=r"steps = 50 .*'dpmsolver'.*repeated timesteps"):
        timestep_levels(lin50, 50, "linspace", convention="dpmsolver")
    with pytest.raises(SDEKitError, match=r"steps = 50 .*steps_offset=1.*outside 0\.\.49 \(min 1, max 50\)"):
        timestep_levels(lin50, 50, "leading", 1)
    with pytest.raises(SDEKitError, match=r"steps = 999 .*'trailing'.*1000 timesteps instead of 999|outside"):
        timestep_levels(lin50, 999, "trailing")
    with pytest.raises(SDEKitError, match=r"fractional.*euler_sigmas"):
        timestep_levels(SCHEDULES[1000], 7, "linspace", convention="euler")


def test_rounding_ties_follow_numpy_inside_diffusers_conventions():
    # diffusers rounds half to even: linspace(0, 49, 3)[1] = 24.5 -> 24, linspace(0, 999, 7)[1] = 166.5 -> 166
    np.testing.assert_array_equal(timestep_levels(SCHEDULES[50], 3), [1, 25, 50])
    assert timestep_levels(SCHEDULES[1000], 7)[1] == 167


def test_planted_off_by_one_in_leading_is_caught(monkeypatch):
    real = spacing_mod.diffusers_timesteps

    def off_by_one(n_train, steps, spacing="linspace", steps_offset=0, convention="ddim"):
        t = real(n_train, steps, spacing, steps_offset, convention)
        return t + 1 if spacing == "leading" and steps_offset == 0 else t

    monkeypatch.setattr(spacing_mod, "diffusers_timesteps", off_by_one)
    bad, _, _ = _mismatches("DDIMScheduler")
    assert (1000, "leading", 0, 10) in bad and all(c[1] == "leading" for c in bad)


def test_planted_round_half_up_is_caught(monkeypatch):
    real = spacing_mod.diffusers_timesteps

    def half_up(n_train, steps, spacing="linspace", steps_offset=0, convention="ddim"):
        if spacing != "linspace" or convention != "ddim":
            return real(n_train, steps, spacing, steps_offset, convention)
        return np.floor(np.linspace(0.0, n_train - 1, steps) + 0.5)[::-1]

    monkeypatch.setattr(spacing_mod, "diffusers_timesteps", half_up)
    bad, _, _ = _mismatches("DDPMScheduler")
    # linspace(0, 49, 3)[1] = 24.5 and linspace(0, 999, 7)[1] = 166.5 are ties (499.5 -> 500 either way)
    assert (50, "linspace", 0, 3) in bad and (1000, "linspace", 0, 7) in bad and (1000, "linspace", 0, 3) not in bad


def test_conventions_are_data():
    assert set(CONVENTIONS) == {"ddim", "dpmsolver", "euler"}
    assert CONVENTIONS["dpmsolver"].drops_first_point and not CONVENTIONS["euler"].rounds_linspace


def test_spaced_levels_round_half_up():
    lin4 = DiscreteSchedule.linear(4, 0.1, 0.2)
    np.testing.assert_array_equal(lin4.spaced_levels(3), [1, 3, 4])  # 2.5 -> 3 (np.round gives 2)
    for k in range(1, 41):
        sched = DiscreteSchedule.linear(k, 0.01, 0.02)
        for n in range(2, k + 1):
            want = [math.floor(1 + Fraction(i * (k - 1), n - 1) + Fraction(1, 2)) for i in range(n)]
            assert sched.spaced_levels(n).tolist() == want
    assert SCHEDULES[1000].spaced_levels(25)[1] == 43  # 1 + 999/24 = 42.625
    assert SCHEDULES[1000].spaced_levels(1).tolist() == [1000]


def test_schedule_pickles_without_its_device_tables():
    import pickle

    s = DiscreteSchedule.scaled_linear(50)
    s.timestep_of_sigma(torch.ones(2, dtype=torch.float64))
    back = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(back.sigmas_edm, s.sigmas_edm)
    assert back._torch_tables == {} and not back.alphas_bar.flags.writeable
    assert back.timestep_of_sigma(torch.tensor(np.array(s.sigmas_edm[:3]))).tolist() == [0.0, 1.0, 2.0]


def test_levels_and_timesteps_are_shifted_by_one():
    t = np.array([999, 500, 0])
    np.testing.assert_array_equal(levels_from_timesteps(t, 1000), [1000, 501, 1])
    np.testing.assert_array_equal(timesteps_from_levels(levels_from_timesteps(t, 1000), 1000), t)


# ------------------------------------------------------------------------------------------ sigma -> timestep


@pytest.mark.parametrize("k", TRAIN)
def test_timestep_of_sigma_equals_diffusers_sigma_to_t(k):
    d = _diffusers()
    s = DiscreteSchedule.scaled_linear(k)
    log_sigmas = np.log(s.sigmas_edm)
    q = np.exp(np.random.default_rng(0).uniform(log_sigmas[0] - 1, log_sigmas[-1] + 1, 500))
    q[:3] = [s.sigmas_edm[0] * 0.5, s.sigmas_edm[-1] * 2, s.sigmas_edm[k // 2]]
    ref = d.EulerDiscreteScheduler._sigma_to_t(None, q, log_sigmas)  # k-diffusion's sigma_to_t, in NumPy
    got = s.timestep_of_sigma(q)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert got[0] == 0.0 and got[1] == k - 1 and got[2] == k // 2
    np.testing.assert_array_equal(s.timestep_of_sigma(s.sigmas_edm), np.arange(k))  # exact at the levels
    assert s.timestep_of_sigma(0.0) == 0.0 and isinstance(s.timestep_of_sigma(1.0), float)
    nearest = s.timestep_of_sigma(q, rounding="nearest")
    np.testing.assert_array_equal(nearest, np.abs(np.log(q)[None, :] - log_sigmas[:, None]).argmin(axis=0))
    assert nearest.dtype == np.int64


def test_timestep_of_sigma_on_torch_equals_numpy_and_is_exact_at_levels():
    s = DiscreteSchedule.scaled_linear()
    q = np.exp(np.random.default_rng(1).uniform(-4, 3, (4, 25)))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-4)):
        got = s.timestep_of_sigma(torch.as_tensor(q, dtype=dtype))
        assert got.dtype == dtype and got.shape == (4, 25)
        np.testing.assert_allclose(got.double().numpy(), s.timestep_of_sigma(q), rtol=0, atol=tol)
        at_levels = s.timestep_of_sigma(torch.tensor(np.array(s.sigmas_edm), dtype=dtype))
        np.testing.assert_array_equal(at_levels.numpy(), np.arange(1000))
        near = s.timestep_of_sigma(torch.as_tensor(q, dtype=dtype), rounding="nearest")
        assert near.dtype == torch.int64
    q64 = torch.as_tensor(q)
    np.testing.assert_array_equal(s.timestep_of_sigma(q64, rounding="nearest").numpy(),
                                  s.timestep_of_sigma(q, rounding="nearest"))
    assert s.timestep_of_sigma(torch.zeros(3, dtype=torch.float64)).tolist() == [0.0, 0.0, 0.0]


def test_linear_interpolation_inverts_euler_sigmas():
    d = _diffusers()
    s = SCHEDULES[1000]
    sig = euler_sigmas(s, 7)
    t = s.timestep_of_sigma(sig[:-1], interpolation="linear")
    np.testing.assert_allclose(t, np.linspace(999, 0, 7), rtol=0, atol=1e-9)
    e = d.EulerDiscreteScheduler()
    e.set_timesteps(7)
    np.testing.assert_allclose(t, e.timesteps.numpy(), rtol=0, atol=1e-4)  # diffusers' float32 timesteps


# ------------------------------------------------------------------------------------------ sigma grids


def test_karras_sigmas_is_reexported_and_matches_diffusers():
    d = _diffusers()
    assert karras_sigmas is edm.karras_sigmas
    ks = karras_sigmas(10, 0.03, 14.6)
    ref = d.EulerDiscreteScheduler()._convert_to_karras(np.array([14.6, 0.03]), 10)
    assert _rel(ks[:-1], ref) <= 1e-15 and ks[-1] == 0.0


@pytest.mark.parametrize("n", [2, 5, 18])
def test_exponential_and_polyexponential_equal_k_diffusion(n):
    lo, hi = 0.0292, 14.61
    ex = exponential_sigmas(n, lo, hi)
    ref = np.exp(np.linspace(math.log(hi), math.log(lo), n))  # k-diffusion get_sigmas_exponential
    assert ex.shape == (n + 1,) and ex[-1] == 0.0 and ex[0] == hi and ex[-2] == lo
    assert _rel(ex[:-1], ref) <= 1e-15
    for rho in (1.0, 2.0, 0.5):
        pe = polyexponential_sigmas(n, lo, hi, rho)
        ramp = np.linspace(1, 0, n) ** rho  # k-diffusion get_sigmas_polyexponential
        ref = np.exp(ramp * (math.log(hi) - math.log(lo)) + math.log(lo))
        assert pe[-1] == 0.0 and pe[0] == hi and pe[-2] == lo and _rel(pe[:-1], ref) <= 1e-15
    assert _rel(polyexponential_sigmas(n, lo, hi)[:-1], ex[:-1]) <= 1e-15


def test_exponential_equals_diffusers_converter():
    d = _diffusers()
    ref = d.EulerDiscreteScheduler()._convert_to_exponential(np.array([14.6, 0.03]), 10)
    assert _rel(exponential_sigmas(10, 0.03, 14.6)[:-1], ref) <= 1e-15


def test_vp_pairs_and_pairs_from_schedule_agree_with_the_kernel():
    s = SCHEDULES[1000]
    lv = timestep_levels(s, 10, convention="dpmsolver")
    pairs = pairs_from_schedule(s, np.r_[0, lv])
    assert pairs.shape == (11, 2) and pairs[-1].tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(pairs[:-1], [s.level(int(k)) for k in lv[::-1]])
    via_edm = vp_pairs(np.r_[s.sigmas_edm[lv - 1][::-1], 0.0])
    np.testing.assert_allclose(via_edm, pairs, rtol=1e-14, atol=1e-300)
    ks = karras_sigmas(8, 0.02, 80.0)
    vp = vp_pairs(ks)
    np.testing.assert_allclose(vp[:, 0] ** 2 + vp[:, 1] ** 2, 1.0, rtol=1e-15)
    np.testing.assert_allclose(vp[:-1, 1] / vp[:-1, 0], ks[:-1], rtol=1e-15)
    assert vp[-1].tolist() == [1.0, 0.0]


def test_dpmsolver_grid_equals_diffusers_sigmas():
    d = _diffusers()
    s = DiscreteSchedule.scaled_linear()
    dpm = d.DPMSolverMultistepScheduler(beta_schedule="scaled_linear", **SD)
    dpm.set_timesteps(20)
    lv = timestep_levels(s, 20, convention="dpmsolver")
    ref = dpm.sigmas.numpy().astype(np.float64)
    assert ref[-1] == 0.0 and _rel(s.sigmas_edm[lv - 1][::-1], ref[:-1]) <= 1e-4
    t = dpm.timesteps.numpy()
    pairs = pairs_from_schedule(s, np.r_[0, lv])
    np.testing.assert_allclose(pairs[:-1, 0], dpm.alpha_t.numpy()[t], rtol=1e-5)
    np.testing.assert_allclose(pairs[:-1, 1], dpm.sigma_t.numpy()[t], rtol=1e-4)


# ------------------------------------------------------------------------------------------ bad inputs

LIN8 = DiscreteSchedule.linear(8, 1e-3, 0.2)

BAD = [
    (lambda: DiscreteSchedule.scaled_linear(K=0), "K must"),
    (lambda: DiscreteSchedule.scaled_linear(beta_1=0.0), "beta_1 must"),
    (lambda: DiscreteSchedule.sigmoid(beta_K=1.0), "beta_K must"),
    (lambda: DiscreteSchedule.squaredcos_cap_v2(K=1.5), "K must"),
    (lambda: DiscreteSchedule.from_alphas_cumprod([0.9, 0.95]), "alphas_cumprod must be strictly decreasing"),
    (lambda: DiscreteSchedule.from_alphas_cumprod([0.9, 0.0]), "alphas_cumprod must lie in"),
    (lambda: DiscreteSchedule.from_alphas_cumprod([[0.9]]), "alphas_cumprod must have shape"),
    (lambda: DiscreteSchedule.from_alphas_cumprod([0.9, np.nan]), "alphas_cumprod must be finite"),
    (lambda: DiscreteSchedule.from_alphas_cumprod("x"), "alphas_cumprod must be"),
    (lambda: LIN8.rescaled_zero_terminal_snr(terminal_alpha_bar=0.0), "terminal_alpha_bar"),
    (lambda: LIN8.rescaled_zero_terminal_snr(terminal_alpha_bar="a"), "terminal_alpha_bar"),
    (lambda: DiscreteSchedule.linear(1, 0.1).rescaled_zero_terminal_snr(), "K >= 2"),
    (lambda: LIN8.timestep_of_sigma(-1.0), "sigma_edm must be finite and >= 0"),
    (lambda: LIN8.timestep_of_sigma([1.0, np.inf]), "sigma_edm must be finite"),
    (lambda: LIN8.timestep_of_sigma("a"), "sigma_edm must be"),
    (lambda: LIN8.timestep_of_sigma(1.0, rounding="floor"), "rounding must be one of"),
    (lambda: LIN8.timestep_of_sigma(1.0, interpolation="cubic"), "interpolation must be one of"),
    (lambda: LIN8.timestep_of_sigma(torch.ones(2, dtype=torch.int64)), "sigma_edm must be a floating"),
    (lambda: levels_from_timesteps([0, 8], 8), "timesteps must lie in 0..7"),
    (lambda: levels_from_timesteps([0.5], 8), "timesteps must hold integer"),
    (lambda: timesteps_from_levels([0, 1], 8), "levels must lie in 1..8"),
    (lambda: timesteps_from_levels([1], 0), "n_steps must"),
    (lambda: timestep_levels(LIN8, 0), "steps must"),
    (lambda: timestep_levels(LIN8, 2, "uniform"), "spacing must be one of"),
    (lambda: timestep_levels(LIN8, 2, steps_offset=-1), "steps_offset must"),
    (lambda: timestep_levels(LIN8, 2, convention="karras"), "convention must be one of"),
    (lambda: timestep_levels(LIN8.betas, 2), "schedule must be a DiscreteSchedule"),
    (lambda: timestep_levels(LIN8, 9), "steps = 9"),
    (lambda: euler_sigmas(LIN8, 2, "leading", 7), "outside 0..7"),
    (lambda: diffusers_timesteps(0, 2), "n_train must"),
    (lambda: LIN8.spaced_levels(9), "steps must be <= K"),
    (lambda: exponential_sigmas(1, 0.1, 1.0), "n must"),
    (lambda: exponential_sigmas(4, 0.0, 1.0), "sigma_min must"),
    (lambda: exponential_sigmas(4, 2.0, 1.0), "sigma_max must exceed"),
    (lambda: polyexponential_sigmas(4, 0.1, 1.0, rho=0.0), "rho must"),
    (lambda: polyexponential_sigmas(4, 0.1, np.inf), "sigma_max must be finite"),
    (lambda: vp_pairs([1.0]), "sigmas_edm must be a 1-D array of at least 2"),
    (lambda: vp_pairs([1.0, 2.0]), "sigmas_edm must be strictly decreasing"),
    (lambda: vp_pairs([1.0, 0.0, 0.0]), "sigmas_edm must be > 0"),
    (lambda: vp_pairs([1.0, np.nan]), "sigmas_edm must be finite"),
    (lambda: vp_pairs("ab"), "sigmas_edm must be"),
    (lambda: pairs_from_schedule(LIN8, [3]), "levels must hold at least 2"),
    (lambda: pairs_from_schedule(LIN8, [3, 2]), "levels must be strictly increasing"),
    (lambda: pairs_from_schedule(LIN8, [0, 9]), "levels must lie in 0..8"),
    (lambda: pairs_from_schedule(None, [0, 1]), "schedule must be a DiscreteSchedule"),
]


@pytest.mark.parametrize(("call", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(SDEKitError, match=match):
        call()


def test_float_timestep_lookup_equals_the_array_path_to_the_bit():
    """The fast path for one Python float (a sampler's level) gives the array path's numbers exactly."""
    sched = DiscreteSchedule.scaled_linear(1000)
    rng = np.random.default_rng(3)
    queries = np.concatenate([sched.sigmas_edm[[0, 1, 500, 998, 999]], np.exp(rng.uniform(-6, 6, 200))])
    for interpolation in ("log", "linear"):
        fast = [sched.timestep_of_sigma(float(q), interpolation=interpolation) for q in queries]
        slow = sched.timestep_of_sigma(queries, interpolation=interpolation)
        assert np.array_equal(np.array(fast), slow)
    assert sched.timestep_of_sigma(float(sched.sigmas_edm[500])) == 500.0
