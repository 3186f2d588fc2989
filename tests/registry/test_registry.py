"""The person-level registry end to end on SQLite and PostgreSQL: checks by row, person keys,
KPIs from people, reconciliation with the labour return, supersede and duplicates, formats."""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import Engine, select, text

from duikou_settings import Settings
from expectations.declaration import DeclarationError, load_declarations
from expectations.registry_declaration import load_registry_declarations, parse_registry_declaration
from tasks.demo.registry import registry_table, write_registry_csv, write_registry_xlsx
from tasks.registry.checks import MissingPersonKey
from tasks.registry.idcard import check_character
from tasks.registry.stream import require_person_key
from tasks.registry.submission import ingest_registry
from tasks.submission.journey import receive
from tests.warehouse.test_roles import roles  # noqa: F401  (the PostgreSQL role-set fixture)
from warehouse import schema
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.refdata import reference_frames, townships_on

KEY = "k" * 40
PERIOD = "2017-05"
SNAPSHOT = date(2017, 5, 31)
DECL = load_registry_declarations()["labour_registry"]
ID, NAME, TOWN, SEX = "公民身份号码", "姓名", "乡(镇)", "性别"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", person_key=KEY)  # type: ignore[arg-type]


def people(n: int, seed: int = 8) -> pd.DataFrame:
    return registry_table(DECL, n, SNAPSHOT, seed=seed).to_pandas()


def write_csv(frame: pd.DataFrame, path: Path, encoding: str = "utf-8") -> Path:
    return write_registry_csv(pa.Table.from_pandas(frame, preserve_index=False), path, encoding)


def ingest(engine: Engine | None, path: Path, tmp_path: Path, period: str = PERIOD):  # type: ignore[no-untyped-def]
    received = receive(path, "labour_registry", period)
    return ingest_registry(received, engine, reference_frames(), settings_for(tmp_path), KEY.encode())


def issues_by_row(stream) -> dict[int, set[str]]:  # type: ignore[no-untyped-def]
    out: dict[int, set[str]] = {}
    for item in stream.result.issues:
        if item.row is not None:
            out.setdefault(item.row, set()).add(item.code)
    return out


# ------------------------------------------------------------------ declaration
def test_registry_is_not_an_aggregate_form_and_its_declaration_is_checked() -> None:
    assert "labour_registry" not in load_declarations()
    assert DECL.role("person_id").header == ID and DECL.check("id_duplicate").action == "reject"
    assert [r.indicator for r in DECL.reconciliations] == ["rural_labour_total_persons", "rural_labour_poor_persons"]
    raw = yaml_of_registry()
    raw["checks"] = [c for c in raw["checks"] if c["id"] != "id_check_digit"]
    with pytest.raises(DeclarationError, match="checks not declared: \\['id_check_digit'\\]"):
        parse_registry_declaration(raw, "broken.yaml")
    raw = yaml_of_registry()
    raw["reconciliation"][0]["against"]["indicator"] = "no_such_indicator"
    with pytest.raises(DeclarationError, match="is not a declared indicator"):
        parse_registry_declaration(raw, "broken.yaml")


def yaml_of_registry() -> dict:  # type: ignore[type-arg]
    import yaml

    from expectations.declaration import DECLARATIONS_DIR

    return yaml.safe_load((DECLARATIONS_DIR / "labour_registry.yaml").read_text(encoding="utf-8"))


def test_missing_person_key_refuses_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(MissingPersonKey, match="DUIKOU_PERSON_KEY is not set"):
        require_person_key(Settings(data_dir=tmp_path))
    with pytest.raises(MissingPersonKey, match="shorter than 32"):
        require_person_key(Settings(data_dir=tmp_path, person_key="short"))  # type: ignore[arg-type]


