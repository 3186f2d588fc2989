"""The correction workbook: the department's own form, with every problem marked where it is.

Why this module exists: a receipt lists issues as "sheet, row, column, message", which a clerk at
a county department must then find by hand in a 15-row form. The correction workbook does that
for them: it is their submission (their own .xlsx with its formatting, or an .xls / CSV rebuilt
into an .xlsx) with each problem cell coloured by severity and carrying a comment that says what
is wrong, plus a first sheet "问题汇总" listing every issue — file-level ones included — and what
to do next (fix the marked cells in the original form, resubmit the whole form).

Why it is careful: the workbook goes back to the department and is opened in Excel, so nothing
copied from the submission may become a formula (text starting with ``=``/``+``/``-``/``@`` is
written as text with Excel's quote prefix), and nothing is added beyond what the department sent
and the issues about it. It is written atomically so a half-written file is never offered.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import column_index_from_string, get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from expectations.advice import advice_for
from expectations.declaration import normalise_header
from expectations.issues import Issue
from tasks.files import write_atomically
from tasks.forms.file_safety import MAX_CELL_CHARS, cap_text
from tasks.forms.grid import Grid
from tasks.forms.read import EXCEL_ERROR_CODES, read_grids

AUTHOR = "duikou"
SUMMARY_SHEET = "问题汇总"
#: the sheet a CSV is rebuilt into (a CSV has no sheet name of its own)
CSV_SHEET = "原表"
SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
#: Excel's own light red / light yellow, and a light blue for recorded coercions
FILL_COLOURS = {"critical": "FFC7CE", "warning": "FFEB9C", "info": "DDEBF7"}
STATUS_ZH = {"loaded": "已入库", "rejected": "已退回", "quarantined": "待核", "duplicate": "重复提交"}
INSTRUCTIONS_ZH = {
    "rejected": "数据未入库。请在原报表中改正标红(严重)的单元格，核实标黄(警告)的单元格，然后重新报送整张报表。",
    "quarantined": "数据暂未入库，正在人工核实。如确有错误，请在原报表中改正标记的单元格后重新报送整张报表。",
    "loaded": "数据已入库。请核实标黄(警告)的单元格；如需更正，请在原报表中修改后重新报送整张报表。",
}
#: the columns of the summary sheet's issue table (怎样改正 from expectations/advice.py, as on the receipt page)
SUMMARY_HEADERS = ("序号", "严重程度", "代码", "工作表", "行", "列", "说明", "怎样改正")
INSTRUCTION_TAIL = "鼠标停在标记的单元格上可查看说明；标蓝的“提示”项只说明系统如何读取数据，无需处理。"
#: what makes Excel (or a CSV importer) start a formula, half- and full-width, plus tab / CR
FORMULA_PREFIXES = ("=", "+", "-", "@", "＝", "＋", "－", "＠", "\t", "\r")
_COLUMN_LABEL = re.compile(r"^\s*([A-Z]{1,3})列\s*(.*)$", re.DOTALL)
_SHEET_TITLE_BAD = re.compile(r"[\[\]:*?/\\]")
#: how far down a column to look for its header cell when an issue names a column but no row
HEADER_SCAN_ROWS = 40
MAX_ROW, MAX_COL = 1_048_576, 16_384


class CorrectionWorkbookError(ValueError):
    """The submission cannot be rebuilt into a workbook; the message says why (in Chinese)."""


def write_correction_workbook(
    source_bytes: bytes,
    original_name: str,
    sheet: str | None,
    issues: Sequence[Issue],
    out_path: Path,
    *,
    summary: Mapping[str, Any],
) -> Path:
    """Write the marked-up workbook to ``out_path`` (atomically) and return ``out_path``.

    ``sheet`` is the sheet the pipeline read (None for CSV, or when no form was found: the
    first sheet is then used). ``summary`` is the receipt (:func:`tasks.submission.journey.build_receipt`):
    ``title_zh``, ``period``, ``status`` and, for CSV, ``encoding`` are used. Issues naming another
    sheet, or with neither row nor column, are listed only on the "问题汇总" sheet.

    Raises :class:`CorrectionWorkbookError` (a ``ValueError``) when the file cannot be rebuilt.
    """
    suffix = PurePath(original_name).suffix.lower()
    if not source_bytes:
        raise CorrectionWorkbookError(f"无法生成核查工作簿: 文件{original_name}为空")
    try:
        if suffix in (".xlsx", ".xlsm"):
            workbook, target = _open_xlsx(source_bytes, sheet)
        elif suffix == ".xls":
            workbook, target = _rebuild_xls(source_bytes, sheet)
        elif suffix in (".csv", ".txt"):
            grid = _pick_decoding(read_grids(source_bytes, original_name), issues, summary.get("encoding"))
            workbook, target = _rebuild_grid(grid)
        else:
            raise CorrectionWorkbookError(f"无法生成核查工作簿: 不支持的文件格式{suffix or '(无扩展名)'}")
    except CorrectionWorkbookError:
        raise
    except Exception as exc:  # corrupt zip / OLE, broken XML, undecodable CSV, …
        raise CorrectionWorkbookError(
            f"无法生成核查工作簿: 文件{original_name}无法重建({type(exc).__name__}: {exc})"
        ) from exc
    located = _mark_issues(target, sheet, issues)
    _add_summary(workbook, target, issues, located, original_name, summary)
    _save_atomically(workbook, out_path)
    return out_path




def _open_xlsx(content: bytes, sheet: str | None) -> tuple[Workbook, Worksheet]:
    """Their workbook with its formatting; formulas stay formulas (theirs), links to other files go."""
    workbook = load_workbook(io.BytesIO(content), data_only=False, keep_vba=False, keep_links=False)
    if sheet is None:
        target = workbook.worksheets[0] if workbook.worksheets else None
    else:
        found = workbook[sheet] if sheet in workbook.sheetnames else None
        target = found if isinstance(found, Worksheet) else None
    if target is None:
        raise CorrectionWorkbookError(f"无法生成核查工作簿: 工作簿中没有工作表“{sheet}”")
    for ws in workbook.worksheets:  # their text stays text even when someone edits the cell
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "s" and isinstance(cell.value, str) and len(cell.value) > MAX_CELL_CHARS:
                    cell.value = cap_text(cell.value)  # as the reader cut it (CELL_TRUNCATED names it)
                if cell.data_type == "s" and isinstance(cell.value, str) and cell.value.startswith(FORMULA_PREFIXES):
                    cell.quotePrefix = True
    workbook.calculation.fullCalcOnLoad = True  # openpyxl drops cached results: let Excel recompute
    return workbook, target


def _rebuild_xls(content: bytes, sheet: str | None) -> tuple[Workbook, Worksheet]:
    """An .xls sheet as .xlsx: values (dates as dates), merges, widths, hidden rows, basic styles."""
    import xlrd

    book = xlrd.open_workbook(file_contents=content, formatting_info=True)
    names = book.sheet_names()
    name = sheet if sheet is not None else (names[0] if names else None)
    if name is None or name not in names:
        raise CorrectionWorkbookError(f"无法生成核查工作簿: 工作簿中没有工作表“{sheet}”")
    src = book.sheet_by_name(name)
    workbook = Workbook()
    ws = workbook.active
    assert isinstance(ws, Worksheet)
    ws.title = _SHEET_TITLE_BAD.sub("_", name).strip("'")[:31] or "Sheet1"
    horizontal = {1: "left", 2: "center", 3: "right"}
    for r in range(src.nrows):
        for c in range(src.ncols):
            cell = src.cell(r, c)
            value = _xls_value(cell, book.datemode)
            if value is None:
                continue
            target = ws.cell(row=r + 1, column=c + 1)
            _put(target, value)
            xf = book.xf_list[cell.xf_index] if cell.xf_index is not None else None
            if xf is not None:
                fmt = book.format_map.get(xf.format_key)
                if fmt is not None and fmt.format_str and fmt.format_str != "General":
                    target.number_format = fmt.format_str
                if book.font_list[xf.font_index].bold:
                    target.font = Font(bold=True)
                target.alignment = Alignment(horizontal=horizontal.get(xf.alignment.hor_align),
                                             wrap_text=bool(xf.alignment.text_wrapped))
            if cell.ctype == xlrd.XL_CELL_DATE and target.number_format == "General":
                target.number_format = "yyyy-mm-dd"
    for rlo, rhi, clo, chi in src.merged_cells:
        ws.merge_cells(start_row=rlo + 1, start_column=clo + 1, end_row=rhi, end_column=chi)
    for c, colinfo in src.colinfo_map.items():
        dim = ws.column_dimensions[get_column_letter(c + 1)]
        dim.width = round(colinfo.width / 256, 2)
        dim.hidden = bool(colinfo.hidden)
    for r, rowinfo in src.rowinfo_map.items():
        ws.row_dimensions[r + 1].hidden = bool(rowinfo.hidden)
        if not rowinfo.has_default_height:
            ws.row_dimensions[r + 1].height = rowinfo.height / 20
    return workbook, ws


def _xls_value(cell: Any, datemode: int) -> Any:
    import xlrd

    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None
    if cell.ctype == xlrd.XL_CELL_ERROR:
        return EXCEL_ERROR_CODES.get(cell.value, "#ERROR")
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value
    return cell.value


def _pick_decoding(grids: Sequence[Grid], issues: Sequence[Issue], encoding: Any) -> Grid:
    """The CSV decoding the pipeline used: the receipt's encoding, else the one with most headers."""
    for grid in grids:
        if encoding and grid.encoding == encoding:
            return grid
    wanted = {part for i in issues for _, path in _column_parts(i.column) for part in path.split("/") if part}

    def score(grid: Grid) -> int:
        text = normalise_header("".join(str(v) for row in grid.rows for v in row if v is not None))
        return sum(1 for part in wanted if part in text)

    return max(grids, key=score)  # max keeps the first of equals: decode_candidates' order


