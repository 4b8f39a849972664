"""Bad input to the MCMC samplers and user energies: each gets an SDEKitError naming the argument (or the
energy function) and what was expected, before anything is compiled for the run.

Each case is (id, call, exception type, regex the message must match; the regex names the argument). The
malformed energies are probed once (`sdekit.targets.energy.probe_energy`): at construction of an
`EnergyTarget`, and before every compiled run for any target. A second list holds inputs that are handled
correctly instead (a list of params becomes a tuple; a plain Python energy is compiled).
"""

from __future__ import annotations

import warnings

import numba as nb
import numpy as np
import pytest

from sdekit.errors import SDEKitError, SDEKitWarning
from sdekit.mcmc import hmc, mala, replica_exchange, rwm, simulated_annealing, ula, underdamped_langevin
from sdekit.mcmc.defects import planted
from sdekit.targets import Gaussian
from sdekit.targets.energy import EnergyTarget

TARGET = Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]])
P = (np.array([1.0]),)


@nb.njit
def only_x(x):
    return 0.5 * np.sum(x * x)


@nb.njit
def x_and_p(x, p):
    return 0.5 * np.sum(x * x)


@nb.njit
def returns_array(x, p, grad):
    grad[:] = x
    return 0.5 * x * x


@nb.njit
def returns_tuple(x, p, grad):
    return 0.5 * np.sum(x * x), x


@nb.njit
def returns_nothing(x, p, grad):
    grad[:] = x


@nb.njit
def returns_complex(x, p, grad):
    grad[:] = x
    return 0.5 * np.sum(x * x) + 1j


@nb.njit
def returns_bool(x, p, grad):
    grad[:] = x
    return x[0] > 0.0


@nb.njit
def writes_past_grad(x, p, grad):
    for i in range(x.shape[0] + 1):
        grad[i] = 1.0
    return 0.0


@nb.njit
def never_writes_grad(x, p, grad):
    return 0.5 * np.sum(x * x)


@nb.njit
def adds_to_grad(x, p, grad):
    for i in range(x.shape[0]):
        grad[i] += x[i]
    return 0.5 * np.sum(x * x)


@nb.njit
def writes_into_x(x, p, grad):
    grad[:] = x
    x[0] = 0.0
    return 0.5 * np.sum(x * x)


@nb.njit
def raises(x, p, grad):
    raise ValueError("no energy here")


@nb.njit
def reads_past_params(x, p, grad):
    grad[:] = x
    return p[0][3] * np.sum(x * x)


@nb.njit
def quadratic(x, p, grad):
    for i in range(x.shape[0]):
        grad[i] = p[0][0] * x[i]
    return 0.5 * p[0][0] * np.sum(x * x)


def not_jitted_helper(v):
    return v


def untyped(x, p, grad):  # a plain function calling a plain (not njit) helper: Numba cannot type it
    grad[:] = x
    return not_jitted_helper(x[0])


class NoGradTarget:
    """A custom target class (not an EnergyTarget): its energy is probed before the run."""

    def __init__(self):
        self.dim, self.params, self.energy_fn = 2, P, never_writes_grad


class MethodTarget:
    """energy_fn set as a class attribute: Numba's dispatcher binds it to the instance like a method."""

    dim = 2
    params = (np.array([4.0]),)
    energy_fn = quadratic


def e(fn, params=P, dim=2):
    return lambda: EnergyTarget(fn, dim, params)


ENERGY_CASES = [
    ("energy(x)", e(only_x), SDEKitError, r"energy_fn must take three arguments \(x, p, grad\).*only_x\(x\)"),
    ("energy(x, p)", e(x_and_p), SDEKitError, r"energy_fn must take three arguments .*x_and_p\(x, p\)"),
    ("returns an array", e(returns_array), SDEKitError, r"energy_fn must return U\(x\), a real scalar.*ndarray"),
    ("returns a tuple", e(returns_tuple), SDEKitError, r"energy_fn must return U\(x\), a real scalar.*tuple"),
    ("returns None", e(returns_nothing), SDEKitError, r"energy_fn must return U\(x\).*None"),
    ("returns complex", e(returns_complex), SDEKitError, r"energy_fn must return U\(x\), a real.*complex"),
    ("returns bool", e(returns_bool), SDEKitError, r"energy_fn must return U\(x\), a real number; .*bool"),
    ("writes past grad", e(writes_past_grad), SDEKitError, r"energy_fn wrote past the end of grad.*\(2,\)"),
    ("never writes grad", e(never_writes_grad), SDEKitError, r"energy_fn must write grad U\(x\) into every entry"),
    ("adds to grad", e(adds_to_grad), SDEKitError, r"energy_fn must write .* grad\[0\] unset or added to"),
    ("writes into x", e(writes_into_x), SDEKitError, r"energy_fn must not write into its input x.*x\[0\]"),
    ("raises", e(raises), SDEKitError, r"energy_fn raised ValueError at x = .*no energy here"),
    ("reads past params", e(reads_past_params), SDEKitError, r"energy_fn indexed past the end.*params \(array"),
    ("does not compile", e(untyped), SDEKitError,
     r"energy_fn could not be compiled for x float64\[2\], .*Untyped global name 'not_jitted_helper'"),
    ("not callable", e(3.0), SDEKitError, r"energy_fn must be callable"),
    ("dim 0", e(quadratic, dim=0), SDEKitError, r"dim must be an integer >= 1"),
    ("dim 2.5", e(quadratic, dim=2.5), SDEKitError, r"dim must be an integer >= 1"),
    ("params a str", e(quadratic, params="abc"), SDEKitError, r"params must be a tuple of float64 arrays"),
    ("params a dict", e(quadratic, params={"a": 1.0}), SDEKitError, r"params must be a tuple .* got dict"),
    ("params None", e(quadratic, params=None), SDEKitError, r"params must be a tuple .* got NoneType"),
    ("params complex", e(quadratic, params=(np.array([1j]),)), SDEKitError,
     r"params\[0\] must hold real numbers .* complex128"),
    ("params with text", e(quadratic, params=(np.array([1.0]), "x")), SDEKitError, r"params\[1\] must be a tuple"),
    ("custom target leaves grad unset", lambda: mala(NoGradTarget(), n_chains=2, n_draws=5), SDEKitError,
     r"energy_fn must write grad U\(x\) into every entry"),
    ("target without energy", lambda: mala(object()), SDEKitError, r"target must have an integer dim"),
]

