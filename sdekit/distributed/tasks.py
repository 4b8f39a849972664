"""Run a list of independent tasks on a dask cluster, each under a stable key, with a progress bar over them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

PROGRESS_DELAY_SECONDS = 2.0  # progress=None: a bar appears only for runs that last longer than this


def run_tasks(client: Any, fn: Callable[..., Any], calls: Sequence[tuple], keys: Sequence[str], *,
              progress: bool | None = None, desc: str = "shards", gather: bool = True,
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """fn(*calls[i]) for every i on the cluster of ``client``, task i under ``keys[i]``; the results in index order.

    Keys name what a task computes (a shard of a run), so resubmitting a finished key reuses its result, and a task
    lost with its worker is recomputed by the scheduler from the same key and arguments. ``gather=False`` returns
    the futures instead (results stay on the workers). ``on_result(i, result)`` runs on the client as each task
    finishes (completion order); the returned list is always in index order. progress: a tqdm bar over the tasks
    (True), none (False), or one that appears after PROGRESS_DELAY_SECONDS (None). A task's exception is raised
    here, after the remaining tasks are cancelled.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = [client.submit(fn, *args, key=key, pure=False) for args, key in zip(calls, keys)]
    index = {f.key: i for i, f in enumerate(futures)}
    bar = None if progress is False else tqdm(total=len(futures), desc=desc, unit="task",
                                              delay=0.0 if progress else PROGRESS_DELAY_SECONDS, leave=False)
    try:
        for fut in as_completed(futures):
            if fut.status == "error":
                fut.result()  # raises the task's exception
            if on_result is not None:
                on_result(index[fut.key], fut.result())
            if bar is not None:
                bar.update(1)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        if bar is not None:
            bar.close()
    return client.gather(futures) if gather else futures
