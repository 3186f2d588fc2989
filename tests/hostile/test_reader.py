"""Issue 13, the reader's guards: each counts what it guards, and a refusal costs no more than it must.

- fault 5: a CSV with CR-only line endings is counted by every line break the CSV parser honours, so
  the cell guard refuses it before parsing;
- fault 6: one huge cell is cut at read time (``CELL_TRUNCATED`` names it) and stays small in the
  receipt, the issue table and the correction workbook;
- fault 10: a file over the size limit is not hashed or copied whole: its key reads head and tail,
  quarantine keeps its first 64 KiB, the receipt says so, and the same file twice is one submission;
- fault 11: a failed archive write leaves no ``.part``; a failed ledger transaction removes the copy
  this run made (never an earlier run's); HTML and text saved as .xls get a clear Chinese refusal.

"Without parsing / without reading" is shown by making the parser or the whole-file reads fail the
test, never by timing.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text

import tasks.forms.read_csv
from duikou_settings import Settings, reset_settings_cache
from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.forms.file_safety import MAX_CELL_CHARS, ReadError, ReadLimits
from tasks.forms.read import read_grids
from tasks.forms.read_csv import line_breaks
from tasks.landing.landed import OVERSIZE_KEPT_BYTES
from tasks.landing.store import scan_store, store_for
from tasks.submission.journey import (
    attach_correction_workbook,
    build_receipt,
    load,
    parse,
    receive,
    storage_paths,
    store_file,
    validate,
    write_receipt,
)
from warehouse.refdata import ReferenceFrames, reference_frames
from warehouse.schema import submission, submission_issue

EDU, MAY = "education", "2017-05"
MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


@pytest.fixture(scope="module")
def education_rows() -> pd.DataFrame:
    return demo_values()[(EDU, MAY)]


@pytest.fixture
def data_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings on a temporary data directory, the upload limit at its default (20 MiB)."""
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DUIKOU_MAX_UPLOAD_BYTES", raising=False)
    reset_settings_cache()
    yield Settings(data_dir=tmp_path / "data")
    reset_settings_cache()


# --------------------------------------------------------------------------------------------
# Fault 5: line breaks of every kind
# --------------------------------------------------------------------------------------------

