"""Stream a person-level registry file as Arrow record batches, with bounded memory.

* CSV (UTF-8, UTF-8 BOM, GBK/GB18030): ``pyarrow.csv.open_csv`` reads blocks of
  ``BLOCK_BYTES``; every column is read as text (an ID must never become a float), blank fields
  are null. The header row is found in the first lines (a title row above it is allowed).
* xlsx: python-calamine (Rust), sliced into batches of ``XLSX_BATCH_ROWS`` rows; the sheet is
  limited by Excel itself to 1 048 576 rows. A number cell in the ID column is reported as what
  Excel did to it (5.13323E+17), never silently widened.

Each batch has the declaration's canonical column names and the 1-based file row of its first
row, so every issue names the row without quoting the row. Nothing here logs cell values: the
registry holds ID numbers and names.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from expectations.declaration import normalise_header
from expectations.issues import Issue, issue
from expectations.registry_declaration import RegistryDeclaration
from tasks.forms.file_safety import ReadError, ReadLimits, check_size
from tasks.forms.grid import column_letter

BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow block (~100 000 registry rows)
XLSX_BATCH_ROWS = 100_000
HEADER_SEARCH_ROWS = 20
_HEAD_BYTES = 256 << 10


@dataclass
class RegistrySource:
    """An opened registry file: where its header is, which column is which, how to stream it."""

    path: Path
    original_name: str
    fmt: str  # csv / xlsx
    sheet: str | None
    encoding: str | None
    header_row: int  # 1-based row of the header in the file
    positions: dict[str, int]  # canonical column → 0-based position in the file
    column_labels: dict[str, str]  # canonical column → "C列(公民身份号码)"
    issues: list[Issue] = field(default_factory=list)  # header-level findings (info / warning / critical)
    short_rows: list[int] = field(default_factory=list)  # CSV rows with the wrong number of fields
    delimiter: str = ","  # CSV only
    csv_width: int = 0  # CSV only: fields in the header row
    id_column: str = ""  # xlsx only: the canonical name of the person-id column

    def batches(self) -> Iterator[tuple[int, pa.Table]]:
        """(1-based file row of the batch's first row, table of canonical string columns)."""
        if self.fmt == "csv":
            yield from self._csv_batches()
        else:
            yield from self._xlsx_batches()

    # ----------------------------------------------------------------- CSV
    def _csv_batches(self) -> Iterator[tuple[int, pa.Table]]:
        width = max(self.positions.values()) + 1
        names = [f"c{i}" for i in range(self.csv_width or width)]
        wanted = {f"c{pos}": name for name, pos in self.positions.items()}
        short_rows = self.short_rows

        def invalid_row(row: Any) -> str:  # never look at row.text: it holds personal data
            short_rows.append(int(row.number) if row.number is not None else -1)
            return "skip"

        reader = pa_csv.open_csv(
            self.path,
            read_options=pa_csv.ReadOptions(
                encoding=self.encoding or "utf8", skip_rows=self.header_row, column_names=names,
                block_size=BLOCK_BYTES, use_threads=False,
            ),
            parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=invalid_row),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string()), include_columns=list(wanted),
                strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True,
            ),
        )
        next_row = self.header_row + 1
        skipped_before = 0
        for record_batch in reader:
            table = pa.Table.from_batches([record_batch]).rename_columns(
                [wanted[n] for n in record_batch.schema.names]
            )
            yield next_row, table
            # a skipped (short) row still took a line: count it so later row numbers stay the file's
            next_row += table.num_rows + len(short_rows) - skipped_before
            skipped_before = len(short_rows)

    # ----------------------------------------------------------------- xlsx
    def _xlsx_batches(self) -> Iterator[tuple[int, pa.Table]]:
        from python_calamine import CalamineWorkbook

        workbook = CalamineWorkbook.from_path(str(self.path))
        try:
            sheet = workbook.get_sheet_by_name(self.sheet) if self.sheet else workbook.get_sheet_by_index(0)
            rows = sheet.iter_rows()
            for _ in range(self.header_row):
                next(rows, None)
            id_column = self.id_column
            buffer: dict[str, list[str | None]] = {n: [] for n in self.positions}
            first = self.header_row + 1
            count = 0
            for row in rows:
                for name, pos in self.positions.items():
                    value = row[pos] if pos < len(row) else None
                    buffer[name].append(_cell_text(value, as_id=name == id_column))
                count += 1
                if count == XLSX_BATCH_ROWS:
                    yield first, pa.table({n: pa.array(v, type=pa.string()) for n, v in buffer.items()})
                    first += count
                    count = 0
                    buffer = {n: [] for n in self.positions}
            if count:
                yield first, pa.table({n: pa.array(v, type=pa.string()) for n, v in buffer.items()})
        finally:
            workbook.close()


