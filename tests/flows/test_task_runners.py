"""The nightly fan-out through the configured task runner: threads, and Dask on a LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import text

from duikou_settings import Settings, get_settings, reset_settings_cache
from expectations.declaration import load_declarations
from expectations.registry_declaration import load_registry_declarations
from flows.runners import task_runner_from_settings
from flows.warehouse_access import clear_cache, open_warehouse
from tasks.demo.form_writer import write_form
from tasks.demo.registry import registry_table, write_registry_csv
from tasks.demo.values import demo_values
from tasks.landing.reconcile import LandingFile, by_department


def test_runner_is_chosen_by_configuration(tmp_path: Path) -> None:
    threads = task_runner_from_settings(Settings(data_dir=tmp_path, max_workers=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    from prefect_dask import DaskTaskRunner

    remote = task_runner_from_settings(Settings(data_dir=tmp_path, task_runner="dask", dask_address="tcp://h:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://h:8786"
    with pytest.raises(ValueError, match="DUIKOU_TASK_RUNNER must be one of"):
        task_runner_from_settings(Settings(data_dir=tmp_path, task_runner="celery"))


def test_departments_keep_arrival_order() -> None:
    files = [LandingFile(Path(f"/l/{d}/{p}/{n}"), d, p, n, float(i))
             for i, (d, p, n) in enumerate([("labour", "2016-01", "a"), ("health", "2016-01", "b"),
                                            ("labour", "2016-01", "c")])]
    assert [[f.sha256 for f in group] for group in by_department(files)] == [["a", "c"], ["b"]]


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(data))
    monkeypatch.setenv("DUIKOU_PERSON_KEY", "n" * 40)
    monkeypatch.delenv("DUIKOU_WAREHOUSE_URL", raising=False)
    reset_settings_cache()
    clear_cache()
    rows = demo_values(2017)[("poverty", "2016")]
    poverty = data / "landing" / "poverty" / "2016"
    poverty.mkdir(parents=True)
    write_form(poverty / "poverty.xlsx", load_declarations()["poverty"], "2016", rows)  # type: ignore[arg-type]
    registry = data / "landing" / "labour_registry"
    for period, seed in (("2017-05", 1), ("2017-06", 2)):
        (registry / period).mkdir(parents=True)
        table = registry_table(load_registry_declarations()["labour_registry"], 40, date(2017, 5, 31), seed=seed)
        write_registry_csv(table, registry / period / "实名登记.csv")
    yield data
    reset_settings_cache()
    clear_cache()


def test_nightly_on_a_dask_local_cluster(prefect_harness: None, landing: Path) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.nightly import nightly

    # threads inside one LocalCluster process: the workers see the test harness's Prefect API
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "processes": False, "dashboard_address": None})
    summary = nightly.with_options(task_runner=runner)(run_label="dask", build_report=False)
    assert summary.counts()["loaded"] == 3 and not summary.failed
    with open_warehouse(get_settings()).connect() as conn:
        loaded = conn.execute(text(
            "SELECT department, period FROM submission WHERE status = 'loaded' ORDER BY 1, 2")).all()
        people = conn.execute(text("SELECT COUNT(*) FROM fact_person")).scalar_one()
    assert [tuple(r) for r in loaded] == [("labour_registry", "2017-05"), ("labour_registry", "2017-06"),
                                          ("poverty", "2016")]
    assert people == 80
