#!/usr/bin/env python
"""The JAX and diffrax peers of benchmarks/throughput.py, run as a worker process in JAX's own environment.

throughput.py (sdekit's environment, no jax) starts this script with the python of an environment that has jax and
diffrax (``--jax-python``) and sends it one JSON request per line on stdin; each answer is one JSON line on stdout.
The worker's runs are timed here (kernel seconds: the jitted call to ``block_until_ready``; compile seconds apart)
and interleaved by throughput.py with the sdekit cases of the same group, so ratios compare runs under the same load.

Implementations (float64, ``jax_enable_x64``; one jitted function per (implementation, problem, N, steps)):
  jax_scan        ``jax.lax.scan`` over the steps of one path, ``jax.vmap`` over paths, a threefry key per path
                  (Euler-Maruyama X += f(X) h + sqrt(2) sqrt(h) Z; RK4 for the probability-flow ODE);
  diffrax_unsafe  ``diffrax.diffeqsolve`` with ``diffrax.Euler`` on ODETerm + ControlTerm (diagonal sqrt 2),
                  ``UnsafeBrownianPath``, fixed dt = h, final state only, ``adjoint=ForwardMode()`` (no gradients
                  are taken; UnsafeBrownianPath refuses the default adjoint), vmapped over paths;
  diffrax_vbt     the same with ``VirtualBrownianTree(t0, t1, tol=h)`` (tol has no default in diffrax 0.7.2; h, the
                  step, is the value of diffrax's own examples).

Requests: {"cmd": "versions"}; {"cmd": "setup", "problem": key, "npz": path} (the problem's arrays);
{"cmd": "run", "impl", "problem", "n", "steps", "seed"} -> {"kernel_s", "compile_s", "cpu_s", "final": stats};
{"cmd": "overhead", "impl", "problem", "steps", "calls"} -> per-call microseconds at N = 1 (new key and x0 per call);
{"cmd": "quit"}.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

SQRT2 = math.sqrt(2.0)
PROBLEMS: dict[str, dict] = {}
COMPILED: dict[tuple, tuple] = {}


# ---------------------------------------------------------------------------------------------------------------------
# Drifts of one path (x of shape (d,)).


def ou_drift(x, p):
    return -p["theta"] * x


def gmm_drift(x, p):
    """Score of sum_k w_k N(mu_k, P_k^{-1}): -sum_k softmax_k(c_k - r_k^T P_k r_k / 2) P_k r_k, r_k = x - mu_k."""
    r = x[None, :] - p["means"]  # (K, d)
    u = jnp.einsum("kij,kj->ki", p["precs"], r)
    w = jax.nn.softmax(p["c"] - 0.5 * jnp.sum(r * u, axis=1))
    return -(w @ u)


def pf_field(x, t, p):
    """Probability-flow ODE of the VP SDE on exact mixture data: dx/dt = f(t) x - g(t)^2 s_t(x) / 2, beta(t) =
    a + t (b - a), f = -beta / 2, g^2 = beta; p_t = sum_k pi_k N(alpha mu_k, Q_k diag(alpha^2 lam_k + sigma^2) Q_k^T),
    alpha = exp(-B / 2), B = a t + (b - a) t^2 / 2, sigma^2 = 1 - alpha^2 (sdekit.diffusion's schedule kernel)."""
    a, b = p["beta_min"], p["beta_max"]
    big_b = a * t + 0.5 * (b - a) * t * t
    alpha = jnp.exp(-0.5 * big_b)
    sig2 = -jnp.expm1(-big_b)
    e = alpha * alpha * p["lam"] + sig2  # (K, d)
    r = x[None, :] - alpha * p["mu"]
    y = jnp.einsum("kij,ki->kj", p["q"], r) / e  # diag(1/e) Q^T r
    quad = jnp.sum(y * y * e, axis=1)
    u = jnp.einsum("kij,kj->ki", p["q"], y)  # S^{-1} r
    logits = p["log_w"] - 0.5 * quad - 0.5 * jnp.sum(jnp.log(2.0 * math.pi * e), axis=1)
    score = -(jax.nn.softmax(logits) @ u)
    beta = a + t * (b - a)
    return -0.5 * beta * x - 0.5 * beta * score


def drift_of(problem: str):
    return ou_drift if problem == "ou" else gmm_drift


# ---------------------------------------------------------------------------------------------------------------------
# Builders: each returns fn(x0 (n, d), keys (n,)) -> final (n, d), jitted.


def build_scan(problem: str, steps: int, h: float):
    p = PROBLEMS[problem]
    if problem.startswith("pf"):
        t0, hh = p["t0"], p["h"]

        def one(x0, key):
            def body(x, i):
                t = t0 + i * hh
                k1 = pf_field(x, t, p)
                k2 = pf_field(x + 0.5 * hh * k1, t + 0.5 * hh, p)
                k3 = pf_field(x + 0.5 * hh * k2, t + 0.5 * hh, p)
                k4 = pf_field(x + hh * k3, t + hh, p)
                return x + hh / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

            return jax.lax.scan(body, x0, jnp.arange(steps))[0]
    else:
        drift = drift_of(problem)
        noise = SQRT2 * math.sqrt(h)

        def one(x0, key):
            def body(carry, _):
                x, k = carry
                k, sub = jax.random.split(k)
                x = x + drift(x, p) * h + noise * jax.random.normal(sub, x.shape, dtype=x.dtype)
                return (x, k), None

            return jax.lax.scan(body, (x0, key), None, length=steps)[0][0]

    return jax.jit(jax.vmap(one))


def build_diffrax(problem: str, steps: int, h: float, tree: bool):
    import diffrax
    import lineax

    p = PROBLEMS[problem]
    drift = drift_of(problem)
    d = p["dim"]
    t1 = steps * h

    def one(x0, key):
        bm = (diffrax.VirtualBrownianTree(0.0, t1, tol=h, shape=(d,), key=key) if tree
              else diffrax.UnsafeBrownianPath(shape=(d,), key=key))
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(lambda t, y, args: drift(y, p)),
            diffrax.ControlTerm(lambda t, y, args: lineax.DiagonalLinearOperator(jnp.full((d,), SQRT2)), bm))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, h, x0, saveat=diffrax.SaveAt(t1=True),
                                  max_steps=steps + 2, adjoint=diffrax.ForwardMode())
        return sol.ys[0]

    return jax.jit(jax.vmap(one))


