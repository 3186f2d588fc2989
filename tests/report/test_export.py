"""Exports: .xlsx and .csv read back equal the rows; formula-like text is neutralised; numbers stay numbers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from tasks.report.export import (
    Column,
    SiteTable,
    csv_text,
    export_table,
    export_tables,
    neutralise,
    sheet_title,
    write_parquet,
)

PLANTED = '=HYPERLINK("http://x","y")'
COLUMNS = (
    Column("name", "乡镇"),
    Column("note", "备注"),
    Column("revenue", "旅游总收入", "元", "number"),
    Column("count", "人次", "人次", "number"),
)


def table(rows: list[dict]) -> SiteTable:
    return SiteTable("sample", "样表:测试/表格", COLUMNS, pd.DataFrame(rows, columns=[c.key for c in COLUMNS]))


ROWS = [
    {"name": "巴旺乡", "note": PLANTED, "revenue": 12_345_678.9, "count": 3540},
    {"name": "章谷镇", "note": "+86 电话", "revenue": -0.5, "count": None},
    {"name": "@聂呷乡", "note": "-1", "revenue": float("nan"), "count": 0},
    {"name": "\t水子乡", "note": "\r回车", "revenue": 1e-7, "count": 12},
    {"name": "边耳乡", "note": "正常 = 文本", "revenue": 0.1 + 0.2, "count": 2**40},
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
        ("a=1", "a=1"), ("", ""), ("'=x", "'=x"), ("巴旺乡", "巴旺乡"),
    ],
)  # fmt: skip
def test_neutralise(text: str, expected: str) -> None:
    assert neutralise(text) == expected


def test_headers_carry_units() -> None:
    assert table(ROWS).headers == ["乡镇", "备注", "旅游总收入(元)", "人次(人次)"]


def test_xlsx_round_trip_neutralises_text_and_keeps_numbers(tmp_path: Path) -> None:
    paths = export_table(table(ROWS), tmp_path)
    sheet = load_workbook(paths["xlsx"]).active
    assert sheet.title == "样表_测试_表格"
    got = [[c.value for c in row] for row in sheet.iter_rows()]
    assert got[0] == ["乡镇", "备注", "旅游总收入(元)", "人次(人次)"]
    assert got[1] == ["巴旺乡", "'" + PLANTED, 12_345_678.9, 3540]
    assert got[2] == ["章谷镇", "'+86 电话", -0.5, None]
    assert got[3] == ["'@聂呷乡", "'-1", None, 0]
    assert got[4] == ["'\t水子乡", "'\n回车", 1e-7, 12]  # XML reads a bare CR back as LF
    # openpyxl writes 15 significant digits, as Excel keeps them: 0.30000000000000004 reads back as 0.3
    assert got[5] == ["边耳乡", "正常 = 文本", pytest.approx(0.1 + 0.2, rel=1e-14), 2**40]
    for row in sheet.iter_rows(min_row=2):
        assert all(c.data_type != "f" for c in row)  # no cell is a formula
        assert row[2].value is None or row[2].data_type == "n"


def test_csv_round_trip_has_bom_and_equal_values(tmp_path: Path) -> None:
    path = export_table(table(ROWS), tmp_path)["csv"]
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "旅游总收入(元)".encode() in raw
    back = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    assert list(back.columns) == ["乡镇", "备注", "旅游总收入(元)", "人次(人次)"]
    assert back["备注"].tolist()[0] == "'" + PLANTED
    revenue = back["旅游总收入(元)"].tolist()
    expected = [r["revenue"] for r in ROWS]
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(revenue, expected, strict=True))
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][1] == "'" + PLANTED and rows[1][3] == "3540"  # integers stay integers
    assert rows[4][0] == "'\t水子乡" and rows[4][1] == "'\r回车"
    assert rows[5][3] == str(2**40)


def test_bad_number_names_table_row_and_column() -> None:
    bad = table([{"name": "x", "note": "", "revenue": "12万", "count": 1}])
    with pytest.raises(ValueError, match=r"table sample, row 1, column 旅游总收入\(元\)"):
        csv_text(bad)


def test_table_names_are_checked() -> None:
    for bad in ("../乡镇", "a b", "x.csv", ""):  # a file stem: no path, no blank, no extension
        with pytest.raises(ValueError, match="letters"):
            SiteTable(bad, "t", COLUMNS, pd.DataFrame(columns=[c.key for c in COLUMNS]))
    assert SiteTable("章谷镇_各年指标", "t", COLUMNS, pd.DataFrame(columns=[c.key for c in COLUMNS])).name
    with pytest.raises(ValueError, match="lack columns"):
        SiteTable("t", "t", COLUMNS, pd.DataFrame(columns=["name"]))
    with pytest.raises(ValueError, match="used twice"):
        export_tables([table(ROWS), table(ROWS)], Path("/nonexistent"))


def test_sheet_title_is_excel_legal() -> None:
    assert sheet_title("a[b]:c*d?e/f\\g") == "a_b__c_d_e_f_g"
    assert len(sheet_title("很" * 40)) == 31 and sheet_title("''") == "Sheet1"


def test_parquet_keeps_values_as_they_are(tmp_path: Path) -> None:
    frame = pd.DataFrame({"kpi": ["x", PLANTED], "value": [1.5, None], "publishable": [True, False]})
    back = pq.read_table(write_parquet(frame, tmp_path / "m.parquet")).to_pandas()
    assert back["kpi"].tolist() == ["x", PLANTED]
    assert back["value"].tolist()[0] == 1.5 and math.isnan(back["value"].tolist()[1])
    assert back["publishable"].tolist() == [True, False]
