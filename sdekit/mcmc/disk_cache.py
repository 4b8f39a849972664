"""Disk-cached MCMC kernels for importable energy functions.

Numba cannot cache `kernel.run_chains_kernel`, which takes the step and the energy function as
arguments (it embeds process-specific pointers). When the energy can be imported by name (the
built-in targets' energies, or a user's module-level njit function), sdekit writes a module that
holds copies of the step's and the driver's source with the energy and the step bound as globals
(copied from sdekit's own source at run time, never maintained twice), as
`sdekit.backends.numba.disk_cache` does for the SDE kernels; Numba caches that module, so a later
process loads the kernel instead of compiling it. The file name hashes the energy's and the
step's bytecode and their files' modification times, and the modification times of the sources
the kernel inlines (the driver, the adaptation, the noise streams), so an edit produces a new kernel.
SDEKIT_DISK_CACHE=0 turns it off; closures (e.g. the tempered energies) and steps that are not importable
by their own name (the planted-bug variants of `sdekit.mcmc.variants`) use the generic kernel.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sdekit.backends.numba.disk_cache import (
    _HEADER,
    _body,
    _fingerprint,
    _global_imports,
    cache_dir,
    cacheable,
    import_path,
    load_generated,
)
from sdekit.mcmc import kernel as driver

_HERE = Path(__file__).parent
# the sources the generated kernel inlines besides the step's own module (fingerprinted separately)
_INLINED = (_HERE / "kernel.py", _HERE / "adaptation.py", _HERE.parent / "noise" / "streams.py",
            _HERE.parent / "noise" / "ziggurat.py")

_KERNELS: dict[Any, Any] = {}


def _source(step: Any, parallel: bool) -> str:
    name = step.py_func.__name__
    step_src = _body(step, f"def {name}(energy, p, x,", "def step(p, x,")
    kernel_src = _body(driver.run_chains_kernel, "def _run_chains(step, energy, p, x0,", "def kernel(p, x0,",
                       ("step(energy, p, x, grad,", "step(p, x, grad,"))
    return f"\n\n@nb.njit(cache=True)\n{step_src}\n\n@nb.njit(cache=True, parallel={parallel})\n{kernel_src}"


def cached_kernel(step: Any, energy: Any, parallel: bool = True) -> Any | None:
    """kernel(p, x0, h0, kp, mats, ...) with ``step`` and ``energy`` bound as globals and cached on disk, or None
    (caching off, or the energy or the step not importable by name): then use `kernel.run_chains_kernel` (or
    `kernel.run_chains_serial`). parallel: chains split across Numba's threads (prange), else one after another."""
    memo = (step, energy, parallel)
    try:
        return _KERNELS[memo]
    except (KeyError, TypeError):
        pass
    kernel = _build(step, energy, parallel)
    try:
        _KERNELS[memo] = kernel
    except TypeError:
        pass
    return kernel


def _stamp() -> str:
    """Modification times of the sources the kernel inlines (a function of its own: a comprehension inside
    `_build` would put a code object, whose repr holds an address, into `_build`'s fingerprint)."""
    return ":".join(f"{path.name}:{path.stat().st_mtime_ns}" for path in _INLINED)


def _build(step: Any, energy: Any, parallel: bool) -> Any | None:
    folder = cache_dir()
    where = cacheable(energy, "energy_fn")
    if folder is None or where is None or not hasattr(energy, "py_func") or import_path(step) is None:
        return None
    step_mod = step.py_func.__module__
    parts = ["mcmc", _fingerprint(energy, where[0]), _fingerprint(step, step_mod),
             _fingerprint(driver.run_chains_kernel, driver.__name__), _fingerprint(_build, __name__), _stamp(),
             "parallel" if parallel else "serial"]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
    try:
        body = _source(step, parallel)
    except (OSError, TypeError, ValueError):
        return None
    own = ("step", "energy")
    lines = _global_imports(driver.run_chains_kernel, own) + _global_imports(step, own)
    lines.append(f"from {where[0]} import {where[1]} as energy")
    source = _HEADER.format(kind="mcmc", imports="\n".join(sorted(set(lines)))) + body
    module = load_generated(folder / f"sdekit_mcmc_{key}.py", source)
    return None if module is None else module.kernel
