"""Kernels of importable functions are cached on disk: a second process loads instead of compiling."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import numba
    warnings.simplefilter("error", numba.NumbaWarning)  # "Cannot cache ... dynamic globals" must not happen
    import numpy as np
    import sdekit
    from sdekit.processes import OrnsteinUhlenbeck
    ou = OrnsteinUhlenbeck([[1.0, 0.2], [0.0, 0.5]], [[1.0, 0.0], [0.3, 0.7]])
    fixed = sdekit.simulate(ou.sde, np.ones(2), (0.0, 1.0), steps=50, n_paths=64, seed=3, solver="sra1")
    em = sdekit.simulate(ou.sde, np.ones(2), (0.0, 1.0), steps=50, n_paths=64, seed=3)  # matrix noise term
    ode = sdekit.ODE(ou.sde.drift, dim=2, params=ou.sde.params)
    adaptive = sdekit.simulate(ode, np.ones((3, 2)), (0.0, 1.0), solver="dopri5")
    from sdekit.backends.numba.disk_cache import _KERNELS
    kernels = [k for k in _KERNELS.values() if k is not None]
    print(json.dumps({"hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
                      "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels), "n": len(kernels),
                      "y": fixed.ys.ravel()[:8].tolist() + em.ys.ravel()[:8].tolist(),
                      "z": adaptive.ys.ravel().tolist()}))
""")


def run(tmp_path, **env_extra):
    env = dict(os.environ, SDEKIT_CACHE_DIR=str(tmp_path / "kernels"), **env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_cached_kernels(tmp_path):
    first = run(tmp_path)
    second = run(tmp_path)
    assert first["n"] == second["n"] == 3 and first["misses"] == 3 and first["hits"] == 0, first
    assert second["hits"] == 3 and second["misses"] == 0, second  # loaded from disk, not compiled
    assert first["y"] == second["y"] and first["z"] == second["z"]
    generated = list((tmp_path / "kernels").glob("sdekit_*.py"))
    assert len(generated) == 3
    generic = run(tmp_path, SDEKIT_DISK_CACHE="0")  # the generic kernel with function arguments
    assert generic["y"] == first["y"] and generic["z"] == first["z"]


MCMC_SCRIPT = textwrap.dedent("""
    import json
    from sdekit.mcmc import mala
    from sdekit.mcmc.disk_cache import _KERNELS
    from sdekit.targets import GaussianMixture
    mix = GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.5, 0.5]], [[[0.5, 0.1], [0.1, 0.4]], [[0.6, 0.0], [0.0, 0.3]]])
    a = mala(mix, n_chains=3, n_draws=20, n_warmup=20, seed=4)
    kernels = [k for k in _KERNELS.values() if k is not None]
    print(json.dumps({"hits": sum(sum(k.stats.cache_hits.values()) for k in kernels), "n": len(kernels),
                      "x": a.samples.ravel().tolist()}))
""")


def test_mcmc_kernels_of_builtin_energies_are_loaded_from_disk_by_a_second_process(tmp_path):
    """The MALA kernel on a built-in target is generated with the energy bound as a global, cached by
    Numba, loaded (cache hits) by a second process, and give the same numbers as the generic kernel."""
    env = dict(os.environ, SDEKIT_CACHE_DIR=str(tmp_path / "kernels"))

    def go(**extra):
        out = subprocess.run([sys.executable, "-c", MCMC_SCRIPT], env={**env, **extra}, capture_output=True,
                             text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = go(), go()
    assert first["n"] == 1 and first["hits"] == 0
    assert second["n"] == 1 and second["hits"] == 1
    assert len(list((tmp_path / "kernels").glob("sdekit_mcmc_*.py"))) == 1
    generic = go(SDEKIT_DISK_CACHE="0")
    assert generic["n"] == 0
    assert first["x"] == second["x"] == generic["x"]


def test_cache_keys_of_functions_with_comprehensions_are_the_same_in_every_process():
    """A nested code object's repr holds a memory address: it used to enter the key, so such a function got a new
    kernel file in every process and never loaded from disk."""
    script = ("from sdekit.backends.numba.disk_cache import _fingerprint\n"
              "from tests import problems\n"
              "print(_fingerprint(problems.with_comprehension, 'tests.problems'))")
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=os.path.dirname(os.path.dirname(__file__))).stdout.strip() for _ in range(2)}
    assert len(keys) == 1 and keys != {""}


def test_every_step_module_and_kernel_import_stamps_the_cache():
    """A generated kernel inlines the step sources and calls what kernels.py imports: each such file must be in
    _SDEKIT_SOURCES, or an edit to it would leave stale kernels on disk (levy_area.py and steps_milstein_matrix.py
    were missing when they were added)."""
    import ast
    import sys
    from pathlib import Path

    from sdekit.backends.numba import disk_cache as dc
    from sdekit.backends.numba.steps import STEPS

    here = Path(dc.__file__).parent
    stamped = {(here / name).resolve() for name in dc._SDEKIT_SOURCES}
    steps = {Path(sys.modules[fn.py_func.__module__].__file__) for fn in STEPS.values()}
    root = here.parent.parent.parent
    imported = {root / (node.module.replace(".", "/") + ".py")
                for node in ast.walk(ast.parse((here / "kernels.py").read_text()))
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sdekit")}
    missing = sorted(str(p.relative_to(root)) for p in steps | imported if p.resolve() not in stamped)
    assert not missing, missing
