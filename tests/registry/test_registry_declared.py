"""A second person-level registry, declared only here, is read, checked and loaded with no code of
its own (issue 14 part 4): the registry path is generic over its YAML declaration.

The 教育资助名册 (student aid registry) has other columns than the labour registry — school, a
school-stage enumeration with aliases, an aid amount range, a whole number of semesters, a payment
date, a unique student number — and no employment, certificate or training column. It is written
to a temporary declarations directory and read with ``load_registry_declarations(directory)``.
Each check kind catches a planted bad row by its issue code and row number, in CSV and xlsx; the
clean file loads into ``fact_person`` (the declared columns with no column of their own in
``attributes``), and its issue and DQ rows are stored by the one writer of ``warehouse.load``
(issue code, action, failing rows).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook
from sqlalchemy import Engine, insert, select

from duikou_settings import Settings
from expectations.declaration import DeclarationError
from expectations.registry_declaration import (
    DERIVED_COLUMNS,
    MART_ROLES,
    RegistryDeclaration,
    load_registry_declarations,
    parse_registry_declaration,
)
from tasks.demo.registry import township_names
from tasks.registry.idcard import check_character
from tasks.registry.stream import RegistryStream, stream_registry
from warehouse import schema
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord
from warehouse.refdata import reference_frames
from warehouse.registry import PersonWriter, StreamResult, record_registry_submission

KEY = b"k" * 40
PERIOD = "2017"
START, END = date(2017, 1, 1), date(2017, 12, 31)

STUDENT_AID = {
    "kind": "person_registry",
    "dataset": "student_aid",
    "department": "student_aid",
    "title_zh": "教育资助名册",
    "period_type": "year",
    "grain": "one row per student aided (公民身份号码) per year",
    "due_day": 20,
    "grace_days": 5,
    "columns": [
        {"name": "student_name", "header": "学生姓名", "role": "name"},
        {"name": "id_number", "header": "身份证号", "aliases": ["公民身份号码"], "role": "person_id",
         "unique": True, "age_band": {"min": 3, "max": 25}},
        {"name": "sex", "header": "性别", "role": "sex", "type": "enum", "values": ["男", "女"],
         "value_aliases": {"男性": "男", "女性": "女"}, "male": "男", "female": "女"},
        {"name": "school", "header": "就读学校", "type": "text"},
        {"name": "grade", "header": "学段", "type": "enum", "values": ["学前", "小学", "初中", "高中", "中职", "大学"],
         "value_aliases": {"普高": "高中"}},
        {"name": "aid_amount_yuan", "header": "资助金额(元)", "type": "decimal", "min": 0, "max": 10000},
        {"name": "semesters", "header": "资助学期数", "type": "integer", "min": 1, "max": 2},
        {"name": "granted_on", "header": "发放日期", "type": "date", "min": date(2017, 1, 1),
         "max": date(2017, 12, 31)},
        {"name": "student_number", "header": "学籍号", "type": "text", "unique": True},
        {"name": "township", "header": "乡镇", "role": "township"},
        {"name": "remark", "header": "备注", "type": "text", "required": False},
    ],
    "checks": [
        {"id": check_id, "severity": severity, **({"action": "reject"} if severity == "critical" else {}),
         "reason": f"{check_id} (test)", "message_zh": message}
        for check_id, severity, message in [
            ("id_excel_mangled", "critical", "身份证号被Excel改成科学计数法"),
            ("id_format", "critical", "身份证号不是18位"),
            ("id_check_digit", "critical", "身份证号校验位错误"),
            ("id_birth_date", "critical", "身份证号出生日期无效"),
            ("id_sex", "critical", "性别与身份证号不符"),
            ("id_duplicate", "critical", "身份证号重复"),
            ("age_band", "warning", "年龄不在3–25岁"),
            ("value_missing", "critical", "必填项为空"),
            ("value_not_allowed", "critical", "不在规定选项中"),
            ("value_not_number", "critical", "不是有效数字"),
            ("value_not_integer", "critical", "不是整数"),
            ("value_not_date", "critical", "不是有效日期"),
            ("value_out_of_range", "critical", "超出合理范围"),
            ("value_duplicate", "critical", "学籍号重复"),
            ("township_unknown", "critical", "乡镇名称无法识别"),
        ]
    ],
}
HEADERS = ["学生姓名", "身份证号", "性别", "就读学校", "学段", "资助金额(元)", "资助学期数", "发放日期", "学籍号",
           "乡镇", "备注"]
ATTRIBUTES = ("school", "grade", "aid_amount_yuan", "semesters", "granted_on", "student_number", "remark")


def _id(birth: date, male: bool, serial: int) -> str:
    first17 = f"513323{birth:%Y%m%d}{serial:02d}{(1 if male else 2) + 2 * (serial % 4)}"
    return first17 + check_character(first17)


def _rows(n: int = 12) -> list[list[object]]:
    towns = township_names()
    rows: list[list[object]] = []
    for i in range(n):
        male = i % 2 == 0
        rows.append([
            f"学生{i}", _id(date(2005 + i % 10, 1 + i % 12, 1 + i % 28), male, i),
            "男性" if i == 2 else "男" if male else "女",
            "丹巴县中学", "普高" if i == 5 else ["小学", "初中", "高中", "中职"][i % 4], f"{500 + i * 10}",
            str(1 + i % 2), "2017/09/01" if i == 7 else "2017-09-01", f"XJ{i:05d}", towns[i % len(towns)],
            'a "quoted"\\ remark' if i == 1 else None,
        ])
    return rows


@pytest.fixture
def declarations_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "declarations"
    folder.mkdir()
    (folder / "student_aid.yaml").write_text(yaml.safe_dump(STUDENT_AID, allow_unicode=True, sort_keys=False),
                                             encoding="utf-8")
    return folder


@pytest.fixture
def declaration(declarations_dir: Path) -> RegistryDeclaration:
    return load_registry_declarations(declarations_dir)["student_aid"]


def write_csv(rows: list[list[object]], path: Path) -> Path:
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path


def write_xlsx(rows: list[list[object]], path: Path) -> Path:
    """Typed cells as Excel keeps them: amounts and semesters numbers, the payment date a date."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "资助名册"
    sheet.append(HEADERS)
    for row in rows:
        cells = list(row)
        for index in (5, 6):
            with contextlib.suppress(ValueError):
                cells[index] = float(str(cells[index])) if "." in str(cells[index]) else int(str(cells[index]))
        with contextlib.suppress(ValueError):
            cells[7] = datetime.strptime(str(cells[7]), "%Y-%m-%d")
        sheet.append(cells)
    workbook.save(path)
    return path