def _rebuild_grid(grid: Grid) -> tuple[Workbook, Worksheet]:
    """A CSV grid as a sheet; cells stay text exactly as sent (an 18-digit ID must not become a float)."""
    workbook = Workbook()
    ws = workbook.active
    assert isinstance(ws, Worksheet)
    ws.title = CSV_SHEET
    for r, row in enumerate(grid.rows, start=1):
        for c, value in enumerate(row, start=1):
            if value is not None:
                _put(ws.cell(row=r, column=c), value)
    for c in range(1, grid.n_cols + 1):
        ws.column_dimensions[get_column_letter(c)].width = 14
    return workbook, ws


def _put(cell: Cell, value: Any) -> None:
    """Write a value copied from a submission; text never becomes a formula."""
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", cap_text(value))  # as the reader cut it
    cell.value = value
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        cell.data_type = "s"
        cell.quotePrefix = True




def _column_parts(column: str | None) -> list[tuple[str, str]]:
    """``"C列 在校学生数/小学；B列 适龄儿童少年数"`` → [("C", "在校学生数/小学"), ("B", "适龄儿童少年数")]."""
    parts = []
    for text in re.split(r"[；;]", column or ""):
        match = _COLUMN_LABEL.match(text)
        part = (match.group(1), normalise_header(match.group(2))) if match else None
        if part is not None and part not in parts:
            parts.append(part)
    return parts


