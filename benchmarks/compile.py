"""Time to first result: how long a fresh process takes to import sdekit and finish its first solve, cold and warm.

Every scenario runs in its own fresh Python process (so nothing is compiled yet in memory) against a copy of the
sdekit source tree, with its own kernel cache folder (SDEKIT_CACHE_DIR); the lambda, module and validate groups
each start from their own fresh copy, and trees are interleaved within each repeat:

* cold: a source copy never run before and an empty kernel cache (as after `pip install`: every Numba cache of
  sdekit's own functions and kernels is empty);
* warm: the same copy after a different SDE of the same solver and noise type was solved once (sdekit's caches
  hold what it compiles for itself, but not the new SDE's functions);
* later: the same SDE solved again in a new process (a module-level SDE's functions can be cached by name).

Scenarios: a new user SDE written with lambdas (first `simulate` in the process), a second new SDE in the same
process, a new solver and a new dtype for it, a module-level SDE in a later process, and `sdekit validate --quick`.
With ``--baseline DIR`` (a checkout of an older sdekit) every scenario also runs there, interleaved, and the table
gives the ratio baseline / this tree, measured in the same run under the same load.

    python benchmarks/compile.py [--baseline /path/to/old/checkout] [--repeats 3] [--skip-validate]

Results: benchmarks/results/compile.{json,md}, with the machine and the load during each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_timing import busy_jiffies  # noqa: E402

PROLOGUE = """
import json, sys, time
t_start = time.perf_counter()
import numpy as np
import sdekit
t_import = time.perf_counter() - t_start
out = {"import_s": t_import, "sdekit": sdekit.__file__}
def solve(sde, key, **kw):
    t0 = time.perf_counter()
    sol = sdekit.simulate(sde, np.full(sde.dim, 0.1), (0.0, 1.0), steps=100, n_paths=1000, seed=1, **kw)
    out[key + "_s"] = time.perf_counter() - t0
    out[key + "_compile_s"] = sol.stats.compile_seconds
    out[key + "_check"] = float(np.mean(sol.final))
"""

# a new SDE written with lambdas (not importable: compiled in every process); the warm-up uses other lambdas
LAMBDA_SDE = PROLOGUE + """
k = float(sys.argv[1])
sde = sdekit.SDE(lambda x, t, p: -p[0] * x + k, lambda x, t, p: p[1], dim=2, noise="additive", params=[1.0, 0.5])
solve(sde, "first")
other = sdekit.SDE(lambda x, t, p: -p[0] * x * x * x, lambda x, t, p: p[1], dim=2, noise="additive",
                   params=[1.0, 0.5])
solve(other, "second_sde")
solve(sde, "new_solver", solver="sra1")
solve(sde, "new_dtype", dtype="float32")
out["total_s"] = time.perf_counter() - t_start
print(json.dumps(out))
"""

MODULE = textwrap.dedent("""
    import numba as nb
    import numpy as np


    @nb.njit(cache=True)
    def drift(x, t, p):
        return -p[0] * x


    @nb.njit(cache=True)
    def diffusion(x, t, p):
        return p[1]


    @nb.njit(cache=True)
    def numba_warm_up():
        return 1.0


    @nb.njit(cache=True)
    def drift16(x, t, p):
        n, d = x.shape
        out = np.empty((n, d))
        for r in range(n):
            for i in range(d):
                out[r, i] = -p[0] * x[r, i] + 0.1 * np.sin(x[r, (i + 1) % d])
        return out
""")

MODULE_SDE = PROLOGUE + """
import bench_user_module as m
if sys.argv[1:] == ["numba-initialised"]:  # Numba's one-time start-up (typing registries, BLAS) paid beforehand
    t0 = time.perf_counter()
    m.numba_warm_up()
    out["numba_init_s"] = time.perf_counter() - t0
sde = sdekit.SDE(m.drift, m.diffusion, dim=2, noise="additive", params=[1.0, 0.5])
solve(sde, "first")
out["total_s"] = time.perf_counter() - t_start
print(json.dumps(out))
"""


# run time, not compile time: the same functions inlined into the kernel (importable by name) and called through
# function pointers (a copy of them that cannot be imported, as lambdas and closures are); 1 thread, interleaved
RUNTIME = PROLOGUE + """
import types
import bench_user_module as m
def unimportable(fn):
    py = fn.py_func
    return types.FunctionType(py.__code__, py.__globals__, py.__name__)
