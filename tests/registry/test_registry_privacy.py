"""No ID number and no name leaves the registry file: searched for in every warehouse table, the
receipts, what the command printed, the logs Python and Prefect recorded, the Prefect artifacts
and every file ``duikou dq docs`` wrote (its page and the GX Data Docs of the sample) — after a
loaded and a rejected submission through ``duikou ingest``. The report site ``duikou report``
builds (its 劳动力实名登记 page, every .xlsx / .csv / Parquet download) holds no ID, no name, no
person key and not the key itself either."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

from duikou_settings import get_settings, reset_settings_cache
from expectations.registry_declaration import load_registry_declarations
from flows.warehouse_access import open_warehouse
from tasks.demo.registry import registry_table, write_registry_csv
from tasks.registry.idcard import check_character
from tests.helpers.report_texts import site_texts
from warehouse import schema

DECL = load_registry_declarations()["labour_registry"]


def _files(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    table = registry_table(DECL, 80, date(2017, 5, 31), seed=21)
    names = [f"测试人员{i:03d}号" for i in range(table.num_rows)]  # distinctive, so a search cannot miss
    table = table.set_column(table.column_names.index("姓名"), "姓名", pa.array(names))
    good = write_registry_csv(table, tmp_path / "good.csv")
    ids = table.column("公民身份号码").to_pylist()
    bad_ids = list(ids)
    bad_ids[3] = ids[3][:-1] + ("1" if ids[3][-1] != "1" else "2")  # check digit
    bad_ids[5] = ids[6]  # duplicate
    seq = "513323" + "19900230" + "001"
    bad_ids[7] = seq + check_character(seq)
    bad = table.set_column(table.column_names.index("公民身份号码"), "公民身份号码", pa.array(bad_ids))
    bad_path = write_registry_csv(bad, tmp_path / "bad.csv")
    return good, bad_path, sorted({*ids, *bad_ids, *names})


async def _prefect_texts() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter

    async def every(read, **kwargs):  # type: ignore[no-untyped-def]  # the API pages by 200
        found, offset = [], 0
        while page := await read(limit=200, offset=offset, **kwargs):
            found.extend(page)
            offset += len(page)
        return found

    async with get_client() as client:
        logs = await every(client.read_logs, log_filter=LogFilter())
        artifacts = await every(client.read_artifacts)
        runs = await every(client.read_task_runs)
    parts = [log.message for log in logs]
    parts += [f"{a.key} {a.description} {a.data}" for a in artifacts]
    parts += [f"{r.name} {r.task_inputs} {r.state.message if r.state else ''}" for r in runs]
    return "\n".join(parts)


def test_no_id_or_name_in_any_output(
    prefect_harness: None, registry_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flows.cli import main

    good, bad, secrets = _files(tmp_path)
    caplog.set_level(logging.DEBUG)
    assert main(["ingest", str(good), "--department", "labour_registry", "--period", "2017-05", "--json"]) == 0
    assert main(["ingest", str(bad), "--department", "labour_registry", "--period", "2017-06", "--json"]) == 1
    printed = capsys.readouterr()
    assert '"status": "rejected"' in printed.out and "PERSON_DUPLICATE" in printed.out

    engine = open_warehouse(get_settings())
    sub = schema.submission
    with engine.connect() as conn:
        ids_by_period = dict(conn.execute(select(sub.c.period, sub.c.submission_id)
                                          .where(sub.c.department == "labour_registry")).all())
    docs: dict[str, str] = {}
    for period, submission_id in sorted(ids_by_period.items()):  # 2017-05 loaded, 2017-06 rejected
        out = tmp_path / "dq-docs" / period
        assert main(["dq", "docs", submission_id, "--out", str(out)]) == 0
        written = sorted(p for p in out.rglob("*") if p.is_file())
        docs[period] = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in written)
        assert "PERSON_ID_CHECK_DIGIT" in docs[period]  # the checks are documented, not an empty page
    assert (tmp_path / "dq-docs" / "2017-05" / "gx" / "index.html").is_file()  # GX Data Docs of the sample
    assert "gx_sample__sex__in_set" in docs["2017-05"]
    more = capsys.readouterr()
    outputs: dict[str, str] = {"stdout": printed.out + more.out, "stderr": printed.err + more.err,
                               "python logs": caplog.text}
    outputs.update({f"dq docs {period}": text for period, text in docs.items()})
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            rows = conn.execute(select(table)).all()
            outputs[f"table {table.name}"] = "\n".join(map(str, rows))
        for view in schema.VIEWS:
            outputs[f"view {view}"] = "\n".join(map(str, conn.exec_driver_sql(f"SELECT * FROM {view}").all()))
    assert outputs["table fact_person"].count("\n") == 79  # the good file's 80 people are there, keyed
    receipts = sorted((registry_env / "receipts").rglob("*"))
    assert receipts, "receipts were written"
    for path in receipts:
        if path.is_file():
            outputs[f"receipt {path.name}"] = path.read_text(encoding="utf-8", errors="replace")
    outputs["prefect logs, artifacts, task runs"] = asyncio.run(_prefect_texts())
    assert "registry labour_registry 2017-06" in outputs["prefect logs, artifacts, task runs"]  # searched, not empty

    leaks = {where: [s for s in secrets if s in text] for where, text in outputs.items()}
    assert {where: found[:3] for where, found in leaks.items() if found} == {}

    # the report site: the registry page shows the loaded snapshot's head counts, and nothing personal
    assert main(["report", "--out", str(tmp_path / "site")]) == 0
    site = (tmp_path / "site" / "latest").resolve()
    texts = site_texts(site)
    assert 'data-measure="persons">80 人<' in texts["registry.html"]
    assert "data/labour_registry_snapshots.xlsx" in texts["downloads.html"]
    assert "data/marts/mart_registry_county.parquet" in texts
    with engine.connect() as conn:
        keys = conn.execute(select(schema.fact_person.c.person_key)).scalars().all()
    personal = [*secrets, *keys, get_settings().person_key.get_secret_value()]  # type: ignore[union-attr]
    assert len(keys) == 80
    leaks = {rel: [s for s in personal if s in text] for rel, text in texts.items()}
    assert {rel: found[:3] for rel, found in leaks.items() if found} == {}
    # the department's own file is kept as received (archive/, quarantine/): the only copy with IDs
    kept = [p for p in (registry_env / "archive").rglob("*.csv")] + list((registry_env / "quarantine").rglob("*.csv"))
    assert len(kept) == 2


def test_ingest_refuses_without_the_key(
    prefect_harness: None, registry_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.cli import main

    monkeypatch.delenv("DUIKOU_PERSON_KEY")
    reset_settings_cache()
    good, _, _ = _files(tmp_path)
    code = main(["ingest", str(good), "--department", "labour_registry", "--period", "2017-05"])
    out = capsys.readouterr()
    assert code != 0 and "DUIKOU_PERSON_KEY is not set" in out.err + out.out
    assert not (registry_env / "receipts").exists() or not any((registry_env / "receipts").iterdir())
