"""Files from outside may be damaged or crafted: the reader refuses them with a stable code.

Every failure is a :class:`tasks.forms.file_safety.ReadError` with an issue code and a Chinese message —
never a crash, never unbounded memory or time. Crafted archives are built here in memory (the
zip bomb once per module, ~1 MB on disk). The ordinary unreadable / mislabelled / empty files
are in ``tests/forms/test_read_layout.py`` and the fixture corpus; this module is about limits and
attacks: size, zip bombs, XML entities, absurd cell ranges, truncated CSV, hostile file names
and hostile header text.
"""

from __future__ import annotations

import io
import re
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import xlwt
from sqlalchemy import Engine, func, inspect, select

from duikou_settings import Settings, reset_settings_cache
from expectations.declaration import load_declarations
from expectations.issues import Issue, issue
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.forms.file_safety import ReadError, ReadLimits
from tasks.forms.periods import Period
from tasks.forms.read import read_grids, read_path
from tasks.submission.journey import (
    Received,
    _safe_name,
    attach_correction_workbook,
    load,
    parse,
    receive,
    storage_paths,
    store_file,
    validate,
    write_receipt,
)
from warehouse.refdata import ReferenceFrames, reference_frames
from warehouse.schema import fact_indicator_value, submission_issue

EDU, MAY = "education", "2017-05"
MiB = 1 << 20
LIMITS = ReadLimits(max_bytes=20 * MiB, max_uncompressed_bytes=200 * MiB, max_compression_ratio=100, max_cells=500_000)
SHEET = "xl/worksheets/sheet1.xml"


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


@pytest.fixture(scope="module")
def education_rows() -> pd.DataFrame:
    return demo_values()[(EDU, MAY)]


@pytest.fixture(scope="module")
def good_xlsx(tmp_path_factory: pytest.TempPathFactory, education_rows: pd.DataFrame) -> bytes:
    path = tmp_path_factory.mktemp("good") / "教育.xlsx"
    return write_form(path, load_declarations()[EDU], MAY, education_rows).read_bytes()


def refused(content: bytes, name: str, limits: ReadLimits = LIMITS) -> Issue:
    with pytest.raises(ReadError) as caught:
        read_grids(content, name, limits=limits)
    problem = caught.value.issue
    assert problem.severity == "critical" and problem.action == "reject"
    assert re.search(r"[\u4e00-\u9fff]", problem.message), problem.message  # told in Chinese
    return problem


