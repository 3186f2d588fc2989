"""The labour registry in the report: the completeness pages show it like a form (its snapshots in
the department × period matrix, a missing quarter as 缺报, a township drill-down counting people),
and its own page shows KPIs from people — read from the registry marts after a real load."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, select, text

from duikou_settings import Settings
from expectations.registry_declaration import load_registry_declarations
from tasks.demo.registry import registry_table, write_registry_csv
from tasks.report.build_site import render_site
from tasks.report.data import load_report_data
from tasks.report.quality import completeness_matrices, township_drilldown
from tasks.report.registry import registry_lines, registry_views
from warehouse import schema
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.refdata import reference_frames, townships_on

DEPARTMENTS = {"labour_registry": "县人力资源和社会保障局(劳动力实名登记)", "labour": "县人力资源和社会保障局"}
CODES = ("513323201", "513323208")
TOWNSHIPS = pd.DataFrame({"township_code": list(CODES), "township_name": ["巴旺乡", "格宗乡"]})


def _summary() -> pd.DataFrame:
    rows = []
    for period, status, reported in (("2017-06", "on_time", 2), ("2017-09", "missing", 0)):
        rows.append({"department": "labour_registry", "period": period, "due_date": date(2017, int(period[5:]) + 1, 10),
                     "status": status, "expected": 1, "received": int(status != "missing"),
                     "on_time": int(status == "on_time"), "late": 0, "missing": int(status == "missing"),
                     "loaded": int(status != "missing"), "quarantined": 0, "rejected": 0,
                     "townships_expected": 2, "townships_reported": reported, "first_received_at": None})
    return pd.DataFrame(rows)


def test_registry_snapshots_in_the_matrix_and_people_in_the_drilldown() -> None:
    matrices, _ = completeness_matrices(_summary(), DEPARTMENTS)
    (matrix,) = matrices
    (row,) = matrix.rows
    assert row[0].text == DEPARTMENTS["labour_registry"] and matrix.head == ("部门", "6月", "9月")
    assert [c.text for c in row[1:]] == ["按时", "缺报 0/2"]
    towns = pd.DataFrame({"department": "labour_registry", "period": "2017-06", "township_code": list(CODES),
                          "reported": [True, False], "values_reported": [37, 0]})
    drill = township_drilldown(towns, "labour_registry", TOWNSHIPS, DEPARTMENTS)
    (year,) = drill.matrices
    cells = {r[0].text: r[1] for r in year.rows}
    assert cells["巴旺乡"].text == "已报 37" and cells["巴旺乡"].title == "2017年6月:已报 37 人"
    assert cells["格宗乡"].text == "未报"
    assert "劳动力实名登记表为全县一份名册快照(应报月份:3月、6月、9月、12月)" in drill.note
    assert drill.section.table is not None and "已报人数(人)" in " ".join(drill.section.table.head)
    form = township_drilldown(towns.assign(department="labour"), "labour", TOWNSHIPS, DEPARTMENTS)
    assert form.matrices[0].rows[0][1].title == "2017年6月:已报 37 项数值" and "名册" not in form.note


# ---------------------------------------------------------------- the 劳动力实名登记 page, from the marts
KEY = "r" * 40
PERIOD = "2017-05"


def load_registry_snapshot(engine: Engine, tmp_path: Path, *, names: list[str] | None = None) -> dict[str, Any]:
    """An 80-person snapshot through the registry load, after a labour return of the same month
    that agrees with it in every township but one (double the people there: outside tolerance).
    Returns the raw IDs and names (for privacy searches) and the township planted outside."""
    from tasks.registry.submission import ingest_registry
    from tasks.submission.journey import receive

    declaration = load_registry_declarations()["labour_registry"]
    table = registry_table(declaration, 80, date(2017, 5, 31), seed=5)
    if names is not None:
        table = table.set_column(table.column_names.index("姓名"), "姓名", pa.array(names))
    frame = table.to_pandas()
    codes = dict(zip(townships_on(reference_frames().townships, date(2017, 5, 31))["name_zh"],
                     townships_on(reference_frames().townships, date(2017, 5, 31))["township_code"],
                     strict=True))
    frame["code"] = frame["乡(镇)"].map(codes)
    counts = frame.groupby("code").agg(persons=("公民身份号码", "size"),
                                       poor=("是否建档立卡贫困户", lambda s: int((s == "是").sum())))
    off = str(counts["persons"].idxmax())
    form = counts.assign(persons=counts["persons"].where(counts.index != off, counts["persons"] * 2))
    facts = pd.concat([
        pd.DataFrame({"indicator": "rural_labour_total_persons", "township_code": form.index,
                      "value": form["persons"].to_numpy(dtype=float), "flagged": False, "source_row": 5}),
        pd.DataFrame({"indicator": "rural_labour_poor_persons", "township_code": form.index,
                      "value": form["poor"].to_numpy(dtype=float), "flagged": False, "source_row": 5}),
    ])  # fmt: skip
    record = SubmissionRecord(
        submission_id=submission_key("labour", "cd" * 32), sha256="cd" * 32, department="labour", period=PERIOD,
        original_name="labour.xlsx",
        received_at=datetime(2017, 6, 5, tzinfo=UTC), status="loaded", rows_read=15, rows_loaded=15,
        rows_rejected=0, archive_path=None, receipt_path=None,
    )  # fmt: skip
    record_submission(engine, record, facts, pd.DataFrame(columns=["indicator", "value", "label_zh"]), [], [])
    path = write_registry_csv(table, tmp_path / "registry.csv")
    settings = Settings(data_dir=tmp_path / "data", person_key=KEY)  # type: ignore[arg-type]
    _, outcome = ingest_registry(receive(path, "labour_registry", PERIOD), engine, reference_frames(), settings,
                                 KEY.encode())
    assert outcome is not None and outcome.load.status == "loaded"
    return {"ids": frame["公民身份号码"].tolist(), "names": frame["姓名"].tolist(), "off": off,
            "off_name": reference_frames().townships.set_index("township_code").at[off, "name_zh"],
            "submission_id": outcome.load.submission_id}


def test_registry_page_shows_people_not_rows_and_the_reconciliation(
    warehouse_engine: Engine, tmp_path: Path
) -> None:
    """SQLite, and PostgreSQL when DUIKOU_TEST_POSTGRES_URL is set (COPY, real booleans)."""
    loaded = load_registry_snapshot(warehouse_engine, tmp_path)
    data = load_report_data(warehouse_engine)
    with warehouse_engine.connect() as conn:
        county = conn.execute(select(schema.mart_registry_county)).mappings().one()
        levels = dict(conn.execute(text(
            "SELECT category, SUM(persons) FROM mart_registry_category WHERE dimension = 'certificate_level' "
            "GROUP BY category")).all())
    site = render_site(data)
    page = site["pages"]["registry.html"]
    for measure in ("persons", "poor_persons", "persons_trained", "certified_persons", "employed_persons"):
        assert f'data-measure="{measure}">{county[measure]} 人<' in page, measure
    assert f'data-measure="training_person_times">{county["training_person_times"]} 人次<' in page
    assert county["persons_trained"] < county["training_person_times"]
    assert "2017年5月" in page and loaded["submission_id"] in page and "应报快照月份 3月、6月、9月、12月" in page
    result = page.split('id="reconciliation-result" class="flag">')[1].split("</p>")[0]
    assert loaded["off_name"] in result and "1 项超出" in result
    tables = {t.name: t for t in site["tables"]}
    recon = tables["labour_registry_reconciliation_2017_05"].table.rows.set_index("township")
    assert list(recon["c0_within"]).count("否") == 1 and recon.at[loaded["off_name"], "c0_within"] == "否"
    assert (recon.drop(index=["合计", loaded["off_name"]])["c0_within"] == "是").all()
    assert (recon.drop(index="合计")["c1_within"] == "是").all()
    assert recon.at["合计", "c0_registry"] == 80
    certification = tables["labour_registry_certification_2017_05"].table.rows.set_index("certificate_level")
    assert certification["persons"].to_dict() == {k: levels.get(k, 0) for k in certification.index}
    towns = tables["labour_registry_townships_2017_05"].table.rows.set_index("township")
    statuses = [c for c in towns.columns if c.startswith("status_")]
    assert towns.at["合计", "persons"] == 80 and (towns[statuses].sum(axis=1) == towns["persons"]).all()
    history = tables["labour_registry_snapshots"].table.rows
    assert history["period"].tolist() == [PERIOD] and history["outside"].tolist() == [1]
    assert 'href="registry.html"' in site["pages"]["index.html"] and "登记劳动力 80 人" in site["pages"]["index.html"]
    (view,) = registry_views(data)
    lines = registry_lines(view)
    assert f"{county['persons_trained']} 人 vs {county['training_person_times']} 人次" in "\n".join(lines)
    assert any(loaded["off_name"] in line and "⚠" in line for line in lines)

