"""Shared settings: a derandomized hypothesis profile for CI (statistical properties never shrink),
and the false-alarm budget line printed at the end of the run (sdekit.pytest_plugin)."""

import logging
import os

import pytest
from hypothesis import settings

from sdekit.testing import CI_PROFILE, DEV_PROFILE, register_profiles

pytest_plugins = ["sdekit.pytest_plugin"]

register_profiles(max_examples=15)
settings.register_profile("ci", parent=settings.get_profile(CI_PROFILE))
settings.register_profile("dev", parent=settings.get_profile(DEV_PROFILE))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker already has a core of its own: parallel kernels on more threads than that oversubscribe the
    # machine (measured: the power-table test took 117 s in a 2-worker run, 24 s alone). Tests that compare thread
    # counts set them explicitly (numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)).
    import numba

    numba.set_num_threads(1)


@pytest.fixture(scope="session")
def client():
    """A dask LocalCluster of 2 worker processes (1 thread each) shared by the sdekit.distributed tests of this
    process; its HTTP endpoint on a free port, its logs errors only."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