# ------------------------------------------------------------------ checks by row
def test_every_bad_row_is_named_by_row_and_nothing_loads(warehouse_engine: Engine, tmp_path: Path) -> None:
    frame = people(40)
    good_id = frame.at[0, ID]
    frame.at[2, ID] = "5.13323E+17"  # file row = index + 2 (header on row 1)
    frame.at[3, ID] = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")
    seq = "513323" + "19900230" + "001"
    frame.at[4, ID] = seq + check_character(seq)
    frame.at[5, SEX] = "男" if frame.at[5, SEX] == "女" else "女"
    frame.at[6, ID], frame.at[6, SEX] = frame.at[7, ID], frame.at[7, SEX]  # a duplicate pair: rows 8 and 9
    frame.at[10, "就业状态"] = "打工"
    frame.at[11, TOWN] = "成华区"
    frame.at[12, NAME] = None
    frame.at[13, ID] = "51332319"
    stream, outcome = ingest(warehouse_engine, write_csv(frame, tmp_path / "bad.csv"), tmp_path)
    rows = issues_by_row(stream)
    assert rows[4] == {"PERSON_ID_EXCEL_MANGLED"}
    assert rows[5] == {"PERSON_ID_CHECK_DIGIT"}
    assert rows[6] == {"PERSON_ID_BIRTH_DATE"}
    assert rows[7] == {"PERSON_SEX_MISMATCH"}
    assert rows[8] == {"PERSON_DUPLICATE"}
    assert rows[12] == {"VALUE_NOT_ALLOWED"} and rows[13] == {"TOWNSHIP_UNKNOWN"}
    assert rows[14] == {"VALUE_REQUIRED_MISSING"} and rows[15] == {"PERSON_ID_INVALID"}
    duplicate = next(i for i in stream.result.issues if i.code == "PERSON_DUPLICATE")
    assert duplicate.message.startswith("第8行、第9行")
    assert "打工" in next(i.message for i in stream.result.issues if i.code == "VALUE_NOT_ALLOWED")
    assert outcome is not None and outcome.load.status == "rejected" and outcome.load.facts_loaded == 0
    with warehouse_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM fact_person")).scalar_one() == 0
        status, rejected = conn.execute(text("SELECT status, rows_rejected FROM submission")).one()
        assert (status, rejected) == ("rejected", 9)
        assert conn.execute(text("SELECT COUNT(*) FROM submission_issue")).scalar_one() == len(stream.result.issues)
    texts = " ".join(i.message + (i.column or "") for i in stream.result.issues)
    for value in [v for v in frame[ID].dropna() if len(v) == 18] + frame[NAME].dropna().tolist():
        assert value not in texts


def test_more_failures_than_listed_are_counted(tmp_path: Path) -> None:
    frame = people(250)
    frame[ID] = "5.13323E+17"
    stream, _ = ingest(None, write_csv(frame, tmp_path / "mangled.csv"), tmp_path)
    listed = [i for i in stream.result.issues if i.code == "PERSON_ID_EXCEL_MANGLED"]
    summary = next(i for i in stream.result.issues if i.code == "ROWS_NOT_ALL_LISTED")
    assert len(listed) == 100 and "共250行" in summary.message and stream.result.status == "rejected"


# ------------------------------------------------------------------ loads, KPIs, reconciliation
def _load_labour_form(engine: Engine, counts: pd.DataFrame) -> None:
    """The labour bureau's monthly return for the same month, through the ordinary ledger load."""
    facts = pd.concat([
        pd.DataFrame({"indicator": "rural_labour_total_persons", "township_code": counts.index,
                      "value": counts["persons"].to_numpy(dtype=float), "flagged": False, "source_row": 5}),
        pd.DataFrame({"indicator": "rural_labour_poor_persons", "township_code": counts.index,
                      "value": counts["poor"].to_numpy(dtype=float), "flagged": False, "source_row": 5}),
    ])
    record = SubmissionRecord(
        submission_id=submission_key("labour", "ab" * 32), sha256="ab" * 32, department="labour", period=PERIOD,
        original_name="labour.xlsx",
        received_at=datetime(2017, 6, 5, tzinfo=UTC), status="loaded", rows_read=15, rows_loaded=15,
        rows_rejected=0, archive_path=None, receipt_path=None,
    )
    record_submission(engine, record, facts, pd.DataFrame(columns=["indicator", "value", "label_zh"]), [], [])