def with_member(xlsx: bytes, member: str, data: bytes) -> bytes:
    """The workbook with one archive member replaced (or added)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = [i.filename for i in src.infolist()]
        for name in names:
            dst.writestr(name, data if name == member else src.read(name))
        if member not in names:
            dst.writestr(member, data)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------------


def test_settings_carry_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_UPLOAD_BYTES", "MAX_UNCOMPRESSED_BYTES", "MAX_COMPRESSION_RATIO", "MAX_CELLS"):
        monkeypatch.delenv(f"DUIKOU_{name}", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_upload_bytes == 20 * MiB
    assert settings.max_uncompressed_bytes == 200 * MiB
    assert settings.max_compression_ratio == 100
    assert settings.max_cells == 500_000
    env_example = (Path(__file__).parents[2] / ".env.example").read_text(encoding="utf-8")
    for name in ("MAX_UPLOAD_BYTES", "MAX_UNCOMPRESSED_BYTES", "MAX_COMPRESSION_RATIO", "MAX_CELLS"):
        assert f"DUIKOU_{name}=" in env_example


@pytest.mark.parametrize("name", ["教育.xlsx", "教育.xls", "教育.csv", "教育.pdf"])
def test_a_file_over_the_limit_is_refused_before_it_is_parsed(name: str) -> None:
    content = b"PK\x03\x04 not even a zip" + b"\x00" * 2048  # would be FILE_UNREADABLE if parsed
    problem = refused(content, name, ReadLimits(2048, 200 * MiB, 100, 500_000))
    assert problem.code == "FILE_TOO_LARGE"
    assert "2.0KB" in problem.message  # the limit, in words a clerk understands
    with pytest.raises(ReadError) as caught:
        read_grids(content, name, max_bytes=2048)
    assert caught.value.issue.code == "FILE_TOO_LARGE"


def test_the_upload_limit_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, reference: ReferenceFrames, good_xlsx: bytes
) -> None:
    path = tmp_path / "教育.xlsx"
    path.write_bytes(good_xlsx)
    monkeypatch.setenv("DUIKOU_MAX_UPLOAD_BYTES", str(len(good_xlsx) - 1))
    reset_settings_cache()
    try:
        parsed = parse(receive(path, EDU, MAY), reference)
        assert parsed.form is None and [i.code for i in parsed.fatal] == ["FILE_TOO_LARGE"]
        assert validate(parsed).outcome == "rejected"
    finally:
        monkeypatch.delenv("DUIKOU_MAX_UPLOAD_BYTES")
        reset_settings_cache()
    assert parse(receive(path, EDU, MAY), reference).fatal == ()


def test_read_path_refuses_a_huge_file_without_reading_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.xlsx"
    with path.open("wb") as fh:
        fh.truncate(8 << 30)  # 8 GB, sparse: nothing is written, and nothing may be read
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: pytest.fail(f"{self} was opened"))
    with pytest.raises(ReadError) as caught:
        read_path(path, limits=LIMITS)
    assert caught.value.issue.code == "FILE_TOO_LARGE"


# --------------------------------------------------------------------------------------------
# Zip bombs and other crafted archives
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory, good_xlsx: bytes) -> Path:
    """A real workbook whose sheet is 1 GiB of zeros, deflated to about 1 MB."""
    path = tmp_path_factory.mktemp("bomb") / "教育.xlsx"
    chunk = bytes(MiB)
    with zipfile.ZipFile(io.BytesIO(good_xlsx)) as src, zipfile.ZipFile(
        path, "w", zipfile.ZIP_DEFLATED, compresslevel=9
    ) as dst:
        for info in src.infolist():
            if info.filename != SHEET:
                dst.writestr(info.filename, src.read(info.filename))
        with dst.open(SHEET, "w", force_zip64=True) as sheet:
            for _ in range(1024):
                sheet.write(chunk)
    assert path.stat().st_size < 2 * MiB
    return path


def test_a_zip_bomb_is_refused_quickly_in_little_memory(zip_bomb: Path) -> None:
    content = zip_bomb.read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(ReadError) as caught:
            read_grids(content, zip_bomb.name, limits=LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MiB  # the 1 GiB member is never inflated
    problem = caught.value.issue
    assert problem.code == "FILE_UNSAFE"
    assert SHEET in problem.message and "压缩" in problem.message


def test_a_zip_bomb_is_rejected_through_the_pipeline(zip_bomb: Path, reference: ReferenceFrames) -> None:
    parsed = parse(receive(zip_bomb, EDU, MAY), reference)
    assert [i.code for i in parsed.fatal] == ["FILE_UNSAFE"]
    assert validate(parsed).outcome == "rejected"


def test_the_uncompressed_total_is_limited(good_xlsx: bytes) -> None:
    problem = refused(good_xlsx, "教育.xlsx", ReadLimits(20 * MiB, 20_000, 100, 500_000))
    assert problem.code == "FILE_UNSAFE" and "解压后" in problem.message


def test_one_member_with_an_absurd_ratio_is_refused(good_xlsx: bytes) -> None:
    padded = with_member(good_xlsx, "xl/media/padding.bin", bytes(3 * MiB))  # ~1000:1
    problem = refused(padded, "教育.xlsx")
    assert problem.code == "FILE_UNSAFE" and "xl/media/padding.bin" in problem.message
    # a small member may compress well: only the total counts for it
    assert read_grids(with_member(good_xlsx, "xl/media/small.bin", bytes(200_000)), "教育.xlsx", limits=LIMITS)


def test_a_member_that_lies_about_its_size_is_unreadable(good_xlsx: bytes) -> None:
    """The central directory says 1000 bytes; zipfile stops there and the CRC check fails."""
    data = bytearray(with_member(good_xlsx, "xl/media/liar.bin", bytes(MiB)))
    name = b"xl/media/liar.bin"
    local = data.index(name) - 30  # the local header comes first, its name at offset 30
    central = data.index(name, local + 31) - 46  # the central directory entry, name at offset 46
    assert data[local : local + 4] == b"PK\x03\x04" and data[central : central + 4] == b"PK\x01\x02"
    data[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    problem = refused(bytes(data), "教育.xlsx")
    assert problem.code == "FILE_UNREADABLE"


def test_an_archive_declaring_too_many_members_is_refused(good_xlsx: bytes) -> None:
    data = bytearray(good_xlsx)
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2
    assert refused(bytes(data), "教育.xlsx").code == "FILE_UNSAFE"


def test_a_truncated_workbook_is_unreadable(good_xlsx: bytes) -> None:
    assert refused(good_xlsx[: len(good_xlsx) // 2], "教育.xlsx").code == "FILE_UNREADABLE"


# --------------------------------------------------------------------------------------------
# XML entities
# --------------------------------------------------------------------------------------------

_LAUGHS = "".join(
    ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
)
BILLION_LAUGHS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f"<!DOCTYPE worksheet [{_LAUGHS}]>\n"
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row></sheetData></worksheet>'
)


def test_openpyxl_parses_with_defusedxml() -> None:
    import openpyxl.xml

    assert openpyxl.xml.DEFUSEDXML is True  # defusedxml is a project dependency


@pytest.mark.parametrize(
    ("member", "xml"),
    [
        (SHEET, BILLION_LAUGHS.encode()),
        (SHEET, BILLION_LAUGHS.replace("UTF-8", "UTF-16").encode("utf-16")),
        (SHEET, EXTERNAL_ENTITY.encode()),
        ("xl/sharedStrings.xml", BILLION_LAUGHS.encode()),  # any part, not only sheets
        ("[Content_Types].xml", EXTERNAL_ENTITY.encode()),
    ],
)
def test_xml_entity_attacks_are_refused_fast(good_xlsx: bytes, member: str, xml: bytes) -> None:
    crafted = with_member(good_xlsx, member, xml)
    tracemalloc.start()
    try:
        problem = refused(crafted, "教育.xlsx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MiB  # no entity was expanded
    assert problem.code == "FILE_UNSAFE" and "实体" in problem.message


def test_defusedxml_stops_an_entity_attack_even_past_the_archive_scan(good_xlsx: bytes) -> None:
    from defusedxml import DefusedXmlException

    crafted = with_member(good_xlsx, SHEET, BILLION_LAUGHS.encode())
    with pytest.raises(ValueError) as caught:
        openpyxl.load_workbook(io.BytesIO(crafted))
    chain: BaseException | None = caught.value
    while chain is not None and not isinstance(chain, DefusedXmlException):
        chain = chain.__cause__ or chain.__context__
    assert isinstance(chain, DefusedXmlException)


# --------------------------------------------------------------------------------------------
# Absurd cell ranges: a tiny file must not make the reader walk 17 billion cells
# --------------------------------------------------------------------------------------------


def test_a_merged_range_over_the_whole_sheet_is_refused(good_xlsx: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(good_xlsx)) as z:
        sheet = z.read(SHEET)
    assert b"</mergeCells>" in sheet
    huge = b'<mergeCell ref="A40:XFD1048576"/></mergeCells>'
    crafted = with_member(good_xlsx, SHEET, sheet.replace(b"</mergeCells>", huge))
    problem = refused(crafted, "教育.xlsx")  # the range counts as its cells before any is visited
    assert problem.code == "FILE_UNSAFE" and "超过500000个" in problem.message


def test_a_value_in_the_last_cell_of_the_sheet_is_refused(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["A1"] = "乡(镇)"
    ws["XFD1048576"] = "x"
    wb.save(tmp_path / "far.xlsx")
    problem = refused((tmp_path / "far.xlsx").read_bytes(), "far.xlsx")  # from the sheet's extent
    assert problem.code == "FILE_UNSAFE" and "1048576行×16384列" in problem.message


def test_an_empty_formatted_cell_far_away_costs_nothing(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["A1"] = "乡(镇)"
    ws["B2"] = 1
    ws["XFD1048576"].number_format = "0.00"  # styled, empty: Excel writes such cells
    wb.save(tmp_path / "styled.xlsx")
    (grid,) = read_grids((tmp_path / "styled.xlsx").read_bytes(), "styled.xlsx", limits=LIMITS)
    assert grid.rows == (("乡(镇)", None), (None, 1))


def test_an_xls_value_in_the_last_cell_is_refused(tmp_path: Path) -> None:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    sheet.write(0, 0, "乡(镇)")
    sheet.write(65535, 255, "x")
    book.save(str(tmp_path / "far.xls"))
    problem = refused((tmp_path / "far.xls").read_bytes(), "far.xls")
    assert problem.code == "FILE_UNSAFE"


def test_a_csv_with_too_many_fields_is_refused() -> None:
    content = ("乡(镇)," * 2000 + "\r\n").encode() * 10
    problem = refused(content, "教育.csv", ReadLimits(20 * MiB, 200 * MiB, 100, 5_000))
    assert problem.code == "FILE_UNSAFE"


# --------------------------------------------------------------------------------------------
# Truncated CSV: a cut file must not read as blanks
# --------------------------------------------------------------------------------------------

HEADER = "乡(镇),农业户籍人口,建档立卡贫困人口(年末),当年脱贫人数,农牧民人均纯收入(元)\r\n"
ROWS = ["章谷镇,5811,507,147,13476\r\n", "巴底镇,4300,402,121,9870\r\n", "革什扎镇,3798,521,158,10349\r\n"]


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return "".join(lines).encode(encoding)


@pytest.mark.parametrize(
    ("lines", "row", "column"),
    [
        ([HEADER, ROWS[0], "巴底镇,4300,402\r\n", ROWS[2]], 3, "D列"),  # a short row in the middle
        ([HEADER, *ROWS, "合计,13909\r\n"], 5, "C列"),  # the 合计 row counts too
        ([HEADER, *ROWS[:2], "革什扎镇,37"], 4, "C列"),  # the last line cut mid-row
        ([HEADER, *ROWS[:2], "革什"], 4, "B列"),  # … even inside the key
    ],
)
def test_a_row_with_fewer_fields_than_the_header_is_truncated(lines: list[str], row: int, column: str) -> None:
    for encoding in ("utf-8", "gbk"):
        problem = refused(csv_bytes(*lines, encoding=encoding), "贫困.csv")
        assert (problem.code, problem.row, problem.column) == ("ROW_TRUNCATED", row, column)
        assert f"第{row}行" in problem.message


def test_a_file_ending_inside_quotes_is_truncated() -> None:
    problem = refused(csv_bytes(HEADER, ROWS[0], '巴底镇,4300,402,121,"9,8'), "贫困.csv")
    assert (problem.code, problem.row, problem.column) == ("ROW_TRUNCATED", 3, "E列")


def test_an_unclosed_quote_that_runs_past_the_field_limit_is_truncated() -> None:
    problem = refused(csv_bytes(HEADER, '章谷镇,"5811,507\r\n', *(ROWS[1:] * 20_000)), "贫困.csv")
    assert (problem.code, problem.row) == ("ROW_TRUNCATED", 2)


@pytest.mark.parametrize(
    "lines",
    [
        [HEADER, *ROWS, "注：本表数据截至年末。\r\n", "填表人：张敏,,审核人：李强\r\n"],  # short notes below
        [HEADER, *ROWS, "填表人：张敏"],  # … and no line break at the end
        [HEADER, *ROWS[:2], ROWS[2].rstrip()],  # a full last row without a line break
        ["丹巴县2016年贫困人口及农牧民收入年报表\r\n", "单位：人、元\r\n", HEADER, *ROWS],  # short title lines
        [HEADER, "甲,1,2,3,4\r\n", *ROWS],  # a 栏次 row
        [HEADER, *ROWS, "\r\n", "\r\n"],  # blank lines
    ],
)
def test_short_lines_that_are_not_data_rows_are_fine(lines: list[str]) -> None:
    grids = read_grids(csv_bytes(*lines), "贫困.csv", limits=LIMITS)
    assert grids[0].row_widths is not None and len(grids[0].row_widths) == len(grids[0].rows)


def test_a_short_header_level_below_the_key_is_not_data() -> None:
    """A two-level header written without padding: the second level has no key cell."""
    header = "乡(镇),农村劳动力,,转移就业人数(本年累计),\r\n,合计,其中:贫困劳动力,合计\r\n"
    rows = "章谷镇,3000,400,1200,300\r\n"
    grids = read_grids(csv_bytes(header, rows), "就业.csv", limits=LIMITS)
    assert grids[0].row_widths == (5, 4, 5)


def test_a_truncated_csv_is_rejected_through_the_pipeline(tmp_path: Path, reference: ReferenceFrames) -> None:
    path = tmp_path / "贫困.csv"
    path.write_bytes(csv_bytes(HEADER, *ROWS[:2], "革什扎镇,3798,52"))
    parsed = parse(receive(path, "poverty", "2016"), reference)
    assert parsed.form is None
    assert [(i.code, i.row, i.column) for i in parsed.fatal] == [("ROW_TRUNCATED", 4, "D列")]
    assert validate(parsed).outcome == "rejected"


# --------------------------------------------------------------------------------------------
# Hostile file names: the stored name stays inside the data directory and keeps Chinese
# --------------------------------------------------------------------------------------------

NAME_BYTES_MAX = 255  # ext4 / xfs / tmpfs NAME_MAX, in bytes
LONG_CHINESE = "丹巴县教育局" * 50 + ".xlsx"  # 300 characters, 900 bytes in UTF-8
LONG_ASCII = "a" * 295 + ".xlsx"


def received_as(original_name: str, path: Path) -> Received:
    return Received(
        path=path, department=EDU, period=Period(2017, 5), original_name=original_name,
        sha256="0123456789abcdef" * 4, received_at=datetime(2017, 6, 8, tzinfo=UTC), size_bytes=path.stat().st_size,
    )


@pytest.mark.parametrize(
    "original_name",
    [
        "../../etc/passwd.xlsx",
        "C:\\x\\..\\y.xlsx",
        "..\\..\\..\\windows\\system32\\教育.xlsx",
        "/etc/cron.d/教育.xlsx",
        "a\x00b.xlsx",
        "..",
        ".",
        "",
        "教育\n局.xlsx",
        "丹巴县教育局 2017年5月 月报表(终稿).xlsx",
        LONG_CHINESE,
        LONG_ASCII,
    ],
)
def test_the_stored_name_stays_inside_the_data_dir(tmp_path: Path, original_name: str) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(b"form")
    settings = Settings(data_dir=tmp_path / "data")
    received = received_as(original_name, source)
    for outcome in ("loaded", "rejected", "quarantined"):
        stored, receipt = storage_paths(received, outcome, settings)
        root = settings.archive_dir if outcome == "loaded" else settings.quarantine_dir
        folder = root / EDU / "2017-05"
        assert stored.parent == folder
        assert stored.resolve().parent == folder.resolve()  # nothing in the name climbs out
        assert not re.search(r"[/\\\x00\n]", stored.name)
        assert len((stored.name + ".receipt.json").encode("utf-8")) <= NAME_BYTES_MAX
        assert receipt.parent == settings.receipts_dir
        store_file(received, stored)  # the OS accepts the name
        write_receipt({"original_name": original_name}, receipt, stored)
        assert stored.read_bytes() == b"form"
        assert stored.resolve().is_relative_to(settings.resolved_data_dir)
    suffix = Path(original_name.replace("\\", "/")).suffix
    if suffix == ".xlsx":
        assert stored.name.endswith(".xlsx")
    assert set(re.findall(r"[\u4e00-\u9fff]", original_name)) <= set(stored.name)  # Chinese is kept


def test_nothing_escapes_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    source = tmp_path / "upload.bin"
    source.write_bytes(b"form")
    for name in ("../../outside.xlsx", "..\\..\\outside.xlsx", "/tmp/outside.xlsx"):
        stored, _ = storage_paths(received_as(name, source), "rejected", settings)
        store_file(received_as(name, source), stored)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(settings.resolved_data_dir)]
    assert outside == [source]


@pytest.mark.parametrize("code", ["FILE_UNSAFE", "FILE_TOO_LARGE"])
def test_no_correction_workbook_is_built_from_a_refused_file(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.submission.correction_workbook

    opened: list[str] = []

    def record(source_bytes: bytes, original_name: str, *args: Any, **kwargs: Any) -> Path:
        opened.append(original_name)
        return tmp_path / "never.xlsx"

    monkeypatch.setattr(tasks.submission.correction_workbook, "write_correction_workbook", record)
    source = tmp_path / "教育.xlsx"
    source.write_bytes(b"PK\x03\x04")
    refusal = issue(code, "已拒收")
    receipt = attach_correction_workbook(received_as("教育.xlsx", source), {"status": "rejected"}, (refusal,),
                                         Settings(data_dir=tmp_path / "data"))
    assert opened == []
    assert receipt.get("correction_workbook") is None


def test_safe_name_keeps_ordinary_chinese_names() -> None:
    assert _safe_name("丹巴县教育局2017年5月月报表.xlsx") == "丹巴县教育局2017年5月月报表.xlsx"


# --------------------------------------------------------------------------------------------
# Hostile header text is data, never an identifier
# --------------------------------------------------------------------------------------------

DROP_TABLE = '"; DROP TABLE fact_indicator_value; --'
HYPERLINK = '=HYPERLINK("http://example.invalid/x","点此查看")'


@pytest.fixture
def hostile_form(tmp_path: Path, education_rows: pd.DataFrame, request: pytest.FixtureRequest) -> Iterator[Path]:
    rows = education_rows.copy()
    rows[DROP_TABLE] = 1
    rows[HYPERLINK] = 2
    fmt = request.param
    yield write_form(tmp_path / f"教育.{'xlsx' if fmt == 'xlsx' else 'csv'}", load_declarations()[EDU], MAY, rows,
                     fmt=fmt)


@pytest.mark.parametrize("hostile_form", ["xlsx", "csv-utf8-bom"], indirect=True)
def test_hostile_headers_are_unknown_columns_and_the_warehouse_is_unaffected(
    hostile_form: Path, tmp_path: Path, reference: ReferenceFrames, sqlite_engine: Engine
) -> None:
    received = receive(hostile_form, EDU, MAY)
    parsed = parse(received, reference)
    validation = validate(parsed)
    assert validation.outcome == "quarantined"
    unknown = [i for i in validation.issues if i.code == "COLUMN_UNKNOWN"]
    assert [(i.column or "")[:2] for i in unknown] == ["M列", "N列"]
    assert "DROPTABLE" in (unknown[0].column or "") and "HYPERLINK" in (unknown[1].column or "")  # as text
    assert {i.code for i in validation.issues if i.severity == "critical"} == {"COLUMN_UNKNOWN"}
    assert parsed.form is not None
    declared = set(load_declarations()[EDU].indicator_names)
    assert set(parsed.form.wide.columns) <= declared | {"township_code", "township_text"}

    tables_before = set(inspect(sqlite_engine).get_table_names())
    settings = Settings(data_dir=tmp_path / "data")
    outcome = load(sqlite_engine, received, parsed, validation, settings)
    assert outcome.status == "quarantined" and outcome.facts_loaded == 0
    assert set(inspect(sqlite_engine).get_table_names()) == tables_before
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(fact_indicator_value)).scalar_one() == 0
        labels = conn.execute(
            select(submission_issue.c.column_label).where(submission_issue.c.code == "COLUMN_UNKNOWN")
        ).scalars().all()
    assert any(DROP_TABLE.replace(" ", "") in (label or "").replace(" ", "") for label in labels)  # stored as text
