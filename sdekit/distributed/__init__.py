"""Ensembles, chains and validation on dask.distributed, bit-identical to one process.

Every random number sdekit draws is keyed by (seed, path) (or (seed, chain), or a check's own seed), so a run split
into shards by path index and solved on any number of workers gives exactly the numbers of a single-process run.
`simulate` shards a solve, keeps the saved states on the workers (a dask array) or gathers them, and merges
streaming reductions (`sdekit.reductions`) so that nothing larger than one shard need ever reach one place; a shard
lost with its worker is recomputed from its key, and a checkpoint folder lets a stopped run resume.

Needs the optional extra: ``pip install "sdekit[distributed]"`` (dask[distributed]).
"""

from sdekit.distributed.cluster import cluster, require_distributed

require_distributed()

from sdekit.distributed.chains import sample_chains  # noqa: E402
from sdekit.distributed.checks import power_table_on_cluster, run_checks_on_cluster  # noqa: E402
from sdekit.distributed.ensemble import ShardedSolution, simulate  # noqa: E402

__all__ = ["ShardedSolution", "cluster", "power_table_on_cluster", "require_distributed", "run_checks_on_cluster",
           "sample_chains", "simulate"]