rows = []
for dim, drift in ((1, m.drift), (16, m.drift16)):
    for n in (1, 10_000):
        pair = {"inlined": sdekit.SDE(drift, m.diffusion, dim=dim, noise="additive", params=[1.0, 0.5]),
                "pointers": sdekit.SDE(unimportable(drift), unimportable(m.diffusion), dim=dim, noise="additive",
                                       params=[1.0, 0.5])}
        best = {k: float("inf") for k in pair}
        finals = {}
        for rep in range(8):
            for k, sde in pair.items():
                sol = sdekit.simulate(sde, np.zeros(dim), (0.0, 1.0), steps=1000 if n > 1 else 20000, n_paths=n,
                                      seed=3, threads=1)
                if rep:  # the first solve compiles
                    best[k] = min(best[k], sol.stats.run_seconds)
                finals[k] = sol.final
        rows.append({"dim": dim, "n_paths": n, **{k + "_s": v for k, v in best.items()},
                     "same": bool(np.array_equal(finals["inlined"], finals["pointers"]))})
out["runtime"] = rows
print(json.dumps(out))
"""


def source_copy(tree: Path, dest: Path) -> Path:
    """A copy of tree's sdekit package (no __pycache__: Numba's caches of sdekit's own functions start empty)."""
    shutil.copytree(tree / "sdekit", dest / "sdekit", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def run_script(src: Path, cache: Path, script: str, *args: str, extra_path: Path | None = None) -> dict:
    """Run a script in a fresh interpreter on the sdekit in ``src``; its JSON line, with wall time and load."""
    env = dict(os.environ, SDEKIT_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (src, extra_path) if p is not None)
    j0, w0 = busy_jiffies(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    wall = time.perf_counter() - w0
    if proc.returncode != 0:
        raise RuntimeError(f"scenario failed in {src}:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out["sdekit"].startswith(str(src)):
        raise RuntimeError(f"imported {out['sdekit']}, not the copy in {src}")
    out["wall_s"] = wall
    out["load_cores"] = _load(j0, wall)
    return out


def run_validate(src: Path, cache: Path, out_dir: Path) -> dict:
    """`sdekit validate --quick` in a fresh process on the sdekit in ``src``: wall time and its exit code."""
    env = dict(os.environ, SDEKIT_CACHE_DIR=str(cache), PYTHONPATH=str(src))
    j0, w0 = busy_jiffies(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import sys; from sdekit.cli import main; sys.exit(main())",
                           "validate", "--quick", "--out", str(out_dir)], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    wall = time.perf_counter() - w0
    return {"wall_s": wall, "returncode": proc.returncode, "load_cores": _load(j0, wall),
            "summary": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]}


def _load(j0: float | None, wall: float) -> float | None:
    """Average number of busy cores during the run (ours included), from /proc/stat."""
    j1 = busy_jiffies()
    if j0 is None or j1 is None or wall <= 0:
        return None
    return (j1 - j0) / os.sysconf("SC_CLK_TCK") / wall


def measure(trees: dict[str, Path], work: Path, repeats: int, validate: bool) -> dict:
    """Every scenario on every tree, interleaved tree by tree within each repeat (so that ratios compare runs made
    under the same background load); each group of scenarios starts from its own fresh cold copy."""
    names = ("lambda_cold", "lambda_warm", "module_cold", "module_later", "module_later_numba_ready",
             "validate_quick_cold", "validate_quick_warm")
    res: dict[str, dict[str, list]] = {tree: {name: [] for name in names} for tree in trees}
    user = work / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "bench_user_module.py").write_text(MODULE)
    for rep in range(repeats):
        for tree, root in trees.items():
            out = res[tree]
            base = work / tree / f"lambda{rep}"
            src, cache = source_copy(root, base), base / "kernels"
            out["lambda_cold"].append(run_script(src, cache, LAMBDA_SDE, "0.0"))
            out["lambda_warm"].append(run_script(src, cache, LAMBDA_SDE, str(rep + 1.0)))  # new lambdas, warm
            base = work / tree / f"module{rep}"
            src, cache = source_copy(root, base), base / "kernels"
            shutil.rmtree(user / "__pycache__", ignore_errors=True)
            out["module_cold"].append(run_script(src, cache, MODULE_SDE, extra_path=user))
            out["module_later"].append(run_script(src, cache, MODULE_SDE, extra_path=user))
            out["module_later_numba_ready"].append(run_script(src, cache, MODULE_SDE, "numba-initialised",
                                                              extra_path=user))
            if rep == 0 and tree == "this":
                out["runtime"] = [run_script(src, cache, RUNTIME, extra_path=user)]
            if validate and rep == 0:
                base = work / tree / "validate"
                src, cache = source_copy(root, base), base / "kernels"
                out["validate_quick_cold"].append(run_validate(src, cache, base / "out"))
                out["validate_quick_warm"].append(run_validate(src, cache, base / "out"))
            print(f"{tree}: repeat {rep + 1} of {repeats} done", file=sys.stderr)
    return res


ROWS = [  # (label, scenario, key in the script's output)
    ("new lambda SDE, first simulate, cold caches", "lambda_cold", "first_s"),
    ("new lambda SDE, first simulate, warm caches", "lambda_warm", "first_s"),
    ("  its compile_seconds", "lambda_warm", "first_compile_s"),
    ("second new lambda SDE in the same process (warm)", "lambda_warm", "second_sde_s"),
    ("new solver (sra1) for it, same process, cold", "lambda_cold", "new_solver_s"),
    ("new solver (sra1) for it, same process, warm", "lambda_warm", "new_solver_s"),
    ("new dtype (float32) for it, same process, cold", "lambda_cold", "new_dtype_s"),
    ("new dtype (float32) for it, same process, warm", "lambda_warm", "new_dtype_s"),
    ("import sdekit", "lambda_warm", "import_s"),
    ("module-level SDE, first simulate, cold caches", "module_cold", "first_s"),
    ("module-level SDE, first simulate in a later process", "module_later", "first_s"),
    ("  the same, after Numba's one-time start-up", "module_later_numba_ready", "first_s"),
    ("  Numba's one-time start-up (a cached trivial function)", "module_later_numba_ready", "numba_init_s"),
    ("sdekit validate --quick, cold caches (wall)", "validate_quick_cold", "wall_s"),
    ("sdekit validate --quick, warm caches (wall)", "validate_quick_warm", "wall_s"),
]


def table(results: dict) -> list[str]:
    """Markdown rows: median seconds per scenario for this tree (and the baseline with the ratio)."""
    has_base = "baseline" in results
    head = "| scenario | this tree (s) |" + (" baseline (s) | baseline / this |" if has_base else "")
    lines = [head, "|---|---|" + ("---|---|" if has_base else "")]
    for label, scen, key in ROWS:
        cur = _median(results["this"].get(scen, []), key)
        if cur is None:
            continue
        row = f"| {label} | {cur:.3f} |"
        if has_base:
            old = _median(results["baseline"].get(scen, []), key)
            row += f" {old:.3f} | {old / cur:.1f}x |" if old is not None else " - | - |"
        lines.append(row)
    return lines


def _median(runs: list[dict], key: str) -> float | None:
    vals = sorted(r[key] for r in runs if key in r)
    return vals[len(vals) // 2] if vals else None


def _commit(tree: Path) -> str:
    """The git commit of a checkout (short hash, '+ changes' when dirty), or 'unknown'."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + changes" if dirty else "")


def machine() -> dict:
    import numba

    from sdekit.validate.provenance import cpu_model

    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)), "python": platform.python_version(), "numba": numba.__version__,
            "loadavg_before": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of an older sdekit to compare")
    parser.add_argument("--repeats", type=int, default=3, help="fresh cold copies per tree (default 3)")
    parser.add_argument("--skip-validate", action="store_true", help="leave out sdekit validate --quick")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for compile.{json,md}")
    args = parser.parse_args(argv)
    info = machine()
    trees = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="sdekit-compile-") as tmp:
        results = measure(trees, Path(tmp), args.repeats, not args.skip_validate)
    info["loadavg_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    base_commit = _commit(args.baseline) if args.baseline else None
    (args.out / "compile.json").write_text(json.dumps({"machine": info, "baseline": str(args.baseline),
                                                       "baseline_commit": base_commit, "this_commit": _commit(ROOT),
                                                       "results": results}, indent=1))
    loads = [r["load_cores"] for tree in results.values() for runs in tree.values() for r in runs
             if r.get("load_cores") is not None]
    runtime = ["", "Run time of the same functions inlined into the kernel (importable by name) and called through "
               "function pointers (as lambdas and closures are), this tree, 1 thread, best of 7 interleaved solves "
               "(1000 steps; 20,000 at one path):", "",
               "| dim | paths | inlined (ms) | pointers (ms) | pointers / inlined | same numbers |",
               "|---|---|---|---|---|---|"]
    for row in results["this"]["runtime"][0]["runtime"]:
        runtime.append(f"| {row['dim']} | {row['n_paths']} | {1e3 * row['inlined_s']:.2f} | "
                       f"{1e3 * row['pointers_s']:.2f} | {row['pointers_s'] / row['inlined_s']:.2f} | {row['same']} |")
    md = ["# Time to first result", "",
          f"`python benchmarks/compile.py{' --baseline ' + str(args.baseline) if args.baseline else ''} "
          f"--repeats {args.repeats}` on {info['cpu_model']} ({info['affinity']} cores), Python {info['python']}, "
          f"numba {info['numba']}. Medians over {args.repeats} fresh copies (one for validate); each scenario is a "
          f"fresh process. Load average {info['loadavg_before'][0]:.2f} before and {info['loadavg_after'][0]:.2f} "
          f"after; busy cores during the runs (ours included) {min(loads):.2f}-{max(loads):.2f}. This tree: "
          f"{_commit(ROOT)}" + (f"; baseline: {base_commit}." if args.baseline else "."), "",
          *table(results), *runtime, ""]
    (args.out / "compile.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