def compiled(impl: str, problem: str, n: int, steps: int) -> tuple:
    """(executable, compile seconds) for this shape, built and compiled once."""
    key = (impl, problem, n, steps)
    if key not in COMPILED:
        h = PROBLEMS[problem]["h"]
        fn = (build_scan(problem, steps, h) if impl == "jax_scan"
              else build_diffrax(problem, steps, h, impl == "diffrax_vbt"))
        x0, keys = inputs(problem, n, 0)
        t0 = time.perf_counter()
        exe = fn.lower(x0, keys).compile()
        COMPILED[key] = (exe, time.perf_counter() - t0)
    return COMPILED[key]


def inputs(problem: str, n: int, seed: int) -> tuple:
    p = PROBLEMS[problem]
    x0 = p["x0"][:n] if "x0" in p else np.zeros((n, p["dim"]))
    return jnp.asarray(x0), jax.random.split(jax.random.PRNGKey(seed), n)


def final_stats(y: np.ndarray) -> dict:
    return {"mean_x0": float(y[:, 0].mean()), "var_x0": float(y[:, 0].var()), "finite": bool(np.isfinite(y).all())}


# ---------------------------------------------------------------------------------------------------------------------
# Requests.


def do_setup(req: dict) -> dict:
    with np.load(req["npz"]) as z:
        arrs = {k: z[k] for k in z.files}
    p: dict = {"dim": int(arrs.pop("dim")), "h": float(arrs.pop("h"))}
    for k, v in arrs.items():
        p[k] = float(v) if v.ndim == 0 else jnp.asarray(v)
    if "x0" in p:
        p["x0"] = np.asarray(p["x0"])
    PROBLEMS[req["problem"]] = p
    return {"ok": True}


def do_run(req: dict) -> dict:
    exe, comp = compiled(req["impl"], req["problem"], req["n"], req["steps"])
    x0, keys = inputs(req["problem"], req["n"], req["seed"])
    c0, t0 = time.process_time(), time.perf_counter()
    y = exe(x0, keys).block_until_ready()
    t1, c1 = time.perf_counter(), time.process_time()
    out = {"kernel_s": t1 - t0, "cpu_s": c1 - c0, "compile_s": comp, "final": final_stats(np.asarray(y))}
    if req.get("save"):
        np.save(req["save"], np.asarray(y))
    return out


def do_overhead(req: dict) -> dict:
    """Median wall time of one call at N = 1 with a new x0 (NumPy, transferred by the call) and a new key (made
    before the timer) each call, result ready on return."""
    exe, comp = compiled(req["impl"], req["problem"], 1, req["steps"])
    d = PROBLEMS[req["problem"]]["dim"]
    calls = int(req["calls"])
    rng = np.random.default_rng(0)
    x0s = [rng.standard_normal((1, d)) for _ in range(calls)]
    keys = [jax.random.split(jax.random.PRNGKey(i), 1) for i in range(calls)]
    for i in range(min(calls, 20)):
        exe(jnp.asarray(x0s[i]), keys[i]).block_until_ready()
    times = []
    for x0, k in zip(x0s, keys, strict=True):
        t0 = time.perf_counter()
        exe(jnp.asarray(x0), k).block_until_ready()
        times.append(time.perf_counter() - t0)
    return {"median_us": 1e6 * statistics.median(times), "min_us": 1e6 * min(times), "calls": calls,
            "compile_s": comp}


def do_versions(req: dict) -> dict:
    import platform

    out = {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
           "devices": [str(d) for d in jax.devices()], "executable": sys.executable}
    for mod in ("jaxlib", "diffrax", "equinox", "lineax"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # diffrax is optional here too: the jax_scan peer runs without it
            out[mod] = None
    return out


HANDLERS = {"setup": do_setup, "run": do_run, "overhead": do_overhead, "versions": do_versions}


def main() -> int:
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            ans = HANDLERS[req["cmd"]](req)
        except Exception as exc:  # report, keep serving: one broken peer must not lose the run
            ans = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
