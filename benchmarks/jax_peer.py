"""Client side of the JAX / diffrax peers: worker processes running benchmarks/jax_throughput.py under another python.

sdekit's environment has no jax; the peers run in their own environment (``--jax-python``, default the
``SDEKIT_BENCH_JAX_PYTHON`` variable), one worker per thread count, started on first use and kept for the run so that
their compiled functions survive between the interleaved repeats. Where that python is missing or has no jax, the
peers are reported unavailable and their cases are left out (``JaxPeers.reason`` says why).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

WORKER = Path(__file__).resolve().parent / "jax_throughput.py"
# One thread for XLA's CPU client: Eigen's thread pool off and one intra-op thread (the 1-thread rows).
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class JaxPeers:
    """Workers by thread count; ``request(threads, msg)`` sends one request and returns the worker's answer."""

    def __init__(self, python: str | None) -> None:
        self.python = python
        self.workers: dict[int, subprocess.Popen] = {}
        self.ready: dict[int, set[str]] = {}
        self.versions: dict[str, Any] | None = None
        self.reason: str | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="sdekit-jaxpeer-"))
        self.problem_arrays: dict[str, dict[str, Any]] = {}
        if not python:
            self.reason = "no --jax-python given (nor SDEKIT_BENCH_JAX_PYTHON): JAX and diffrax peers skipped"
        elif not Path(python).exists():
            self.reason = f"{python} does not exist: JAX and diffrax peers skipped"
        else:
            ans = self.request(1, {"cmd": "versions"})
            if "error" in ans:
                self.reason = f"the JAX worker failed: {ans['error']}"
            else:
                self.versions = ans

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def has_diffrax(self) -> bool:
        return bool(self.versions and self.versions.get("diffrax"))

    def add_problem(self, key: str, arrays: dict[str, Any]) -> None:
        """Arrays of a problem (dim, h, and its parameters), sent to each worker before its first run of it."""
        self.problem_arrays[key] = arrays

    def _worker(self, threads: int) -> subprocess.Popen:
        if threads not in self.workers:
            env = dict(os.environ)
            if threads == 1:
                env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA).strip()
            env.pop("PYTHONPATH", None)  # the worker's environment is its own
            self.workers[threads] = subprocess.Popen([self.python, str(WORKER)], stdin=subprocess.PIPE,
                                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                                     env=env, bufsize=1)
            self.ready[threads] = set()
        return self.workers[threads]

    def request(self, threads: int, msg: dict) -> dict:
        try:
            proc = self._worker(threads)
            problem = msg.get("problem")
            if problem is not None and problem not in self.ready[threads]:
                path = self.tmp / f"{problem}.npz"
                if not path.exists():
                    np.savez(path, **self.problem_arrays[problem])
                self._send(proc, {"cmd": "setup", "problem": problem, "npz": str(path)})
                self.ready[threads].add(problem)
            return self._send(proc, msg)
        except (OSError, ValueError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    @staticmethod
    def _send(proc: subprocess.Popen, msg: dict) -> dict:
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise OSError(f"the JAX worker exited (return code {proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        for proc in self.workers.values():
            try:
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
        self.workers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
