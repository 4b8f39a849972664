"""sdekit.distributed.sample_chains: chains sharded over a dask cluster equal one process bit for bit."""

import warnings

import numpy as np
import pytest

from sdekit.errors import ChainNonFiniteError, SDEKitError
from sdekit.mcmc import hmc, mala, nuts, replica_exchange
from sdekit.targets import Gaussian

distributed = pytest.importorskip("distributed")

from sdekit.distributed.chains import first_failure, sample_chains, shard_bounds  # noqa: E402

TARGET = Gaussian([0.5, -1.0], [[1.0, 0.4], [0.4, 2.0]])
N_CHAINS = 7
RUNS = {  # enough draws that R-hat and ESS are evaluated, warm-up so that adapted step sizes are compared
    "mala": (mala, dict(step_size=0.4, n_draws=120, n_warmup=60, seed=11)),
    "hmc": (hmc, dict(step_size=0.3, n_leapfrog=4, n_draws=120, n_warmup=60, seed=12)),
    "nuts": (nuts, dict(step_size=0.3, adapt_mass="diag", n_draws=120, n_warmup=60, seed=13)),
}



def run_recording(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn(*args, **kwargs)
    return res, [(w.category, str(w.message)) for w in caught]


def assert_same_run(one, sharded):
    for name in ("samples", "accept_prob", "potential_energy", "divergent", "step_size", "n_nonfinite"):
        assert np.array_equal(getattr(one, name), getattr(sharded, name)), name
    assert (one.sampler, one.n_warmup, one.thin) == (sharded.sampler, sharded.n_warmup, sharded.thin)
    assert one.stats.keys() == sharded.stats.keys() and one.extras.keys() == sharded.extras.keys()
    for name in one.stats:  # NUTS: tree depth, leapfrog steps, max-depth hits per draw
        assert np.array_equal(one.stats[name], sharded.stats[name]), name
    if "inverse_mass" in one.extras:  # adapted per chain
        assert np.array_equal(one.extras["inverse_mass"], sharded.extras["inverse_mass"])
    for name, per_chain in one.extras.get("warmup_stats", {}).items():  # NUTS's warm-up leapfrog steps per chain
        assert np.array_equal(per_chain, sharded.extras["warmup_stats"][name]), name
    assert np.array_equal(one.to_arviz().posterior["x"].values, sharded.to_arviz().posterior["x"].values)
    assert one.diagnostics.fired == sharded.diagnostics.fired
    assert one.diagnostics.skipped == sharded.diagnostics.skipped
    for key, value in one.diagnostics.values.items():
        assert np.array_equal(value, sharded.diagnostics.values[key]), key


@pytest.mark.parametrize("sampler", sorted(RUNS))
def test_sharded_chains_equal_one_process(client, sampler):
    fn, options = RUNS[sampler]
    one, one_warnings = run_recording(fn, TARGET, n_chains=N_CHAINS, **options)
    assert one_warnings  # 7 chains of 120 draws: R-hat / ESS fire, so a per-shard warning would show
    for per_shard, by in ((3, sampler), (4, fn)):  # shards [0,3) [3,6) [6,7) and [0,4) [4,7); by name and function
        sharded, sharded_warnings = run_recording(sample_chains, by, TARGET, n_chains=N_CHAINS,
                                                  chains_per_shard=per_shard, client=client, progress=False, **options)
        assert_same_run(one, sharded)
        assert sharded_warnings == one_warnings  # diagnostics once, on all chains: no per-shard warning


def test_per_chain_step_sizes_and_start_points_are_sliced(client):
    options = dict(n_draws=20, n_warmup=10, seed=3, x0="target", step_size=np.linspace(0.1, 0.7, N_CHAINS))
    one, _ = run_recording(mala, TARGET, n_chains=N_CHAINS, **options)
    sharded, _ = run_recording(sample_chains, "mala", TARGET, n_chains=N_CHAINS, chains_per_shard=2, client=client,
                               progress=False, **options)
    assert_same_run(one, sharded)
    assert not np.array_equal(one.samples[:2], one.samples[2:4])  # the chains differ: slicing is tested


def test_a_failing_chain_is_named_by_its_global_index(client):
    x0 = np.zeros((N_CHAINS, 2))
    x0[5] = 1e200  # U(x0[5]) overflows: chain 5 (the second row of the shard [4, 7)) fails at its start
    with pytest.raises(ChainNonFiniteError) as one:
        mala(TARGET, n_chains=N_CHAINS, n_draws=5, n_warmup=0, x0=x0)
    with pytest.raises(ChainNonFiniteError) as sharded:
        sample_chains("mala", TARGET, n_chains=N_CHAINS, chains_per_shard=4, client=client, progress=False,
                      n_draws=5, n_warmup=0, x0=x0)
    assert one.value.chain == sharded.value.chain == 5
    assert str(one.value) == str(sharded.value)


def test_first_failure_is_the_one_process_choice():
    late, early_high, early_low = (ChainNonFiniteError(1, 9, 0.1), ChainNonFiniteError(6, 2, 0.1),
                                   ChainNonFiniteError(4, 2, 0.1))
    assert first_failure([late, early_high, early_low]) is early_low
    assert first_failure([]) is None
    assert shard_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]


def test_bad_requests_are_refused_before_anything_runs():
    with pytest.raises(SDEKitError, match="replica_exchange.*cannot be sharded"):
        sample_chains(replica_exchange, TARGET, n_chains=4)
    with pytest.raises(SDEKitError, match="sampler must be one of"):
        sample_chains("no_u_turn", TARGET, n_chains=4)
    with pytest.raises(SDEKitError, match="mala takes"):
        sample_chains("mala", TARGET, n_chains=4, stepsize=0.1)
    with pytest.raises(SDEKitError, match="chains_per_shard"):
        sample_chains("mala", TARGET, n_chains=4, chains_per_shard=0)