M = dict(n_chains=2, n_draws=5, n_warmup=5)
ARGUMENT_CASES = [
    ("n_chains 0", lambda: mala(TARGET, n_chains=0), SDEKitError, r"n_chains must be an integer >= 1; got 0"),
    ("n_chains -1", lambda: mala(TARGET, n_chains=-1), SDEKitError, r"n_chains must be an integer >= 1; got -1"),
    ("n_chains 2.5", lambda: hmc(TARGET, n_chains=2.5), SDEKitError, r"n_chains must be an integer >= 1; got 2\.5"),
    ("n_chains True", lambda: rwm(TARGET, n_chains=True), SDEKitError, r"n_chains must be an integer"),
    ("n_draws 0", lambda: ula(TARGET, step_size=0.1, n_draws=0), SDEKitError, r"n_draws must be an integer >= 1"),
    ("n_warmup -1", lambda: mala(TARGET, n_warmup=-1), SDEKitError, r"n_warmup must be an integer >= 0"),
    ("thin 0", lambda: mala(TARGET, thin=0), SDEKitError, r"thin must be an integer >= 1"),
    ("step_size nan", lambda: mala(TARGET, step_size=np.nan), SDEKitError, r"step_size must be positive and finite"),
    ("step_size -1", lambda: hmc(TARGET, step_size=-1.0), SDEKitError, r"step_size must be positive and finite"),
    ("step_size 0", lambda: rwm(TARGET, step_size=0.0), SDEKitError, r"step_size must be positive and finite"),
    ("step_size inf", lambda: ula(TARGET, step_size=np.inf), SDEKitError, r"step_size must be positive and finite"),
    ("step_size str", lambda: mala(TARGET, step_size="0.1"), SDEKitError, r"step_size must be a positive number"),
    ("step_size complex", lambda: mala(TARGET, step_size=0.1 + 0.1j), SDEKitError, r"step_size must be a positive"),
    ("step_size per chain, wrong length", lambda: mala(TARGET, step_size=[0.1, 0.2, 0.3], n_chains=2), SDEKitError,
     r"step_size must be .* shape \(n_chains,\) = \(2,\)"),
    ("x0 wrong length", lambda: mala(TARGET, x0=np.zeros(3)), SDEKitError, r"x0 must have shape \(2,\) or"),
    ("x0 wrong chain count", lambda: hmc(TARGET, n_chains=4, x0=np.zeros((3, 2))), SDEKitError,
     r"x0 must have shape .*\(4, 2\); got \(3, 2\)"),
    ("x0 complex", lambda: mala(TARGET, x0=np.array([1 + 1j, 0.0])), SDEKitError, r"x0 must be real"),
    ("x0 nan", lambda: rwm(TARGET, x0=[np.nan, 0.0]), SDEKitError, r"x0 must be finite"),
    ("x0 unknown word", lambda: mala(TARGET, x0="prior"), SDEKitError, r"x0 must be None, 'target' or an array"),
    ("x0 text array", lambda: mala(TARGET, x0=["a", "b"]), SDEKitError, r"x0 must be numeric"),
    ("x0='target' without sample()", lambda: mala(EnergyTarget(quadratic, 2, P), x0="target"), SDEKitError,
     r"x0='target' needs exact sampling"),
    ("target_accept 0", lambda: mala(TARGET, target_accept=0.0), SDEKitError, r"target_accept must be > 0"),
    ("target_accept 1", lambda: hmc(TARGET, target_accept=1.0), SDEKitError, r"target_accept must be in \(0, 1\)"),
    ("target_accept nan", lambda: rwm(TARGET, target_accept=np.nan), SDEKitError, r"target_accept must be finite"),
    ("seed -1", lambda: mala(TARGET, seed=-1), SDEKitError, r"seed"),
    ("adapt 'yes'", lambda: mala(TARGET, adapt="yes"), SDEKitError, r"adapt must be True or False"),
    ("on_nonfinite unknown", lambda: hmc(TARGET, on_nonfinite="ignore"), SDEKitError,
     r"on_nonfinite must be one of \('warn', 'reject', 'raise'\)"),
    ("on_nonfinite unknown (tempering)", lambda: simulated_annealing(TARGET, on_nonfinite=1), SDEKitError,
     r"on_nonfinite must be one of"),
    ("n_leapfrog 0", lambda: hmc(TARGET, n_leapfrog=0), SDEKitError, r"n_leapfrog must be an integer >= 1"),
    ("n_leapfrog 1.5", lambda: hmc(TARGET, n_leapfrog=1.5), SDEKitError, r"n_leapfrog must be an integer >= 1"),
    ("divergence_threshold -1", lambda: hmc(TARGET, divergence_threshold=-1.0), SDEKitError,
     r"divergence_threshold must be > 0"),
    ("divergence_threshold text", lambda: hmc(TARGET, divergence_threshold="big"), SDEKitError,
     r"divergence_threshold must be a real number"),
    ("mass negative", lambda: hmc(TARGET, mass=[1.0, -1.0]), SDEKitError, r"mass \(diagonal\) must be positive"),
    ("mass complex", lambda: hmc(TARGET, mass=[1.0 + 1j, 1.0]), SDEKitError, r"mass must be .* of reals"),
    ("mass wrong shape", lambda: hmc(TARGET, mass=np.eye(3)), SDEKitError, r"mass must be None, a \(2,\) diagonal"),
    ("proposal unknown", lambda: rwm(TARGET, proposal="cauchy"), SDEKitError, r"proposal must be one of"),
    ("proposal_cov not SPD", lambda: rwm(TARGET, proposal_cov=[[1.0, 2.0], [2.0, 1.0]]), SDEKitError,
     r"proposal_cov"),
    ("friction 0", lambda: underdamped_langevin(TARGET, step_size=0.1, friction=0.0), SDEKitError, r"friction"),
    ("scheme unknown", lambda: underdamped_langevin(TARGET, step_size=0.1, scheme="abo"), SDEKitError, r"scheme"),
    ("p0 wrong shape", lambda: underdamped_langevin(TARGET, step_size=0.1, p0=np.zeros(3)), SDEKitError,
     r"p0 must have shape"),
    ("betas not ending at 1", lambda: replica_exchange(TARGET, betas=[0.1, 0.5]), SDEKitError, r"betas must end at 1"),
    ("replica step_size text", lambda: replica_exchange(TARGET, step_size="x"), SDEKitError,
     r"step_size must be a positive number"),
    ("n_draws too many to store", lambda: mala(TARGET, n_draws=10 ** 13), SDEKitError,
     r"n_draws .* would need .* GiB"),
    ("planted: unknown sampler", lambda: planted("no_u_turn", "x"), SDEKitError, r"sampler must be one of"),
    ("planted: unknown defect", lambda: planted("mala", "typo"), SDEKitError,
     r"defect must be one of \['no_proposal_correction', 'reversed_proposal_correction'\] for mala"),
    ("planted: unknown keyword", lambda: planted("hmc", "no_kinetic_energy")(TARGET, defect=1), SDEKitError,
     r"hmc takes \[.*'step_size'.*\]"),
]