SMALL = ReadLimits(max_bytes=20 * MiB, max_uncompressed_bytes=200 * MiB, max_compression_ratio=100, max_cells=1_000)


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"], ids=["cr", "lf", "crlf"])
def test_a_csv_over_the_cell_limit_is_refused_before_parsing_whatever_its_line_breaks(
    newline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = newline.join(["1"] * 5_000).encode()  # one field per row: no delimiter to count
    monkeypatch.setattr(tasks.forms.read_csv, "_parse_csv", lambda *a, **k: pytest.fail("the CSV was parsed"))
    with pytest.raises(ReadError) as caught:
        read_grids(content, "教育.csv", limits=SMALL)
    problem = caught.value.issue
    assert problem.code == "FILE_UNSAFE" and problem.action == "reject"
    assert "超过上限1000个" in problem.message


def test_line_breaks_counts_what_the_csv_parser_splits_on() -> None:
    import csv

    for sample in ("a\rb\rc", "a\nb\nc", "a\r\nb\r\nc", "a\r\n\rb\n\nc", "a\x0bb\x0cc\x1cd\x85e\u2028f\u2029g"):
        rows = list(csv.reader(io.StringIO(sample, newline="")))
        assert line_breaks(sample) + 1 == len(rows), sample


def test_a_small_cr_only_csv_reads_like_the_same_csv_with_crlf(
    tmp_path: Path, reference: ReferenceFrames, education_rows: pd.DataFrame
) -> None:
    crlf = write_form(tmp_path / "crlf" / "教育.csv", load_declarations()[EDU], MAY, education_rows, fmt="csv-utf8")
    text_crlf = crlf.read_text(encoding="utf-8")
    assert "\n" in text_crlf
    cr_only = tmp_path / "cr" / "教育.csv"
    cr_only.parent.mkdir()
    cr_only.write_text(text_crlf.replace("\r\n", "\r").replace("\n", "\r"), encoding="utf-8", newline="")
    assert b"\n" not in cr_only.read_bytes()
    want = validate(parse(receive(crlf, EDU, MAY), reference))
    parsed = parse(receive(cr_only, EDU, MAY), reference)
    got = validate(parsed)
    assert got.outcome == want.outcome == "loaded"
    assert parsed.form is not None
    expected = parse(receive(crlf, EDU, MAY), reference).form
    assert expected is not None
    pd.testing.assert_frame_equal(parsed.form.wide, expected.wide)


# --------------------------------------------------------------------------------------------
# Fault 6: one huge cell
# --------------------------------------------------------------------------------------------

HUGE = 2_000_000  # characters; random CJK so that no compression hides a copy of it


@pytest.fixture(scope="module")
def huge_cell_xlsx(tmp_path_factory: pytest.TempPathFactory, education_rows: pd.DataFrame) -> tuple[Path, str]:
    """The education form with one township's number replaced by 2 million random Chinese characters.

    openpyxl writes at most Excel's 32,767 characters to a cell, so the marker it writes is then
    replaced in the archive's shared strings, as a crafted (or broken) exporter would write it.
    """
    folder = tmp_path_factory.mktemp("huge")
    path = write_form(folder / "教育.xlsx", load_declarations()[EDU], MAY, education_rows)
    workbook = openpyxl.load_workbook(path)
    ws = workbook.worksheets[0]
    target = next(
        cell for row in ws.iter_rows(min_row=5) for cell in row[1:]
        if isinstance(cell.value, int | float) and not isinstance(cell.value, bool)
    )
    target.value = "HUGE-CELL-MARKER"
    workbook.save(path)
    rng = random.Random(13)
    huge = "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(HUGE))
    out = io.BytesIO()
    replaced = 0
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():  # shared strings, or the sheet itself (an inline string)
            data = src.read(info.filename)
            replaced += data.count(b"HUGE-CELL-MARKER")
            dst.writestr(info.filename, data.replace(b"HUGE-CELL-MARKER", huge.encode("utf-8")))
    assert replaced == 1
    path.write_bytes(out.getvalue())
    return path, target.coordinate


def test_a_huge_cell_is_cut_at_read_time_and_named_in_the_receipt(
    huge_cell_xlsx: tuple[Path, str], reference: ReferenceFrames, sqlite_engine: Engine, data_settings: Settings
) -> None:
    path, coordinate = huge_cell_xlsx
    grids = read_grids(path.read_bytes(), path.name)
    assert max(len(v) for g in grids for row in g.rows for v in row if isinstance(v, str)) <= MAX_CELL_CHARS

    received = receive(path, EDU, MAY)
    parsed = parse(received, reference)
    validation = validate(parsed)
    assert validation.outcome == "rejected"  # the cell is not a number, cut or not
    (cut,) = [i for i in validation.issues if i.code == "CELL_TRUNCATED"]
    letters, digits = re.fullmatch(r"([A-Z]+)(\d+)", coordinate).groups()  # type: ignore[union-attr]
    assert (cut.sheet, cut.row, cut.column) == (grids[0].sheet, int(digits), f"{letters}列")
    assert str(HUGE) in cut.message and str(MAX_CELL_CHARS) in cut.message
    assert max(len(i.message) + len(i.value or "") for i in validation.issues) < 3 * MAX_CELL_CHARS

    outcome = load(sqlite_engine, received, parsed, validation, data_settings)
    stored, receipt_path = storage_paths(received, outcome.status, data_settings)
    receipt = build_receipt(received, parsed, validation, status=outcome.status, load_outcome=outcome,
                            stored=stored.relative_to(data_settings.resolved_data_dir).as_posix())
    receipt = attach_correction_workbook(received, receipt, validation.issues, data_settings)
    write_receipt(receipt, receipt_path, stored)

    assert receipt_path.stat().st_size < 200_000
    assert stored.with_name(stored.name + ".receipt.json").stat().st_size < 200_000
    written = json.loads(receipt_path.read_text(encoding="utf-8"))
    assert any(i["code"] == "CELL_TRUNCATED" and i["row"] == int(digits) for i in written["issues"])
    with sqlite_engine.connect() as conn:
        longest = conn.execute(
            select(func.max(func.length(submission_issue.c.message_zh) + func.coalesce(
                func.length(submission_issue.c.column_label), 0)))
        ).scalar_one()
    assert longest < 3 * MAX_CELL_CHARS
    workbook = data_settings.resolved_data_dir / receipt["correction_workbook"]
    assert workbook.stat().st_size < 200_000
    kept = openpyxl.load_workbook(workbook)
    assert all(len(c.value) <= MAX_CELL_CHARS for ws in kept.worksheets for row in ws.iter_rows()
               for c in row if isinstance(c.value, str))


def test_an_issue_caps_what_it_quotes() -> None:
    from expectations.issues import MAX_MESSAGE_CHARS, MAX_QUOTED_CHARS, issue

    long = "很" * 100_000
    message = f"“{long}”不是数值"
    made = issue("VALUE_NOT_NUMBER", message, value=long, column=f"C列 {long}", sheet=long)
    assert len(made.message) <= MAX_MESSAGE_CHARS + 20 and made.message.endswith(f"(共{len(message)}字)")
    for quoted in (made.value, made.column, made.sheet):
        assert quoted is not None and len(quoted) <= MAX_QUOTED_CHARS + 20
    assert made.column is not None and made.column.startswith("C列 ")


# --------------------------------------------------------------------------------------------
# Fault 10: a file over the size limit
# --------------------------------------------------------------------------------------------


def _oversize(path: Path, size: int = 8 << 30) -> Path:
    """A sparse file of ``size`` bytes with a recognisable head; nothing is written past the head."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(b"PK\x03\x04" + b"head" * 40_000)
        fh.truncate(size)
    return path


def test_an_oversize_file_is_refused_without_being_read_or_copied_whole(
    tmp_path: Path, reference: ReferenceFrames, sqlite_engine: Engine, data_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing = data_settings.landing_dir / EDU / MAY
    path = _oversize(landing / "教育.xlsx")
    monkeypatch.setattr(hashlib, "file_digest", lambda *a, **k: pytest.fail("the whole file was hashed"))
    monkeypatch.setattr(shutil, "copyfileobj", lambda *a, **k: pytest.fail("the whole file was copied"))
    monkeypatch.setattr(shutil, "copyfile", lambda *a, **k: pytest.fail("the whole file was copied"))
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read whole"))

    ids = set()
    for _ in range(2):  # the same oversize file twice is one submission
        received = receive(path, EDU, MAY)
        assert received.oversize and received.size_bytes == 8 << 30
        parsed = parse(received, reference)
        assert [i.code for i in parsed.fatal] == ["FILE_TOO_LARGE"]
        validation = validate(parsed)
        outcome = load(sqlite_engine, received, parsed, validation, data_settings)
        assert outcome.status == "rejected"
        stored, receipt_path = storage_paths(received, outcome.status, data_settings)
        receipt = build_receipt(received, parsed, validation, status=outcome.status, load_outcome=outcome,
                                stored=stored.relative_to(data_settings.resolved_data_dir).as_posix())
        receipt = attach_correction_workbook(received, receipt, validation.issues, data_settings)
        write_receipt(receipt, receipt_path, stored)
        ids.add(received.submission_id)

    assert len(ids) == 1
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(submission)).scalar_one() == 1
    assert stored.is_relative_to(data_settings.quarantine_dir)
    assert stored.stat().st_size == OVERSIZE_KEPT_BYTES
    with stored.open("rb") as fh:
        assert fh.read(8) == b"PK\x03\x04head"  # the head, as it was
    written = json.loads(receipt_path.read_text(encoding="utf-8"))
    assert written["stored_bytes"] == OVERSIZE_KEPT_BYTES and written["size_bytes"] == 8 << 30
    assert "64KB" in written["stored_note_zh"] and "sha256_of" in written
    assert written.get("correction_workbook") is None
    kept = [p for p in data_settings.resolved_data_dir.rglob("*") if p.is_file() and p.stat().st_size > MiB]
    assert [p for p in kept if p != path] == []  # nothing big but the landed file itself

    # the nightly's scan of the landing area gives the file the same key: it is known, not new
    entries, _ = scan_store(store_for(data_settings.landing_dir), [EDU],
                            max_bytes=lambda department: data_settings.max_upload_bytes)
    assert [e.sha256 for e in entries] == [received.sha256]


def test_a_file_within_the_limit_keeps_its_real_sha256(tmp_path: Path, data_settings: Settings) -> None:
    path = tmp_path / "教育.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    received = receive(path, EDU, MAY)
    assert not received.oversize and received.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Fault 11: a failed archive write, a failed ledger transaction
# --------------------------------------------------------------------------------------------


def test_a_store_that_fails_on_a_full_disk_leaves_no_part_file(tmp_path: Path, data_settings: Settings) -> None:
    """RLIMIT_FSIZE makes the write fail for real (EFBIG, as ENOSPC would), in a child process."""
    source = tmp_path / "教育.csv"
    source.write_bytes(b"x" * 200_000)
    stored = tmp_path / "archive" / "education" / MAY / "kept.csv"
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from tasks.submission.journey import receive, store_file
        received = receive(Path({str(source)!r}), {EDU!r}, {MAY!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
        try:
            store_file(received, Path({str(stored)!r}))
        except OSError as exc:
            print("failed", exc.errno)
            sys.exit(0)
        print("stored")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "failed", done.stdout
    assert sorted(p.name for p in stored.parent.iterdir()) == []  # no .part, no half file


def _fail_the_ledger(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER disk_full BEFORE INSERT ON submission "
                          "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))


def test_a_failed_ledger_transaction_removes_the_copy_this_run_made(
    tmp_path: Path, reference: ReferenceFrames, sqlite_engine: Engine, data_settings: Settings,
    education_rows: pd.DataFrame,
) -> None:
    path = write_form(tmp_path / "教育.xlsx", load_declarations()[EDU], MAY, education_rows)
    received = receive(path, EDU, MAY)
    parsed = parse(received, reference)
    validation = validate(parsed)
    _fail_the_ledger(sqlite_engine)
    stored, _ = storage_paths(received, validation.outcome, data_settings)
    with pytest.raises(Exception, match="disk is full"):
        load(sqlite_engine, received, parsed, validation, data_settings)
    assert not stored.exists()
    assert [p for p in stored.parent.iterdir()] == []
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(submission)).scalar_one() == 0


def test_a_failed_ledger_transaction_keeps_a_copy_an_earlier_run_made(
    tmp_path: Path, reference: ReferenceFrames, sqlite_engine: Engine, data_settings: Settings,
    education_rows: pd.DataFrame,
) -> None:
    path = write_form(tmp_path / "教育.xlsx", load_declarations()[EDU], MAY, education_rows)
    received = receive(path, EDU, MAY)
    parsed = parse(received, reference)
    validation = validate(parsed)
    stored, _ = storage_paths(received, validation.outcome, data_settings)
    assert store_file(received, stored) is True  # an earlier run kept it
    assert store_file(received, stored) is False
    _fail_the_ledger(sqlite_engine)
    with pytest.raises(Exception, match="disk is full"):
        load(sqlite_engine, received, parsed, validation, data_settings)
    assert stored.read_bytes() == path.read_bytes()


# --------------------------------------------------------------------------------------------
# Fault 11: HTML (and other text) saved as .xls
# --------------------------------------------------------------------------------------------

HTML_TABLE = "<html><head><meta charset='utf-8'></head><body><table><tr><td>乡(镇)</td></tr></table></body></html>"
NOT_WORKBOOKS = {
    "html": HTML_TABLE.encode(),
    "html-bom": codecs.BOM_UTF8 + HTML_TABLE.encode(),
    "html-utf16": codecs.BOM_UTF16_LE + HTML_TABLE.encode("utf-16-le"),
    "meta-first": b"<meta http-equiv='Content-Type' content='text/html; charset=gb2312'>\r\n"
                  + "<table><tr><td>乡(镇)</td></tr></table>".encode("gb18030"),
    "comment-first": b"<!-- exported by the county system -->\n<table><tr><td>1</td></tr></table>",
    "mht": b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"----=_NextPart\"\r\n\r\n",
    "xml-2003": b'<?xml version="1.0"?>\n<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>',
    "tab-text": "乡(镇)\t在校学生数\r\n章谷镇\t12\r\n".encode("gb18030"),
    "binary-junk": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("content", NOT_WORKBOOKS.values(), ids=NOT_WORKBOOKS.keys())
def test_something_else_saved_as_xls_is_refused_with_a_clear_message(content: bytes) -> None:
    with pytest.raises(ReadError) as caught:
        read_grids(content, "教育.xls")
    problem = caught.value.issue
    assert problem.code == "FILE_UNREADABLE" and problem.action == "reject"
    assert "BOF" not in problem.message  # xlrd's own English never reaches the clerk
    assert "另存为" in problem.message and ".xlsx" in problem.message
    assert "not an Excel" in problem.message  # with a short English gloss
