"""Which dask cluster a distributed run uses: the user's Client, a scheduler address, or a LocalCluster of its own."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from sdekit.errors import SDEKitError

INSTALL_HINT = 'pip install "sdekit[distributed]" (or pip install ".[distributed]" in a checkout)'


def require_distributed() -> Any:
    """The `distributed` module, or an SDEKitError saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise SDEKitError(f"sdekit.distributed needs dask.distributed, which is not installed: {INSTALL_HINT}") from exc
    return distributed


def local_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def cluster(client: Any = None, *, n_workers: int | None = None, threads_per_worker: int = 1) -> Iterator[Any]:
    """A dask `Client` for the duration of a run.

    client: a `distributed.Client` (used as is, left open), a scheduler address such as "tcp://10.0.0.5:8786"
    (connected, closed at the end), or None: a LocalCluster of ``n_workers`` worker processes (default: one per
    core) with ``threads_per_worker`` threads each, started quietly (its HTTP endpoint on a free port, errors only
    in the log) and stopped at the end.
    """
    distributed = require_distributed()
    if isinstance(client, distributed.Client):
        yield client
        return
    if isinstance(client, str):
        try:
            owned = distributed.Client(client, timeout="20s")
        except OSError as exc:
            raise SDEKitError(f"client: cannot reach the dask scheduler at {client!r}: {exc}") from exc
        try:
            yield owned
        finally:
            owned.close()
        return
    if client is not None:
        raise SDEKitError(f"client must be a dask.distributed Client, a scheduler address (str) or None (a local "
                          f"cluster); got {type(client).__name__}")
    for name, v in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise SDEKitError(f"{name} must be a positive integer; got {v!r}")
    local = distributed.LocalCluster(n_workers=n_workers or local_cores(), threads_per_worker=threads_per_worker,
                                     processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
    owned = distributed.Client(local)
    try:
        yield owned
    finally:
        owned.close()
        local.close()


def worker_threads() -> int:
    """Threads of the dask worker this task runs on (1 outside a worker): what a shard's kernels may use."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1