WRITERS: dict[str, Callable[[list[list[object]], Path], Path]] = {"csv": write_csv, "xlsx": write_xlsx}


def stream(declaration: RegistryDeclaration, path: Path, tmp_path: Path,
           writer: PersonWriter | None = None) -> RegistryStream:
    settings = Settings(data_dir=tmp_path / "data", person_key="k" * 40)  # type: ignore[arg-type]
    return stream_registry(path, path.name, declaration, START, END, reference_frames(), KEY, settings, writer)


def codes_by_row(result: StreamResult) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for item in result.issues:
        if item.row is not None:
            out.setdefault(item.row, set()).add(item.code)
    return out


# ------------------------------------------------------------------ the declaration
def test_the_second_registry_is_declared_in_yaml_only_and_the_production_path_is_unchanged(
        declarations_dir: Path, declaration: RegistryDeclaration) -> None:
    assert set(load_registry_declarations()) == {"labour_registry"}  # the cached production path
    assert set(load_registry_declarations(declarations_dir)) == {"student_aid"}
    assert declaration.with_role("employment") is None and declaration.with_role("sex") is not None
    assert [c.name for c in declaration.columns_checked_by("value_duplicate")] == ["student_number"]
    assert [c.name for c in declaration.columns_checked_by("value_not_date")] == ["granted_on"]
    assert dict(declaration.column("grade").value_aliases) == {"普高": "高中"}


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw["checks"].pop(11), r"checks not declared: \['value_not_date'\]"),
    (lambda raw: raw["columns"].pop(7), r"checks declared but used by no column: \['value_not_date'\]"),
    (lambda raw: raw["columns"][4].update(role="employment"), "named employment_status"),
    (lambda raw: raw["columns"][4].update(value_aliases={"普高": "高级中学"}), "each value alias names a declared"),
    (lambda raw: raw["columns"][3].update(name="age_years"), "derived by the reader"),
    (lambda raw: raw["columns"][5].update(min="zero"), "min must be a number"),
    (lambda raw: raw["columns"][7].update(max="end of year"), "max must be a date"),
    (lambda raw: raw["columns"][1].update(age_band={"min": 3}), "age_band is"),
    (lambda raw: raw["columns"][3].update(unqiue=True), r"unknown keys \['unqiue'\]"),
    (lambda raw: raw["checks"][6].update(min_age=3), "belong to its columns"),
])
def test_a_malformed_declaration_is_refused_with_the_reason(change: Callable[[dict], object],  # type: ignore[type-arg]
                                                            message: str) -> None:
    raw = json.loads(json.dumps(STUDENT_AID, default=str))
    for col in raw["columns"]:  # dates back to dates (json round trip)
        for key in ("min", "max"):
            if col.get("type") == "date" and key in col:
                col[key] = date.fromisoformat(col[key])
    change(raw)
    with pytest.raises(DeclarationError, match=f"student_aid.yaml.*{message}"):
        parse_registry_declaration(raw, "student_aid.yaml")