def test_people_load_under_keys_and_kpis_count_people_not_rows(warehouse_engine: Engine, tmp_path: Path) -> None:
    frame = people(600)
    codes = dict(zip(townships_on(reference_frames().townships, date(2017, 5, 31))["name_zh"],
                     townships_on(reference_frames().townships, date(2017, 5, 31))["township_code"],
                     strict=True))
    frame["code"] = frame[TOWN].map(codes)
    counts = frame.groupby("code").agg(persons=(ID, "size"), poor=("是否建档立卡贫困户", lambda s: (s == "是").sum()))
    off = counts.index[0]
    counts.loc[off, "persons"] = round(counts.loc[off, "persons"] * 1.2)  # the form disagrees by 20 % here
    _load_labour_form(warehouse_engine, counts)
    path = write_csv(frame.drop(columns="code"), tmp_path / "registry.csv")
    _, outcome = ingest(warehouse_engine, path, tmp_path)
    assert outcome is not None and outcome.load.status == "loaded" and outcome.load.facts_loaded == 600

    trades = frame["参训工种"].dropna()
    expected_times = int(trades.str.count("、").sum() + len(trades))
    with warehouse_engine.connect() as conn:
        county = conn.execute(select(schema.mart_registry_county)).mappings().one()
        keys = conn.execute(text("SELECT person_key FROM fact_person ORDER BY source_row")).scalars().all()
        levels = dict(conn.execute(text(
            "SELECT category, SUM(persons) FROM mart_registry_category WHERE dimension = 'certificate_level' "
            "GROUP BY category")).all())
        recon = conn.execute(text(
            "SELECT township_code, check_id, within_tolerance FROM mart_registry_reconciliation")).all()
    assert county["persons"] == 600 and county["persons_trained"] == len(trades)
    assert county["training_person_times"] == expected_times > county["persons_trained"]  # 人次 ≠ 人
    assert levels == {**frame["证书等级"].fillna("无").value_counts().to_dict()}
    assert keys == [hmac.new(KEY.encode(), i.encode(), "sha256").hexdigest() for i in frame[ID]]
    failing = [(code, check) for code, check, ok in recon if not ok]
    assert failing == [(off, "registry_labour_force_vs_form")] and len(recon) == 2 * len(counts)
    warning = [i for i in outcome.reconciliation_issues if i.code == "REGISTRY_RECONCILIATION"]
    assert len(warning) == 1 and warning[0].severity == "warning" and off in warning[0].message


def test_a_new_snapshot_supersedes_and_the_same_file_is_a_duplicate(warehouse_engine: Engine, tmp_path: Path) -> None:
    first = write_csv(people(50, seed=1), tmp_path / "v1.csv")
    second = write_csv(people(60, seed=2), tmp_path / "v2.csv")
    _, one = ingest(warehouse_engine, first, tmp_path)
    _, two = ingest(warehouse_engine, second, tmp_path)
    _, again = ingest(warehouse_engine, second, tmp_path)
    assert one is not None and two is not None and again is not None
    assert two.load.supersedes == one.load.submission_id
    assert again.load.status == "duplicate" and again.load.duplicate_of == two.load.submission_id
    with warehouse_engine.connect() as conn:
        assert conn.execute(text("SELECT persons FROM mart_registry_county")).scalar_one() == 60
        assert conn.execute(text("SELECT COUNT(*) FROM fact_person")).scalar_one() == 110  # versions kept


def test_stray_control_characters_are_stored_without_them_and_clean_text_as_read(
    warehouse_engine: Engine, tmp_path: Path
) -> None:
    """A village or trade with a control character (COPY refuses NUL; a bell is never meant) loads
    without it on both backends; every other text — the columns the byte scan lets through — as read."""
    frame = people(30)
    frame.at[3, "村"] = "新\x07村\x1f"
    frame.at[5, "参训工种"] = "电工\x0b、焊工"
    _, outcome = ingest(warehouse_engine, write_csv(frame, tmp_path / "controls.csv"), tmp_path)
    assert outcome is not None and outcome.load.status == "loaded"
    with warehouse_engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT source_row, village FROM fact_person")).all())
        trades = dict(conn.execute(text("SELECT source_row, training_trades FROM fact_person")).all())
    assert stored[5] == "新村" and trades[7] == "电工、焊工"
    clean = {i + 2: v for i, v in frame["村"].items() if i != 3}
    assert {row: stored[row] for row in clean} == clean


# ------------------------------------------------------------------ formats
def test_gb18030_csv_and_xlsx_with_a_title_row_read_the_same(tmp_path: Path) -> None:
    frame = people(30)
    gbk = ingest(None, write_csv(frame, tmp_path / "gbk.csv", "gb18030"), tmp_path)[0]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    xlsx = ingest(None, write_registry_xlsx(table, tmp_path / "r.xlsx", title="丹巴县劳动力实名登记表"), tmp_path)[0]
    assert gbk.encoding == "gb18030" and gbk.result.status == "loaded" and gbk.result.rows_read == 30
    assert xlsx.sheet == "实名登记" and xlsx.result.status == "loaded" and xlsx.result.rows_read == 30