def _cell_text(value: Any, *, as_id: bool) -> str | None:
    """A workbook cell as the text a person typed; a number in the ID column as Excel shows it."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime):  # a date cell: the day as ISO text (a time of day only when there is one)
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if as_id:
            return f"{value:.5E}".replace("0E", "E") if value >= 1e15 else repr(value)
        return repr(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return str(value)


def _detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf8"  # pyarrow drops the BOM itself
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    cut = head.rfind(b"\n")
    sample = head[: cut + 1] if 0 <= cut < len(head) - 1 else head
    try:
        sample.decode("utf-8")
        return "utf8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError as exc:
        raise ReadError(issue("ENCODING_UNDECODABLE", "CSV文件既不是UTF-8也不是GBK/GB18030编码，无法解码")) from exc


def _map_header(
    cells: list[Any], declaration: RegistryDeclaration, sheet: str | None
) -> tuple[dict[str, int], dict[str, str], list[Issue]]:
    by_text = {h: col for col in declaration.columns for h in col.header_texts}
    positions: dict[str, int] = {}
    labels: dict[str, str] = {}
    issues: list[Issue] = []
    for pos, cell in enumerate(cells):
        text = normalise_header(cell) if cell is not None else ""
        if not text:
            continue
        col = by_text.get(text)
        label = f"{column_letter(pos)}列({cell})"
        if col is None:
            issues.append(issue("COLUMN_UNKNOWN", f"{label}不是{declaration.title_zh}的规定列，未读取、未入库",
                                severity="warning", action="report", sheet=sheet, column=label))
            continue
        if col.name in positions:
            issues.append(issue("COLUMN_DUPLICATE", f"{label}与{labels[col.name]}都对应“{col.header}”",
                                sheet=sheet, column=label))
            continue
        positions[col.name] = pos
        labels[col.name] = label
        if text != normalise_header(col.header):
            issues.append(issue("COLUMN_ALIAS", f"{label}按“{col.header}”读取", sheet=sheet, column=label))
    for col in declaration.columns:
        if col.name not in positions:
            if col.required:
                issues.append(issue("COLUMN_MISSING", f"缺少必填列“{col.header}”", sheet=sheet))
            else:
                issues.append(issue("COLUMN_OPTIONAL_MISSING", f"缺少选填列“{col.header}”", sheet=sheet))
    return positions, labels, issues


def _find_header(rows: list[list[Any]], declaration: RegistryDeclaration) -> int:
    id_texts = set(declaration.role("person_id").header_texts)
    for index, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(cell is not None and normalise_header(cell) in id_texts for cell in cells):
            return index
    raise ReadError(issue("HEADER_NOT_FOUND",
                          f"前{HEADER_SEARCH_ROWS}行中没有“{declaration.role('person_id').header}”表头，"
                          f"不是{declaration.title_zh}"))


def open_registry(
    path: Path, original_name: str, declaration: RegistryDeclaration, limits: ReadLimits
) -> RegistrySource:
    """Find the header and map the columns; reads only the head of the file (ReadError if hopeless)."""
    size = path.stat().st_size
    check_size(size, original_name, limits.max_bytes)
    if size == 0:
        raise ReadError(issue("FILE_EMPTY", f"文件没有任何内容: {original_name}"))
    suffix = Path(original_name).suffix.lower()
    if suffix == ".csv":
        return _open_csv(path, original_name, declaration)
    if suffix == ".xlsx":
        return _open_xlsx(path, original_name, declaration, limits)
    raise ReadError(issue("FILE_FORMAT_UNSUPPORTED",
                          f"实名登记表只接受.csv或.xlsx文件，收到{suffix or '无扩展名'}: {original_name}"))


def _open_csv(path: Path, original_name: str, declaration: RegistryDeclaration) -> RegistrySource:
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    encoding = _detect_encoding(head)
    text = head.decode("utf-16" if encoding == "utf-16" else encoding, errors="ignore").lstrip("\ufeff")
    lines = text.splitlines()[:HEADER_SEARCH_ROWS + 1]
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:HEADER_SEARCH_ROWS]), delimiters=",\t;").delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header_index = _find_header(rows, declaration)
    positions, labels, issues = _map_header(rows[header_index], declaration, None)
    return RegistrySource(path, original_name, "csv", None, encoding, header_index + 1, positions, labels,
                          [issue("ENCODING_DETECTED", f"CSV按{encoding}编码读取"), *issues],
                          delimiter=delimiter, csv_width=len(rows[header_index]))


def _open_xlsx(
    path: Path, original_name: str, declaration: RegistryDeclaration, limits: ReadLimits
) -> RegistrySource:
    from python_calamine import CalamineWorkbook

    from tasks.forms.file_safety import inspect_archive  # the same zip-bomb / XML-entity refusal as the forms

    inspect_archive(path.read_bytes(), original_name, limits)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for corrupt workbooks
        raise ReadError(issue("FILE_UNREADABLE", f"无法读取Excel文件 {original_name}: 文件已损坏或不完整")) from exc
    try:
        found: list[tuple[str, int, list[Any]]] = []
        for name in workbook.sheet_names:
            sheet = workbook.get_sheet_by_name(name)
            head = [list(r) for _, r in zip(range(HEADER_SEARCH_ROWS), sheet.iter_rows(), strict=False)]
            try:
                index = _find_header(head, declaration)
            except ReadError:
                continue
            found.append((name, index, head[index]))
    finally:
        workbook.close()
    if not found:
        raise ReadError(issue("HEADER_NOT_FOUND",
                              f"各工作表中都没有“{declaration.role('person_id').header}”表头，"
                              f"不是{declaration.title_zh}"))
    if len(found) > 1:
        raise ReadError(issue("SHEET_AMBIGUOUS", f"多个工作表都是{declaration.title_zh}: "
                              + "、".join(f[0] for f in found) + "；请只保留一个"))
    sheet_name, index, header = found[0]
    positions, labels, issues = _map_header(header, declaration, sheet_name)
    return RegistrySource(path, original_name, "xlsx", sheet_name, None, index + 1, positions, labels,
                          [issue("SHEET_CHOSEN", f"读取工作表“{sheet_name}”", sheet=sheet_name), *issues],
                          id_column=declaration.role("person_id").name)
