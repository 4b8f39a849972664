"""Kernels of importable functions are cached on disk: a second process loads instead of compiling."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sdekit
    from sdekit.processes import OrnsteinUhlenbeck
    ou = OrnsteinUhlenbeck([[1.0, 0.2], [0.0, 0.5]], [[1.0, 0.0], [0.3, 0.7]])
    fixed = sdekit.simulate(ou.sde, np.ones(2), (0.0, 1.0), steps=50, n_paths=64, seed=3, solver="sra1")
    ode = sdekit.ODE(ou.sde.drift, dim=2, params=ou.sde.params)
    adaptive = sdekit.simulate(ode, np.ones((3, 2)), (0.0, 1.0), solver="dopri5")
    print(json.dumps({"fixed": fixed.stats.compile_seconds, "adaptive": adaptive.stats.compile_seconds,
                      "y": fixed.ys.ravel()[:8].tolist(), "z": adaptive.ys.ravel().tolist()}))
""")


def run(tmp_path, **env_extra):
    env = dict(os.environ, SDEKIT_CACHE_DIR=str(tmp_path / "kernels"), **env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_cached_kernels(tmp_path):
    first = run(tmp_path)
    second = run(tmp_path)
    assert second["fixed"] < 0.5 and second["adaptive"] < 0.5, (first, second)
    assert first["y"] == second["y"] and first["z"] == second["z"]
    generated = list((tmp_path / "kernels").glob("sdekit_*.py"))
    assert len(generated) == 2
    generic = run(tmp_path, SDEKIT_DISK_CACHE="0")  # the generic kernel with function arguments
    assert generic["y"] == first["y"] and generic["z"] == first["z"]
