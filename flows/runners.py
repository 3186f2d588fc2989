"""Where the nightly fan-out runs: the Prefect task runner chosen by configuration.

* ``DUIKOU_TASK_RUNNER=threads`` (default): ``ThreadPoolTaskRunner(max_workers=DUIKOU_MAX_WORKERS)``
  — bounded (Prefect's default pool is unbounded), in the flow's own process;
* ``DUIKOU_TASK_RUNNER=dask``: ``prefect_dask.DaskTaskRunner`` on the Dask scheduler at
  ``DUIKOU_DASK_ADDRESS`` (``tcp://host:8786``: workers on other hosts, each with duikou
  installed, the same ``DUIKOU_*`` settings and ``PREFECT_API_URL``), or — without an address —
  a temporary ``LocalCluster`` of ``DUIKOU_MAX_WORKERS`` worker processes on this machine.

The unit of fan-out is a **department**: its files are ingested in arrival order inside one task,
so a correction never overtakes the version it corrects and every history check (本年累计, a
value against the township's history) sees the earlier periods; departments run in parallel.
Writers still serialise per partition through the warehouse lock (PostgreSQL advisory lock;
SQLite's single writer).

* ``DUIKOU_TASK_RUNNER=workpool``: the departments become separate flow runs of the
  ``ingest-department`` deployment on the process work pool ``DUIKOU_WORK_POOL``
  (``flows/workpool.py``, ``duikou workpool setup``); needs ``PREFECT_API_URL``. The nightly's own
  tasks run on the thread pool.
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from duikou_settings import Settings

TASK_RUNNERS = ("threads", "dask", "workpool")


def task_runner_from_settings(settings: Settings) -> Any:
    """The configured task runner (a new, unstarted instance)."""
    if settings.task_runner in ("threads", "workpool"):  # workpool: the departments leave by flow runs
        return ThreadPoolTaskRunner(max_workers=settings.max_workers)
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.max_workers, "threads_per_worker": 1,
                                              "dashboard_address": None})
    raise ValueError(f"DUIKOU_TASK_RUNNER must be one of {TASK_RUNNERS}, got {settings.task_runner!r}")


def nightly_flow(settings: Settings) -> Any:
    """The ``nightly`` flow with the configured task runner (workpool: refused without a Prefect server)."""
    from flows.nightly import nightly

    if settings.task_runner == "workpool":
        from flows.workpool import require_server

        require_server(settings)

    return nightly.with_options(task_runner=task_runner_from_settings(settings))