@pytest.mark.parametrize("case, call, exc, regex", ENERGY_CASES + ARGUMENT_CASES,
                         ids=[c[0] for c in ENERGY_CASES + ARGUMENT_CASES])
def test_bad_input_gets_a_clear_error_naming_the_argument(case, call, exc, regex):
    with pytest.raises(exc, match=regex):
        call()


def test_handled_correctly():
    """Inputs that are not wrong, only unusual: a list of params (Numba would pass it as a deprecated reflected
    list) becomes a tuple, a plain Python energy is compiled, an njit energy set as a class attribute (read as a
    bound method) is unbound; they sample the right law with no library warning."""
    def plain(x, p, grad):
        for i in range(x.shape[0]):
            grad[i] = p[0] * x[i]
        return 0.5 * p[0] * (x[0] * x[0] + x[1] * x[1])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", SDEKitWarning)
        listed = EnergyTarget(quadratic, 2, [np.array([4.0])])
        assert isinstance(listed.params, tuple)
        res = mala(listed, n_chains=4, n_draws=2000, n_warmup=500, seed=1)
        pythonic = EnergyTarget(plain, 2, [4.0])
        assert pythonic.params == (4.0,)
        assert pythonic.energy(np.ones((1, 2)))[0] == 4.0
        unbound = mala(MethodTarget(), n_chains=4, n_draws=2000, n_warmup=500, seed=1)
    assert abs(res.flat.var() - 0.25) < 0.03  # N(0, I / 4): measured 0.247
    np.testing.assert_array_equal(unbound.samples, res.samples)  # the same energy and params (4.0)