def _mark_issues(ws: Worksheet, sheet: str | None, issues: Sequence[Issue]) -> dict[int, tuple[int, int]]:
    """Colour and comment each named cell (unhiding its row); returns issue index → first cell marked."""
    marks: dict[tuple[int, int], list[Issue]] = {}
    located: dict[int, tuple[int, int]] = {}
    for n, found in enumerate(issues):
        if found.sheet is not None and found.sheet not in (sheet, ws.title):
            continue  # another sheet than the one read: the summary lists it
        for position in _targets(ws, found):
            anchor = _merged_anchor(ws, *position)
            marks.setdefault(anchor, [])
            if found not in marks[anchor]:
                marks[anchor].append(found)
            located.setdefault(n, anchor)
    for (r, c), on_cell in marks.items():
        on_cell.sort(key=lambda i: SEVERITY_RANK.get(i.severity, 3))
        cell = ws.cell(row=r, column=c)
        ws.row_dimensions[r].hidden = False  # a mark in a hidden row must be seen (ROWS_HIDDEN)
        colour = FILL_COLOURS.get(on_cell[0].severity, FILL_COLOURS["info"])
        cell.fill = PatternFill(fill_type="solid", start_color=colour, end_color=colour)
        text = "\n\n".join(f"【{SEVERITY_ZH.get(i.severity, i.severity)}】{i.code}\n{i.message}" for i in on_cell)
        if cell.comment is not None:  # keep the department's own note
            text += f"\n\n—— 原批注 ——\n{cell.comment.text}"
        cell.comment = _comment(text)
    return located