def test_an_id_typed_as_a_number_in_excel_is_rejected_by_row(tmp_path: Path) -> None:
    frame = people(5)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    path = write_registry_xlsx(table, tmp_path / "numbers.xlsx")
    from openpyxl import load_workbook

    workbook = load_workbook(path)
    workbook["实名登记"]["B3"] = float(frame.at[1, ID][:17] + "0")  # what Excel does to a long number
    workbook.save(path)
    stream, _ = ingest(None, path, tmp_path)
    assert issues_by_row(stream)[3] == {"PERSON_ID_EXCEL_MANGLED"} and stream.result.status == "rejected"


def test_short_rows_and_a_missing_column_are_reported(tmp_path: Path) -> None:
    frame = people(6)
    path = write_csv(frame, tmp_path / "short.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = ",".join(lines[3].split(",")[:4])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream, _ = ingest(None, path, tmp_path)
    assert issues_by_row(stream)[4] == {"ROW_TRUNCATED"} and stream.result.rows_read == 5
    missing = write_csv(frame.drop(columns=["就业状态"]), tmp_path / "missing.csv")
    stream, _ = ingest(None, missing, tmp_path)
    assert [i.code for i in stream.result.issues if i.severity == "critical"] == ["COLUMN_MISSING"]


def test_number_checks_and_warnings_flag_rows_but_load(tmp_path: Path, sqlite_engine: Engine) -> None:
    frame = people(20)
    frame.at[0, "月收入(元)"] = "80000"  # out of the plausible range: a warning
    seq = "513323" + "19450101" + "003"  # a 72-year-old man: outside the labour age band
    frame.at[1, ID], frame.at[1, SEX] = seq + check_character(seq), "男"
    stream, outcome = ingest(sqlite_engine, write_csv(frame, tmp_path / "warn.csv"), tmp_path)
    assert issues_by_row(stream) == {2: {"VALUE_OUT_OF_RANGE"}, 3: {"PERSON_AGE_OUT_OF_BAND"}}
    assert outcome is not None and outcome.load.status == "loaded"
    with sqlite_engine.connect() as conn:
        flagged = conn.execute(text("SELECT source_row FROM fact_person WHERE flagged")).scalars().all()
    assert flagged == [2, 3]
    assert pc.sum(pa.array([r.success for r in stream.result.dq_results])).as_py() < len(stream.result.dq_results)


def test_reconciliation_is_rebuilt_when_the_labour_return_arrives_later(sqlite_engine: Engine, tmp_path: Path) -> None:
    from warehouse.registry import refresh_registry_reconciliation

    frame = people(120)
    ingest(sqlite_engine, write_csv(frame, tmp_path / "early.csv"), tmp_path)
    with sqlite_engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*), COUNT(form_value) FROM mart_registry_reconciliation")).one()
    assert tuple(before) == (2 * frame[TOWN].nunique(), 0)  # no labour figures yet: rows, nothing to compare
    codes = dict(zip(townships_on(reference_frames().townships, date(2017, 5, 31))["name_zh"],
                     townships_on(reference_frames().townships, date(2017, 5, 31))["township_code"],
                     strict=True))
    frame["code"] = frame[TOWN].map(codes)
    counts = frame.groupby("code").agg(persons=(ID, "size"), poor=("是否建档立卡贫困户", lambda s: (s == "是").sum()))
    _load_labour_form(sqlite_engine, counts)
    assert refresh_registry_reconciliation(sqlite_engine, [DECL]) == 2 * len(counts)
    with sqlite_engine.connect() as conn:
        within = conn.execute(text("SELECT within_tolerance FROM mart_registry_reconciliation")).scalars().all()
    assert within and all(within)


@pytest.mark.postgres
def test_analysts_read_the_registry_marts_but_not_fact_person(roles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.warehouse.test_roles import count, denied

    ingest(roles.admin, write_csv(people(30), tmp_path / "r.csv"), tmp_path)
    roles.create()
    analyst = roles.connect_as(roles.analyst)
    assert count(analyst, "mart_registry_county") == 1 and count(analyst, "mart_registry_township") > 0
    denied(analyst, "SELECT person_key FROM fact_person")
