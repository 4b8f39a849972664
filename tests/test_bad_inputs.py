"""Bad input to the core API (simulate, SDE/ODE, user functions, Solution, solver choice) raises SDEKitError with a
message naming the argument: never a raw NumPy/Numba exception, never a silently wrong result.

Each case is (id, a call that triggers it, the exception type, a regex the message must match; the regex names the
argument). The other areas keep their lists in tests/test_bad_inputs_<area>.py. A hypothesis test below generates
malformed shapes, dtypes and values for simulate on top of the fixed list.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdekit
from sdekit import IncompatibleSolverError, SDEKitError
from sdekit.solvers import compatible_solvers
from tests.problems import ADDITIVE, DIAGONAL, DIAGONAL_STRAT, GENERAL

X0 = np.array([0.3, -0.2, 0.5])
OK = dict(x0=X0, t=(0.0, 1.0), steps=4, n_paths=3, seed=0)
ODE = sdekit.ODE(lambda x, t, p: -1.0 * x, dim=1)


def sim(problem=DIAGONAL, **kw):
    args = {**OK, **kw}
    for name in [k for k, v in args.items() if v is _DROP]:
        args.pop(name)
    return lambda: sdekit.simulate(problem, args.pop("x0"), args.pop("t"), **args)


_DROP = object()


def sde(drift=None, diffusion=None, dim=1, **kw):
    return sdekit.SDE(drift or (lambda x, t, p: -1.0 * x), diffusion or (lambda x, t, p: 0.5), dim=dim, **kw)


def one_d(**kw):
    return sim(sde(**kw), x0=0.2)


def _plain_helper(x):
    return 2.0 * x


def _solution():
    return sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=4, n_paths=3, seed=0, save_at=[0.5, 1.0])


CASES = [
    # x0
    ("x0-complex-array", sim(x0=np.array([1 + 2j, 0.0, 0.0])), SDEKitError, r"x0 is complex"),
    ("x0-complex-scalar", sim(x0=1j), SDEKitError, r"x0 is complex"),
    ("x0-strings", sim(x0=np.array(["1", "2", "3"])), SDEKitError, r"x0 must hold real numbers"),
    ("x0-none", sim(x0=None), SDEKitError, r"x0 must hold real numbers"),
    ("x0-object", sim(x0=[object(), 1.0, 2.0]), SDEKitError, r"x0 must"),
    ("x0-zero-rows", sim(x0=np.zeros((0, 3)), n_paths=_DROP), SDEKitError, r"x0 has 0 rows"),
    ("x0-3d", sim(x0=np.zeros((2, 2, 2)), n_paths=_DROP), SDEKitError,
     r"x0 has shape \(2, 2, 2\); .*prod\(shape\) = 3"),
    ("x0-wrong-dim", sim(x0=np.zeros(4)), SDEKitError, r"x0 has shape \(4,\) but dim = 3"),
    ("x0-inf", sim(x0=np.array([np.inf, 0.0, 0.0])), SDEKitError, r"x0 must be finite"),
    ("x0-rows-vs-n_paths", sim(x0=np.zeros((2, 3)), n_paths=5), SDEKitError, r"n_paths"),
    # path and step counts
    ("n_paths-zero", sim(n_paths=0), SDEKitError, r"n_paths must be"),
    ("n_paths-negative", sim(n_paths=-5), SDEKitError, r"n_paths must be"),
    ("n_paths-float", sim(n_paths=2.5), SDEKitError, r"n_paths must be"),
    ("n_paths-bool", sim(n_paths=True), SDEKitError, r"n_paths must be"),
    ("steps-huge", sim(steps=10**12), SDEKitError, r"steps = 1000000000000: a time grid of .* TiB.*max_save_bytes"),
    ("steps-float", sim(steps=2.5), SDEKitError, r"steps must be"),
    ("steps-string", sim(steps="10"), SDEKitError, r"steps must be"),
    ("steps-zero", sim(steps=0), SDEKitError, r"steps must be"),
    ("dt-tiny", sim(steps=_DROP, dt=1e-300), SDEKitError, r"dt = 1e-300 .* steps; use a larger dt"),
    ("dt-small-grid-too-big", sim(steps=_DROP, dt=1e-12), SDEKitError, r"dt = 1e-12 over .* TiB"),
    ("dt-nan", sim(steps=_DROP, dt=float("nan")), SDEKitError, r"dt must be finite"),
    ("dt-zero", sim(steps=_DROP, dt=0.0), SDEKitError, r"dt must be positive"),
    ("steps-and-dt", sim(dt=0.1), SDEKitError, r"steps or dt, not both"),
    # memory cap, progress, seeds, threads
    ("max_save_bytes-string", sim(max_save_bytes="1GB"), SDEKitError, r"max_save_bytes must be"),
    ("max_save_bytes-negative", sim(max_save_bytes=-1), SDEKitError, r"max_save_bytes must be"),
    ("max_save_bytes-float", sim(max_save_bytes=1.5e9), SDEKitError, r"max_save_bytes must be"),
    ("max_save_bytes-too-small", sim(max_save_bytes=10), SDEKitError, r"above the (memory )?cap .*\(max_save_bytes\)"),
    ("progress-string", sim(progress="yes"), SDEKitError, r"progress must be"),
    ("seed-too-large", sim(seed=2**64), SDEKitError, r"seed must be"),
    ("seed-float", sim(seed=1.5), SDEKitError, r"seed must be"),
    ("seed-string", sim(seed="7"), SDEKitError, r"seed must be"),
    ("threads-too-many", sim(threads=10**6), SDEKitError, r"threads must be"),
    ("chunk_size-zero", sim(chunk_size=0), SDEKitError, r"chunk_size must be"),
    ("noise_substeps-negative", sim(noise_substeps=-1), SDEKitError, r"noise_substeps must be"),
    ("on_nonfinite-none", sim(on_nonfinite=None), SDEKitError, r"on_nonfinite must be"),
    # time grid and saves
    ("save_at-word", sim(save_at="all"), SDEKitError, r"save_at must be"),
    ("save_at-empty", sim(save_at=[]), SDEKitError, r"save_at must be"),
    ("save_at-nan", sim(save_at=[float("nan")]), SDEKitError, r"save_at must be"),
    ("t-nan-end", sim(t=(0.0, float("nan"))), SDEKitError, r"t\[1\] must be finite"),
    ("t-string", sim(t="abc", steps=_DROP), SDEKitError, r"t must be"),
    ("t-2d-grid", sim(t=np.zeros((2, 2)), steps=_DROP), SDEKitError, r"t must be"),
    ("t-one-point", sim(t=[0.0], steps=_DROP), SDEKitError, r"t must be"),
    ("t-grid-with-steps", sim(t=[0.0, 0.5, 1.0]), SDEKitError, r"steps and dt are implied by an explicit grid t"),
    # solver, dtype, backend, problem
    ("solver-int", sim(solver=5), SDEKitError, r"solver must be one of"),
    ("dtype-int32", sim(dtype="int32"), SDEKitError, r"dtype must be"),
    ("backend-unknown", sim(backend="jax"), SDEKitError, r"backend must be one of"),
    ("device-on-numba", sim(device="cpu"), SDEKitError, r"device and adjoint are options of backend='torch'"),
    ("problem-not-sde", lambda: sdekit.simulate(lambda x: x, 0.0, (0.0, 1.0), steps=2), SDEKitError,
     r"problem must be an sdekit.SDE or sdekit.ODE"),
    ("milstein-general-noise", sim(GENERAL, solver="milstein"), IncompatibleSolverError,
     r"'milstein' supports noise types .* noise='general'; choose one of "
     + re.escape(str(compatible_solvers(GENERAL)))),
    ("sra1-diagonal-noise", sim(DIAGONAL, solver="sra1"), IncompatibleSolverError, r"'sra1'.*choose one of"),
    ("em-stratonovich", sim(DIAGONAL_STRAT, solver="euler_maruyama"), IncompatibleSolverError,
     r"calculus='stratonovich'.*choose one of " + re.escape(str(compatible_solvers(DIAGONAL_STRAT)))),
    # adaptive ODE options
    ("rtol-negative", sim(ODE, x0=1.0, steps=_DROP, solver="dopri5", rtol=-1.0), SDEKitError, r"rtol must be"),
    ("atol-nan", sim(ODE, x0=1.0, steps=_DROP, solver="dopri5", atol=float("nan")), SDEKitError, r"atol must be"),
    ("dt0-negative", sim(ODE, x0=1.0, steps=_DROP, solver="dopri5", dt0=-1.0), SDEKitError, r"dt0 must be"),
    ("max_steps-zero", sim(ODE, x0=1.0, steps=_DROP, solver="dopri5", max_steps=0), SDEKitError, r"max_steps"),
    ("steps-with-adaptive", sim(ODE, x0=1.0, solver="dopri5"), SDEKitError, r"adaptive; give rtol/atol"),
    ("sde-solver-for-ode", sim(ODE, x0=1.0, solver="milstein"), SDEKitError, r"solver must be one of .* ODE"),
    # the specification
    ("dim-zero", lambda: sde(dim=0), SDEKitError, r"dim must be a positive integer"),
    ("dim-float", lambda: sde(dim=2.5), SDEKitError, r"dim must be a positive integer"),
    ("dim-string", lambda: sde(dim="3"), SDEKitError, r"dim must be a positive integer"),
    ("noise-unknown", lambda: sde(noise="multiplicative"), SDEKitError, r"noise must be one of"),
    ("calculus-unknown", lambda: sde(calculus="ito2"), SDEKitError, r"calculus must be one of"),
    ("params-nan", lambda: sde(params=[1.0, float("nan")]), SDEKitError, r"params\[1\] must be finite"),
    ("params-2d", lambda: sde(params=np.eye(2)), SDEKitError, r"params as an array must be 1-D"),
    ("params-string", lambda: sde(params="abc"), SDEKitError, r"params must be"),
    ("params-tuple-inf", lambda: sde(params=(np.eye(2), np.inf)), SDEKitError, r"params\[1\] must be finite"),
    ("brownian_dim-diagonal", lambda: sde(brownian_dim=2), SDEKitError, r"brownian_dim is set by noise"),
    ("brownian_dim-zero", lambda: sde(noise="general", brownian_dim=0), SDEKitError, r"brownian_dim must be"),
    ("drift-not-callable", lambda: sdekit.SDE(3.0, lambda x, t, p: 1.0, dim=1), SDEKitError,
     r"drift must be callable"),
    ("diffusion-not-callable", lambda: sdekit.SDE(lambda x, t, p: x, None, dim=1), SDEKitError,
     r"diffusion must be callable"),
    ("field-not-callable", lambda: sdekit.ODE("f", dim=1), SDEKitError, r"field must be callable"),
    ("ode-dim-negative", lambda: sdekit.ODE(lambda x, t, p: x, dim=-1), SDEKitError, r"dim must be"),
    # what the user's functions do (found by the probe, before anything compiles)
    ("drift-wrong-shape", one_d(drift=lambda x, t, p: np.zeros((x.shape[0], 2))), SDEKitError,
     r"drift returned shape \(2, 2\) for x of shape \(2, 1\)"),
    ("diffusion-matrix-wrong-shape", sim(sdekit.SDE(lambda x, t, p: -1.0 * x, lambda x, t, p: np.ones((3, 3)), dim=3,
                                                    noise="general", brownian_dim=2)), SDEKitError,
     r"diffusion returned shape \(3, 3\).*must be \(3, 2\)"),
    ("drift-nan", one_d(drift=lambda x, t, p: np.full(x.shape, np.nan)), SDEKitError,
     r"drift\(x0, t0\) is not finite"),
    ("diffusion-inf-from-division", one_d(diffusion=lambda x, t, p: 1.0 / (x - x)), SDEKitError,
     r"diffusion\(x0, t0\) is not finite"),
    ("drift-complex", one_d(drift=lambda x, t, p: 1j * x), SDEKitError, r"drift returned complex values"),
    ("drift-strings", one_d(drift=lambda x, t, p: np.array(["a"])), SDEKitError, r"drift returned values of dtype"),
    ("drift-reads-past-params", one_d(drift=lambda x, t, p: -p[1] * x, params=[1.0]), SDEKitError,
     r"drift reads past the end .*params has 1 entries"),
    ("diffusion-reads-past-tuple", one_d(diffusion=lambda x, t, p: p[2], params=(np.eye(1), 1.0)), SDEKitError,
     r"diffusion reads past the end .*params is a tuple of 2 entries"),
    ("drift-writes-x", one_d(drift=lambda x, t, p: x.__imul__(2.0).copy()), SDEKitError,
     r"drift writes into its input x"),
    ("drift-returns-view", one_d(drift=lambda x, t, p: x[:, :]), SDEKitError, r"drift returned a view of x"),
    ("additive-depends-on-x", one_d(diffusion=lambda x, t, p: 1.0 + x * 0.1, noise="additive"), SDEKitError,
     r"noise='additive' but the diffusion changes with x"),
    ("drift-divides-by-zero", one_d(drift=lambda x, t, p: x * (1 // 0)), SDEKitError,
     r"drift could not be evaluated.*division by zero"),
    ("drift-two-arguments", one_d(drift=lambda x, t: -1.0 * x), SDEKitError, r"drift could not be evaluated"),
    ("drift-plain-helper", one_d(drift=lambda x, t, p: -_plain_helper(x)), SDEKitError,
     r"drift could not be evaluated.*Untyped global name '_plain_helper'"),
    ("drift-unsupported-object", one_d(drift=lambda x, t, p: {"a": x}["a"] * math.nan), SDEKitError,
     r"drift"),
    # Solution
    ("at-not-a-save-time", lambda: _solution().at(0.3), SDEKitError, r"t = 0.3 is not a save time"),
    ("at-not-a-number", lambda: _solution().at("end"), SDEKitError, r"t must be a number"),
    ("summary-levels", lambda: _solution().summary(levels=(1.5,)), SDEKitError, r"levels must be quantile levels"),
    ("plot-dim", lambda: _solution().plot(dim=5), SDEKitError, r"dim must be an integer in \[0, 2\]"),
    ("plot-n_paths", lambda: _solution().plot(n_paths=0), SDEKitError, r"n_paths must be an integer >= 1"),
]


def test_case_ids_are_distinct():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 90


@pytest.mark.parametrize("name, trigger, kind, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error_naming_the_argument(name, trigger, kind, pattern):
    with pytest.raises(kind, match=pattern) as info:
        trigger()
    assert "Traceback" not in str(info.value)


TORCH_CASES = [
    ("threads-on-torch", dict(threads=2), r"threads is an option of backend='numba'"),
    ("chunk_size-on-torch", dict(chunk_size=64), r"chunk_size is an option of backend='numba'"),
    ("adjoint-not-bool", dict(adjoint="yes"), r"adjoint must be True or False"),
    ("steps-huge-on-torch", dict(steps=10**12), r"steps = 1000000000000: a time grid"),
    ("max_save_bytes-on-torch", dict(max_save_bytes=-3), r"max_save_bytes must be"),
]


def test_a_torch_score_on_the_numba_backend_is_sent_to_the_torch_backend():
    torch = pytest.importorskip("torch")
    from sdekit.diffusion import ForwardSDE, reverse_sde

    net = torch.nn.Linear(2, 2).double()
    sde = reverse_sde(ForwardSDE.vp(), lambda x, t: net(x), 2)
    with pytest.raises(SDEKitError, match=r"drift works on torch tensors .*backend='torch'"):
        sdekit.simulate(sde, np.zeros(2), (1.0, 0.01), steps=10, n_paths=4)


@pytest.mark.parametrize("name, extra, pattern", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_bad_torch_backend_input_names_the_argument(name, extra, pattern):
    pytest.importorskip("torch")
    with pytest.raises(SDEKitError, match=pattern):
        sdekit.simulate(ADDITIVE, X0, (0.0, 1.0), **{"steps": 4, "n_paths": 2, "backend": "torch", **extra})


# ------------------------------------------------------------------ generated malformed inputs (hypothesis)

_bad_x0 = st.one_of(
    st.integers(0, 4).filter(lambda d: d != 3).map(lambda d: np.zeros(d)),  # wrong length
    st.tuples(st.integers(0, 3), st.integers(0, 5)).filter(lambda s: s[1] != 3 or s[0] == 0).map(np.zeros),
    st.sampled_from([np.nan, np.inf, -np.inf]).map(lambda v: np.array([0.0, v, 0.0])),
    st.complex_numbers(allow_nan=False, allow_infinity=False).filter(lambda z: z.imag != 0).map(
        lambda z: np.array([z, 0, 0])),
    st.text(max_size=3).map(lambda s: np.array([s] * 3)),
    st.integers(1, 3).map(lambda k: np.zeros((1,) * k + (3, 2))),  # (n, *shape) with prod(shape) != dim
)
_bad_counts = st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=2), st.just(True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x0=_bad_x0)
def test_generated_malformed_x0_is_refused_naming_x0(x0):
    with pytest.raises(SDEKitError, match=r"x0"):
        sdekit.simulate(DIAGONAL, x0, (0.0, 1.0), steps=2, seed=0)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["n_paths", "steps", "noise_substeps", "seed", "threads", "chunk_size"]),
       value=_bad_counts)
def test_generated_malformed_counts_are_refused_naming_the_argument(name, value):
    if name == "seed" and isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return  # seed 0 is valid
    kwargs = {**OK, name: value}
    with pytest.raises(SDEKitError, match=name):
        sdekit.simulate(DIAGONAL, kwargs.pop("x0"), kwargs.pop("t"), **kwargs)


@settings(max_examples=40, deadline=None)
@given(t=st.one_of(
    st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True)).filter(
        lambda s: not (math.isfinite(s[0]) and math.isfinite(s[1]) and s[0] != s[1])),
    st.lists(st.floats(-5, 5), min_size=3, max_size=6).filter(
        lambda g: not (np.all(np.diff(g) > 0) or np.all(np.diff(g) < 0)))))
def test_generated_malformed_time_spans_are_refused_naming_t(t):
    steps = 4 if isinstance(t, tuple) else None
    with pytest.raises(SDEKitError, match=r"\bt\b|t\[|t0"):
        sdekit.simulate(DIAGONAL, X0, t, steps=steps, n_paths=2, seed=0)


@pytest.mark.parametrize("problem", [GENERAL, DIAGONAL, DIAGONAL_STRAT],
                         ids=["general", "diagonal-ito", "diagonal-stratonovich"])
def test_every_suggested_solver_runs_the_problem(problem):
    """A refusal suggests compatible_solvers(problem) (tests/test_errors.py checks the hint is exactly that list): each
    of them must actually run it (2 steps, or rtol 1e-2 for the adaptive ones; finite)."""
    names = compatible_solvers(problem)
    assert names
    for name in names:
        grid = {"rtol": 1e-2} if sdekit.SDE_SOLVERS[name].adaptive else {"steps": 2}
        sol = sdekit.simulate(problem, np.full(problem.dim, 0.1), (0.0, 0.1), n_paths=3, solver=name, **grid)
        assert np.all(np.isfinite(sol.final)), name