def _targets(ws: Worksheet, found: Issue) -> list[tuple[int, int]]:
    """(row, col), 1-based, of the cells an issue is about; [] when it names no cell."""
    columns: list[tuple[int, str]] = []
    for letter, path in _column_parts(found.column):
        index = column_index_from_string(letter)
        if index <= MAX_COL:
            columns.append((index, path))
    row = found.row
    if row is not None:
        if not 1 <= row <= MAX_ROW:
            return []
        return [(row, c) for c, _ in columns] if columns else [(row, _first_filled_column(ws, row))]
    return [(r, c) for c, path in columns if (r := _header_row(ws, c, path)) is not None]


def _first_filled_column(ws: Worksheet, row: int) -> int:
    """The row's first non-blank cell (its key or 合计 label, or the title), else column A."""
    for cells in ws.iter_rows(min_row=row, max_row=row):
        for cell in cells:
            if cell.value is not None and str(cell.value).strip():
                return int(cell.column)  # type: ignore[arg-type]
    return 1


def _header_row(ws: Worksheet, column: int, path: str) -> int | None:
    """Row of the column's header cell (its last header level), for issues about a whole column."""
    leaf = path.split("/")[-1] if path else ""
    if not leaf:
        return None
    for cells in ws.iter_rows(min_row=1, max_row=min(ws.max_row, HEADER_SCAN_ROWS), min_col=column, max_col=column):
        for cell in cells:
            if cell.value is not None and normalise_header(str(cell.value)) == leaf:
                return int(cell.row)  # type: ignore[arg-type]
    return None


def _merged_anchor(ws: Worksheet, row: int, col: int) -> tuple[int, int]:
    """A cell inside a merged range is marked on the range's top-left cell (the only one shown)."""
    for rng in ws.merged_cells.ranges:
        if rng.min_row <= row <= rng.max_row and rng.min_col <= col <= rng.max_col:
            return rng.min_row, rng.min_col
    return row, col