def test_the_vocabulary_matches_fact_person() -> None:
    person = schema.fact_person.c
    assert all(name in person for name in DERIVED_COLUMNS)
    assert all(column in person for column, _ in MART_ROLES.values())


# ------------------------------------------------------------------ each check kind catches its planted row
def _set(index: int, value: object) -> Callable[[list[list[object]]], None]:
    def plant(rows: list[list[object]]) -> None:
        rows[4][index] = value
    return plant


def _duplicate(index: int) -> Callable[[list[list[object]]], None]:
    def plant(rows: list[list[object]]) -> None:
        rows[4][index] = rows[2][index]  # rows[2] is a boy too
    return plant


def _swap_sex(rows: list[list[object]]) -> None:
    rows[4][2] = "女" if rows[4][2] == "男" else "男"


def _too_young(rows: list[list[object]]) -> None:
    rows[4][1] = _id(date(2016, 3, 1), rows[4][2] == "男", 4)


ROW = 6  # rows[4]: the header is file row 1
PLANTS: list[tuple[str, Callable[[list[list[object]]], None], str, set[int]]] = [
    ("id_excel_mangled", _set(1, "5.13323E+17"), "PERSON_ID_EXCEL_MANGLED", {ROW}),
    ("id_format", _set(1, "51332320050101123"), "PERSON_ID_INVALID", {ROW}),
    ("id_check_digit", _set(1, _id(date(2009, 5, 5), True, 4)[:-1] + "0"), "PERSON_ID_CHECK_DIGIT", {ROW}),
    ("id_birth_date", _set(1, (lambda f: f + check_character(f))("51332320090231" + "041")), "PERSON_ID_BIRTH_DATE",
     {ROW}),
    ("id_sex", _swap_sex, "PERSON_SEX_MISMATCH", {ROW}),
    ("id_duplicate", _duplicate(1), "PERSON_DUPLICATE", {4}),  # listed by the first row of the repeated ID
    ("age_band", _too_young, "PERSON_AGE_OUT_OF_BAND", {ROW}),
    ("value_missing", _set(3, None), "VALUE_REQUIRED_MISSING", {ROW}),
    ("value_not_allowed", _set(4, "研究生"), "VALUE_NOT_ALLOWED", {ROW}),
    ("value_not_number", _set(5, "五百"), "VALUE_NOT_NUMBER", {ROW}),
    ("value_not_integer", _set(6, "1.5"), "VALUE_NOT_INTEGER", {ROW}),
    ("value_not_date", _set(7, "2017-02-30"), "VALUE_NOT_DATE", {ROW}),
    ("value_out_of_range", _set(5, "25000"), "VALUE_OUT_OF_RANGE", {ROW}),
    ("value_out_of_range", _set(7, "2018-03-01"), "VALUE_OUT_OF_RANGE", {ROW}),
    ("value_duplicate", _duplicate(8), "VALUE_DUPLICATE", {4}),
    ("township_unknown", _set(9, "不存在乡"), "TOWNSHIP_UNKNOWN", {ROW}),
]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(("check_id", "plant", "code", "rows"), PLANTS, ids=[f"{p[0]}-{i}" for i, p in
                                                                            enumerate(PLANTS)])
def test_each_check_kind_catches_its_planted_row(declaration: RegistryDeclaration, tmp_path: Path, fmt: str,
                                                 check_id: str, plant: Callable[[list[list[object]]], None],
                                                 code: str, rows: set[int]) -> None:
    data = _rows()
    plant(data)
    result = stream(declaration, WRITERS[fmt](data, tmp_path / f"aid.{fmt}"), tmp_path).result
    found = codes_by_row(result)
    assert {row for row, codes in found.items() if code in codes} == rows, result.issues
    # nothing else is wrong with the file: only the planted row is named (the duplicate names both rows)
    assert set(found) == rows, found
    flagged = [i for i in result.issues if i.code == code]
    assert all(i.rule_id == check_id and i.severity == declaration.check(check_id).severity for i in flagged)
    assert result.status == ("loaded" if declaration.check(check_id).severity == "warning" else "rejected")
    if check_id in ("id_duplicate", "value_duplicate"):
        assert "第4行、第6行" in flagged[0].message


