"""``duikou workpool setup``: the process work pool and the ``ingest-department`` deployment the
nightly's work-pool mode (``DUIKOU_TASK_RUNNER=workpool``) submits to. See docs/scaling.md."""

from __future__ import annotations

import argparse
import os
import sys

from duikou_settings import get_settings, reset_settings_cache

EXIT_OK, EXIT_USAGE = 0, 2


def cmd_workpool_setup(args: argparse.Namespace) -> int:
    from flows.workpool import WorkPoolUnavailable, api_url, setup_work_pool

    if args.pool:
        os.environ["DUIKOU_WORK_POOL"] = args.pool
        reset_settings_cache()
    settings = get_settings()
    try:
        done = setup_work_pool(settings)
    except WorkPoolUnavailable as exc:
        print(f"duikou workpool setup: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"work pool {done.work_pool} (process): {'created' if done.pool_created else 'exists'} on {api_url()}")
    print(f"deployment ingest-department/ingest-department {done.deployment_id}: runs code in {done.source}")
    print(f"concurrency limit duikou-warehouse-writers = {done.writer_limit}")
    print(f"workers: prefect worker start --pool {done.work_pool} --type process --limit 1   "
          "(each with the same DUIKOU_* settings and PREFECT_API_URL)")
    print("nightly: DUIKOU_TASK_RUNNER=workpool duikou nightly")
    return EXIT_OK


def add_workpool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workpool = sub.add_parser("workpool", help="the nightly's work-pool mode: process pool and deployment")
    wsub = workpool.add_subparsers(dest="workpool_command", required=True)
    setup = wsub.add_parser("setup", help="create (or update) the process work pool and the ingest-department "
                                          "deployment on the server in PREFECT_API_URL; idempotent")
    setup.add_argument("--pool", help="work pool name (default $DUIKOU_WORK_POOL or duikou-process)")
    setup.set_defaults(func=cmd_workpool_setup)