def _comment(text: str) -> Comment:
    lines = sum(max(1, -(-len(line) // 22)) for line in text.split("\n"))
    return Comment(text, AUTHOR, height=min(600, 16 * lines + 24), width=320)




def _add_summary(
    workbook: Workbook,
    marked: Worksheet,
    issues: Sequence[Issue],
    located: Mapping[int, tuple[int, int]],
    original_name: str,
    summary: Mapping[str, Any],
) -> None:
    """First sheet: title, result, counts, what to do, then one row per issue (critical first)."""
    title = SUMMARY_SHEET if SUMMARY_SHEET not in workbook.sheetnames else f"{SUMMARY_SHEET}(核查)"
    ws = workbook.create_sheet(title, 0)
    for other in workbook.worksheets[1:]:
        other.sheet_view.tabSelected = False
    workbook.active = 0
    status = str(summary.get("status", ""))
    counts = {s: sum(1 for i in issues if i.severity == s) for s in SEVERITY_RANK}
    heading = " ".join(str(summary.get(k) or "") for k in ("title_zh", "period")).strip()
    status_zh = STATUS_ZH.get(status, status) + ("(试运行，未入库)" if summary.get("dry_run") else "")
    wrap = Alignment(wrap_text=True, vertical="top")
    lines = [
        f"{heading} 数据核查结果".strip(),
        f"报送文件: {original_name}",
        f"处理结果: {status_zh}",
        "问题数: " + "，".join(f"{SEVERITY_ZH[s]}{counts[s]}项" for s in SEVERITY_RANK),
        (INSTRUCTIONS_ZH.get(status, "") + INSTRUCTION_TAIL),
    ]
    for r, text in enumerate(lines, start=1):
        _put(ws.cell(row=r, column=1), text)
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=len(SUMMARY_HEADERS))
        ws.cell(row=r, column=1).alignment = wrap
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    ws.row_dimensions[1].height = 24
    ws.row_dimensions[len(lines)].height = 48
    header_row = len(lines) + 2
    for c, text in enumerate(SUMMARY_HEADERS, start=1):
        cell = ws.cell(row=header_row, column=c, value=text)
        cell.font = Font(bold=True)
        cell.fill = PatternFill(fill_type="solid", start_color="D9D9D9", end_color="D9D9D9")
        cell.alignment = Alignment(horizontal="center", vertical="center")
    order = sorted(range(len(issues)), key=lambda n: SEVERITY_RANK.get(issues[n].severity, 3))
    for k, n in enumerate(order, start=1):
        found, r = issues[n], header_row + k
        shown_sheet = marked.title if n in located else (found.sheet or "")
        values = (k, SEVERITY_ZH.get(found.severity, found.severity), found.code, shown_sheet,
                  found.row, found.column or "", found.message, advice_for(found.code))
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c)
            _put(cell, value)
            cell.alignment = wrap
        colour = FILL_COLOURS.get(found.severity, FILL_COLOURS["info"])
        ws.cell(row=r, column=2).fill = PatternFill(fill_type="solid", start_color=colour, end_color=colour)
        if n in located:  # jump to the marked cell
            row, col = located[n]
            link = ws.cell(row=r, column=6 if found.column else 5)
            quoted = marked.title.replace("'", "''")
            link.hyperlink = Hyperlink(ref=link.coordinate, location=f"'{quoted}'!{get_column_letter(col)}{row}")
            link.font = Font(color="0563C1", underline="single")
    for letter, width in zip("ABCDEFGH", (6, 10, 26, 14, 6, 34, 70, 40), strict=True):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    if issues:
        ws.auto_filter.ref = f"A{header_row}:H{header_row + len(issues)}"
    _print_setup(ws, repeat_rows=f"{header_row}:{header_row}")
    _print_setup(marked, repeat_rows=None)


def _print_setup(ws: Worksheet, repeat_rows: str | None) -> None:
    """A4 landscape, one page wide; the header row on every page; comments printed at the end.

    Comments do not print by themselves, which is why the summary sheet writes each issue's
    message and 怎样改正 in cells; the marked sheet's comments are printed after the sheet too.
    """
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.cellComments = "atEnd"
    if repeat_rows is not None:
        ws.print_title_rows = repeat_rows


def _save_atomically(workbook: Workbook, out_path: Path) -> None:
    """Temp file in the same folder, then rename: readers see the old file or the whole new one."""
    workbook.properties.lastModifiedBy = AUTHOR
    write_atomically(out_path, workbook.save)