# ------------------------------------------------------------------ loaded into fact_person, no code of its own
def _load(engine: Engine, declaration: RegistryDeclaration, path: Path, tmp_path: Path, sha: str) -> object:
    # a new department is a declaration plus its row of reference data (warehouse/reference/departments.csv)
    with engine.begin() as conn:
        if conn.execute(select(schema.ref_department).where(
                schema.ref_department.c.department == "student_aid")).first() is None:
            conn.execute(insert(schema.ref_department).values(
                department="student_aid", name_zh="县教育局(教育资助名册)", name_en="education bureau: student aid"))
    record = SubmissionRecord(
        submission_id=submission_key("student_aid", sha), sha256=sha, department="student_aid", period=PERIOD,
        original_name=path.name,
        received_at=datetime(2018, 1, 10, tzinfo=UTC), status="rejected", rows_read=0, rows_loaded=0,
        rows_rejected=0, archive_path=None, receipt_path=None,
    )
    return record_registry_submission(engine, record, declaration,
                                      lambda writer: stream(declaration, path, tmp_path, writer).result)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_clean_file_loads_into_fact_person_with_its_own_columns_in_attributes(
        warehouse_engine: Engine, declaration: RegistryDeclaration, tmp_path: Path, fmt: str) -> None:
    path = WRITERS[fmt](_rows(), tmp_path / f"aid.{fmt}")
    outcome = _load(warehouse_engine, declaration, path, tmp_path, ("a" if fmt == "csv" else "b") * 64)
    assert outcome.load.status == "loaded" and outcome.load.facts_loaded == 12  # type: ignore[attr-defined]
    fp = schema.fact_person
    with warehouse_engine.connect() as conn:
        people = conn.execute(select(fp).order_by(fp.c.source_row)).mappings().all()
        county = conn.execute(select(schema.mart_registry_county)).mappings().one()
        categories = {r.dimension for r in conn.execute(select(schema.mart_registry_category))}
    assert [p["source_row"] for p in people] == list(range(2, 14))
    assert people[2]["sex"] == "男"  # 男性 read as 男 (value alias)
    assert {p["employment_status"] for p in people} == {None} and {p["poor_household"] for p in people} == {None}
    first = json.loads(people[0]["attributes"])
    assert set(first) == set(ATTRIBUTES)
    assert first["aid_amount_yuan"] == 500 and first["semesters"] == 1 and first["granted_on"] == "2017-09-01"
    assert first["remark"] is None and first["student_number"] == "XJ00000"
    assert json.loads(people[1]["attributes"])["remark"] == 'a "quoted"\\ remark'  # escaped, read back whole
    assert json.loads(people[5]["attributes"])["grade"] == "高中"  # 普高 read as 高中
    assert json.loads(people[7]["attributes"])["granted_on"] == "2017-09-01"  # 2017/09/01
    assert all(len(p["person_key"]) == 64 and "513323" not in (p["attributes"] or "") for p in people)
    assert county["persons"] == 12 and county["poor_persons"] == 0 and county["employed_persons"] == 0
    assert categories == {"sex_age_band"}  # the only mart role it declares besides the township


def test_registry_issue_and_dq_rows_keep_code_action_and_failing_rows(
        warehouse_engine: Engine, declaration: RegistryDeclaration, tmp_path: Path) -> None:
    data = _rows()
    data[4][7] = "2017-13-01"
    path = write_csv(data, tmp_path / "aid.csv")
    outcome = _load(warehouse_engine, declaration, path, tmp_path, "c" * 64)
    assert outcome.load.status == "rejected"  # type: ignore[attr-defined]
    submission_id = submission_key("student_aid", "c" * 64)
    with warehouse_engine.connect() as conn:
        dq = {r.check_id: r for r in conn.execute(select(schema.dq_result).where(
            schema.dq_result.c.submission_id == submission_id))}
        issues = conn.execute(select(schema.submission_issue).where(
            schema.submission_issue.c.submission_id == submission_id)).mappings().all()
    failed = dq["registry__value_not_date"]
    assert (failed.issue_code, failed.action, failed.unexpected_count) == ("VALUE_NOT_DATE", "reject", 1)
    assert json.loads(failed.unexpected_rows) == [ROW]
    passed = dq["registry__township_unknown"]
    assert (passed.issue_code, passed.action, json.loads(passed.unexpected_rows)) == ("TOWNSHIP_UNKNOWN", "reject", [])
    assert dq["registry__age_band"].action == "flag"
    stored = [i for i in issues if i["code"] == "VALUE_NOT_DATE"]
    assert [(i["row_number"], i["action"], i["rule_id"]) for i in stored] == [(ROW, "reject", "value_not_date")]
