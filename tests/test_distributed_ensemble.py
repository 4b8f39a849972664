"""Sharded solves on a LocalCluster of two worker processes equal the single-process solve bit for bit, whatever the
shard size; states can stay on the workers; a checkpoint folder resumes a run; a killed worker changes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import sdekit
from sdekit.errors import NonFiniteError, SDEKitError
from sdekit.processes.gbm import GeometricBrownianMotion
from sdekit.processes.ou import OrnsteinUhlenbeck

distributed = pytest.importorskip("distributed")
sd = pytest.importorskip("sdekit.distributed")

OU = OrnsteinUhlenbeck(np.array([[1.0, 0.3], [0.0, 0.5]]), 0.5 * np.eye(2)).sde
GBM = GeometricBrownianMotion(0.1, 0.4).sde
X0 = np.random.default_rng(5).standard_normal((203, 2))
SAVES = [0.25, 0.6, 1.0]  # 0.6 lies inside a step of the 10-step grid: a bridged partial step



@pytest.fixture(scope="module")
def reference():
    return sdekit.simulate(OU, X0, (0.0, 1.0), steps=10, seed=11, save_at=SAVES, save_brownian=True)


@pytest.mark.parametrize("shard_size", [1000, 64, 7])
def test_sharded_solve_equals_one_process_bit_for_bit(client, reference, shard_size):
    sol = sd.simulate(OU, X0, (0.0, 1.0), steps=10, seed=11, save_at=SAVES, save_brownian=True, client=client,
                      shard_size=shard_size, progress=False)
    assert np.array_equal(sol.ys, reference.ys) and np.array_equal(sol.ws, reference.ws)
    assert np.array_equal(sol.ts, reference.ts)
    assert sol.stats.n_shards == -(-X0.shape[0] // shard_size) and sol.stats.path_steps == 203 * 10
    if shard_size == 7:  # 29 shards on two workers: both took part
        assert len(set(sol.stats.shard_workers)) == 2


def test_states_stay_distributed_as_a_dask_array(client, reference):
    sol = sd.simulate(OU, X0, (0.0, 1.0), steps=10, seed=11, save_at=SAVES, save_brownian=True, client=client,
                      shard_size=50, states="distributed", progress=False)
    assert sol.ys.shape == reference.ys.shape and sol.ys.chunks[1] == (50, 50, 50, 50, 3)
    assert np.array_equal(sol.ys.compute(), reference.ys) and np.array_equal(sol.ws.compute(), reference.ws)
    assert np.array_equal(sol.ys[:, 120:130].compute(), reference.ys[:, 120:130])


def test_numpy_backend_and_a_broadcast_x0(client):
    """The reference backend shards too (every solver and backend keys its noise by path: tests/test_path_offset)."""
    kw = dict(solver="milstein", backend="numpy", steps=8, save_at=[0.3, 1.0])
    ref = sdekit.simulate(GBM, 1.0, (0.0, 1.0), n_paths=90, seed=4, **kw)
    sol = sd.simulate(GBM, 1.0, (0.0, 1.0), n_paths=90, seed=4, client=client, shard_size=13, progress=False, **kw)
    assert np.array_equal(sol.ys, ref.ys)


def test_a_nonfinite_path_is_named_by_its_index_in_the_ensemble(client):
    fast = GeometricBrownianMotion(1000.0, 0.4).sde  # x grows by about 251 per step of 0.25
    x0 = np.ones((40, 1))
    x0[33] = 1e306  # overflows at the first step
    with pytest.raises(NonFiniteError, match="path 33 became non-finite"):
        sd.simulate(fast, x0, (0.0, 1.0), steps=4, client=client, shard_size=10, progress=False)


def test_bad_arguments_are_refused_by_name(client):
    with pytest.raises(SDEKitError, match="shard_size"):
        sd.simulate(OU, X0, (0.0, 1.0), steps=2, client=client, shard_size=0)
    with pytest.raises(SDEKitError, match="threads"):
        sd.simulate(OU, X0, (0.0, 1.0), steps=2, client=client, threads=2)
    with pytest.raises(SDEKitError, match="states"):
        sd.simulate(OU, X0, (0.0, 1.0), steps=2, client=client, states="none")
    with pytest.raises(SDEKitError, match="backend"):
        sd.simulate(OU, X0, (0.0, 1.0), steps=2, client=client, backend="torch")
    with pytest.raises(SDEKitError, match="client"):
        sd.simulate(OU, X0, (0.0, 1.0), steps=2, client=3)
    with pytest.raises(SDEKitError, match="states='distributed'"):  # its futures would die with the call's cluster
        sd.simulate(OU, X0, (0.0, 1.0), steps=2, states="distributed")


def test_checkpoint_resumes_from_verified_shards_only(client, reference, tmp_path):
    kw = dict(steps=10, seed=11, save_at=SAVES, save_brownian=True, client=client, shard_size=40, progress=False)
    first = sd.simulate(OU, X0, (0.0, 1.0), checkpoint=tmp_path, **kw)
    files = sorted(tmp_path.glob("shard-*.bin"))
    assert first.stats.loaded_shards == 0 and len(files) == 6
    files[1].unlink()  # a shard never finished
    raw = bytearray(files[2].read_bytes())
    raw[-5] ^= 0xFF  # a shard file damaged on disk: its digest no longer matches
    files[2].write_bytes(bytes(raw))
    again = sd.simulate(OU, X0, (0.0, 1.0), checkpoint=tmp_path, **kw)
    assert again.stats.loaded_shards == 4
    assert np.array_equal(again.ys, reference.ys) and np.array_equal(again.ws, reference.ws)
    with pytest.raises(SDEKitError, match="another run"):  # same folder, different seed: not this run's shards
        sd.simulate(OU, X0, (0.0, 1.0), checkpoint=tmp_path, **{**kw, "seed": 12})


def test_a_worker_killed_mid_run_changes_nothing(client, tmp_path):
    """SIGKILL one worker process as soon as it holds a finished shard: the shard's result dies with it, the nanny
    starts a new worker, and the scheduler recomputes the lost shards from their keys."""
    n, steps = 4000, 400
    ref = sdekit.simulate(OU, 0.5, (0.0, 1.0), n_paths=n, steps=steps, seed=21)
    pids = client.run(os.getpid)
    killed: dict[str, object] = {}

    def kill_first_holder():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for addr, keys in client.has_what().items():
                if any(str(k).startswith("sdekit-shard-") for k in keys) and addr in pids:
                    killed.update(addr=addr, keys=[str(k) for k in keys])
                    os.kill(pids[addr], signal.SIGKILL)
                    return
            time.sleep(0.005)

    thread = threading.Thread(target=kill_first_holder)
    thread.start()
    sol = sd.simulate(OU, 0.5, (0.0, 1.0), n_paths=n, steps=steps, seed=21, client=client, shard_size=200,
                      progress=False)
    thread.join()
    assert killed, "no worker was killed during the run"
    assert np.array_equal(sol.ys, ref.ys)
    assert killed["addr"] not in sol.stats.shard_workers  # its shards were recomputed on the other workers
    client.wait_for_workers(2, timeout=60)


def test_states_left_on_a_killed_worker_are_recomputed(client, reference):
    """states='distributed' keeps each shard on the worker that solved it: SIGKILL a worker holding shards after
    the run, and computing the dask array recomputes the lost chunks from their keys, bit for bit."""
    sol = sd.simulate(OU, X0, (0.0, 1.0), steps=10, seed=11, save_at=SAVES, save_brownian=True, client=client,
                      shard_size=25, states="distributed", progress=False)
    client.wait_for_workers(2, timeout=60)
    pids = client.run(os.getpid)
    holders = [a for a, keys in client.has_what().items() if any(str(k).startswith("sdekit-shard-") for k in keys)]
    assert holders and holders[0] in pids
    os.kill(pids[holders[0]], signal.SIGKILL)
    deadline = time.time() + 60
    while holders[0] in client.scheduler_info(n_workers=-1)["workers"] and time.time() < deadline:
        time.sleep(0.05)  # until the scheduler has seen the worker go
    assert holders[0] not in client.scheduler_info(n_workers=-1)["workers"]
    assert np.array_equal(sol.ys.compute(), reference.ys) and np.array_equal(sol.ws.compute(), reference.ws)
    client.wait_for_workers(2, timeout=60)


def test_progress_bar_over_shards(client, capsys):
    sd.simulate(OU, X0, (0.0, 1.0), steps=2, seed=1, client=client, shard_size=50, progress=True)
    err = capsys.readouterr().err
    assert "shards:" in err and "/5 [" in err


def test_without_dask_the_error_names_the_extra(monkeypatch):
    from sdekit.distributed.cluster import require_distributed

    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(SDEKitError, match=r"sdekit\[distributed\]"):
        require_distributed()


def test_reductions_merge_to_the_one_process_statistics(client, tmp_path):
    """Streaming reductions of a sharded solve (states never gathered) against the same reductions of the
    single-process solve: exact counts, moments to rounding, the grid KS test's statistic and verdict; and a run
    with such reductions resumes from its checkpoint (its key is stable)."""
    from scipy import stats as st

    from sdekit.reductions import Exceedance, GridKSTest, Histogram, Moments, QuantileSketch

    ou = OrnsteinUhlenbeck(1.0, 2**0.5)
    n, steps = 6000, 50
    ref = sdekit.simulate(ou.sde, 0.0, (0.0, 1.0), n_paths=n, steps=steps, seed=9)
    h = 1.0 / steps
    sd_em = np.sqrt(2.0 * h * sum((1.0 - h) ** (2 * k) for k in range(steps)))  # EM's exact law: N(0, sd_em^2)
    reductions = {"m": Moments(1), "p": Exceedance([0.5, 2.5]), "h": Histogram(np.linspace(-4, 4, 33)),
                  "q": QuantileSketch(1, k=256), "ks": GridKSTest(st.norm(0.0, sd_em), cells=2**12),
                  "ks_planted": GridKSTest(st.norm(0.2, sd_em), cells=2**12)}
    kw = dict(n_paths=n, steps=steps, seed=9, client=client, shard_size=700, states="none", progress=False,
              reductions=reductions, checkpoint=tmp_path)
    sol = sd.simulate(ou.sde, 0.0, (0.0, 1.0), **kw)
    assert sol.ys is None
    one = {k: r.empty().update(ref.ys[-1]) for k, r in reductions.items()}
    got, want = sol.reductions["m"].result(), one["m"].result()
    assert got.n == n and np.allclose(got.mean, want.mean, rtol=0, atol=1e-14)
    assert np.allclose(got.variance, want.variance, rtol=1e-12) and np.allclose(got.excess_kurtosis,
                                                                                 want.excess_kurtosis, atol=1e-12)
    assert np.array_equal(sol.reductions["p"].result().counts, one["p"].result().counts)
    assert np.array_equal(sol.reductions["h"].result().counts, one["h"].result().counts)
    q = sol.reductions["q"].result()
    true_rank = np.searchsorted(np.sort(ref.ys[-1, :, 0]), np.atleast_1d(q.quantile(0.9))[0])
    assert abs(true_rank - 0.9 * n) <= np.atleast_1d(q.rank_error_bound(1e-6))[0] + 1
    ks_sharded, ks_one = sol.reductions["ks"].result(), one["ks"].result()
    assert ks_sharded.statistic == ks_one.statistic and ks_sharded.passed == ks_one.passed
    assert ks_sharded.passed  # the scheme's exact law (false-alarm rate 1e-6)
    planted = sol.reductions["ks_planted"].result()  # the law shifted by 0.2 (0.22 sd): must be caught
    assert not planted.passed and planted.statistic == one["ks_planted"].result().statistic
    again = sd.simulate(ou.sde, 0.0, (0.0, 1.0), **kw)
    assert again.stats.loaded_shards == sol.stats.n_shards
    assert np.array_equal(again.reductions["h"].result().counts, one["h"].result().counts)


SCALE = 2.0


def _scaled_drift(x, t, p):
    return -SCALE * x


def _constant_diffusion(x, t, p):
    return p[0]


def test_run_keys_see_functions_parameters_and_captured_constants():
    from sdekit.distributed.keys import digest, problem_token

    global SCALE

    def key(params):
        return digest(problem_token(sdekit.SDE(_scaled_drift, _constant_diffusion, dim=1, noise="additive",
                                               params=params)))

    before = key([1.0])
    assert key([1.0]) == before and key([1.5]) != before
    SCALE = 3.0  # a constant the drift reads: a different problem (a checkpoint of the old one must not be reused)
    try:
        changed = key([1.0])
    finally:
        SCALE = 2.0
    assert changed != before and key([1.0]) == before
