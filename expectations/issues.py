"""Issues found in a submission: the vocabulary of receipts.

Every problem the pipeline finds — while reading, normalising or validating — becomes one
:class:`Issue` with a stable ``code``, a severity, where it is (sheet, row, column) and a Chinese
message for the department. The codes below are the catalogue; receipts and the warehouse store
them as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
Action = Literal["reject", "quarantine", "coerce", "flag", "report"]

#: code → (default severity, what happens, description in English for docs)
ISSUE_CODES: dict[str, tuple[Severity, Action, str]] = {
    "FILE_EMPTY": ("critical", "reject", "the file has no bytes or no cells"),
    "FILE_UNREADABLE": ("critical", "reject", "the file is not a readable xlsx/xls/csv"),
    "FILE_FORMAT_UNSUPPORTED": ("critical", "reject", "extension is not .xlsx, .xls or .csv"),
    "FILE_TOO_LARGE": ("critical", "reject", "the file is larger than DUIKOU_MAX_UPLOAD_BYTES (checked first)"),
    "FILE_UNSAFE": ("critical", "reject", "a crafted file: zip bomb, XML DOCTYPE/entities, or an absurd cell count"),
    "ENCODING_UNDECODABLE": ("critical", "reject", "CSV bytes decode neither as UTF-8 nor GB18030"),
    "ENCODING_DETECTED": ("info", "report", "which text encoding a CSV was read with"),
    "SHEET_AMBIGUOUS": ("critical", "reject", "several sheets carry the declared header"),
    "SHEET_CHOSEN": ("info", "report", "which sheet of a multi-sheet workbook was read"),
    "HEADER_NOT_FOUND": ("critical", "reject", "no row carries the declared key header 乡(镇)"),
    "COLUMN_MISSING": ("critical", "reject", "a required indicator column is absent"),
    "COLUMN_OPTIONAL_MISSING": ("info", "report", "an optional indicator column is absent"),
    "COLUMNS_HIDDEN": ("warning", "flag", "hidden columns carry data; read, reported, never dropped"),
    "COLUMN_ALIAS": ("info", "coerce", "a column was recognised through a declared alias"),
    "COLUMN_UNKNOWN": ("critical", "quarantine", "a column the declaration does not know"),
    "UNIT_MISMATCH": ("critical", "quarantine", "a header states another unit than the declaration (元 vs 万元)"),
    "COLUMN_DUPLICATE": ("critical", "reject", "two columns map to the same indicator"),
    "PERIOD_MISMATCH": ("critical", "reject", "the title's period disagrees with the declared period"),
    "PERIOD_AMBIGUOUS": ("critical", "reject", "the title's period can be read two ways (2017.1 may be 2017.10)"),
    "PERIOD_INVALID": ("critical", "reject", "the declared period is malformed for this return"),
    "TITLE_DEPARTMENT_MISMATCH": ("critical", "reject", "the title names another department's form (without"
                                  " such a title: the header is another department's)"),
    "TOWNSHIP_UNKNOWN": ("critical", "reject", "a township name matches no name valid at the period"),
    "TOWNSHIP_DUPLICATE": ("critical", "reject", "a township appears on two rows"),
    "TOWNSHIP_MISSING": ("warning", "flag", "a township valid in the period is absent from the form"),
    "TOWNSHIP_ALIAS": ("info", "coerce", "a township given by a short or former name"),
    "TOWNSHIP_CODE_MISMATCH": ("critical", "reject", "a division code (区划代码) beside a township name belongs to"
                               " another township, or to none, at the period"),
    "TOTAL_ROW_MISSING": ("info", "report", "the form has no 合计 row to check township sums against"),
    "TOTAL_MISMATCH": ("critical", "quarantine", "合计 row ≠ Σ township rows (difference given)"),
    "TOTAL_IS_PLAIN_SUM": ("warning", "report", "a per-capita or rate column's 合计 is the plain sum of the"
                           " townships (a SUM copied across): that 合计 is ignored, the townships load"),
    "VALUE_NOT_NUMBER": ("critical", "reject", "a cell cannot be read as a number"),
    "VALUE_COERCED": ("info", "coerce", "a number written as text was converted (recorded per cell)"),
    "VALUE_NULL_TOKEN": ("info", "coerce", "a null token (—, /, 无, blank) read as no value"),
    "VALUE_REQUIRED_MISSING": ("critical", "reject", "a required value is blank"),
    "VALUE_EXCEL_ERROR": ("critical", "reject", "a cell holds an Excel error such as #DIV/0!"),
    "RATE_AMBIGUOUS": ("critical", "reject", "a rate column mixes fractions (0.95) and percentages (95)"),
    "VALUE_NOT_INTEGER": ("critical", "reject", "a count (人, 户, 人次) is not a whole number"),
    "VALUE_NEGATIVE": ("critical", "reject", "a count or amount is negative"),
    "ROWS_EMPTY": ("critical", "reject", "the form has a header but no township rows"),
    "NIL_RETURN": ("info", "report", "a nil return (无数据申报): no data rows and a declared marker line, or the"
                   " portal's nil button; received, no facts"),
    "SUBLINE_IGNORED": ("warning", "report", "a township's 其中 sub-line the declaration does not know: reported,"
                        " its values not read"),
    "ROW_TRUNCATED": ("critical", "reject", "a CSV row has fewer fields than the header, or the file ends mid-row"),
    "ROWS_HIDDEN": ("warning", "flag", "rows hidden in Excel were read as data (reported, never dropped)"),
    "CHECK_ERROR": ("critical", "quarantine", "a check could not be evaluated; an operator must look"),
    "CUMULATIVE_DECREASED": ("critical", "quarantine", "a 本年累计 value is below the township's previous month"),
    "MAGNITUDE_SUSPECT": ("critical", "quarantine", "a value ≥1000× off the township's history (unit slip?)"),
    "VALUE_OUTLIER": ("warning", "flag", "modified z-score against the township's own history (same month of "
                      "earlier years when ≥3) above the indicator's outlier_threshold"),
    "VALUE_OUT_OF_BAND": ("warning", "flag", "a value outside the declaration's band: [min, max]"),
    "INCREMENT_MISMATCH": ("warning", "flag", "a 本月 value ≠ the change of its 本年累计 since the previous month"),
    "RULE_FAILED": ("warning", "flag", "a declared rule failed (severity and action from the declaration)"),
    "DUPLICATE_SUBMISSION": ("info", "report", "the identical file was already received"),
    "NEWER_VERSION_LOADED": ("critical", "quarantine", "a file received again that would now load, but a version of "
                             "the period received after it is loaded: older data never replaces newer unasked; "
                             "an operator decides (duikou quarantine release --force)"),
    "CELL_TRUNCATED": ("warning", "coerce", "a text cell longer than 1,000 characters"
                       " (tasks.forms.file_safety.MAX_CELL_CHARS) was cut to that length as it was read;"
                       " sheet, row, column and original length given"),
    # person-level registries (tasks/registry/stream.py): messages name the row, never the ID or the name
    "PERSON_ID_EXCEL_MANGLED": ("critical", "reject", "an ID number shown by Excel as 5.13323E+17 (digits lost)"),
    "PERSON_ID_INVALID": ("critical", "reject", "an ID number is not 18 characters (17 digits + digit or X)"),
    "PERSON_ID_CHECK_DIGIT": ("critical", "reject", "an ID number's GB 11643 check character is wrong"),
    "PERSON_ID_BIRTH_DATE": ("critical", "reject", "an ID number's birth date (digits 7–14) is not a real date"),
    "PERSON_SEX_MISMATCH": ("critical", "reject", "性别 disagrees with the ID number's 17th digit"),
    "PERSON_DUPLICATE": ("critical", "reject", "an ID number appears on more than one row (rows listed)"),
    "PERSON_AGE_OUT_OF_BAND": ("warning", "flag", "age outside 16–60 (men) / 16–55 (women)"),
    "VALUE_NOT_ALLOWED": ("critical", "reject", "a value outside an enumerated field's declared options"),
    "VALUE_OUT_OF_RANGE": ("warning", "flag", "a number outside its declared plausible range"),
    "VALUE_NOT_DATE": ("critical", "reject", "a date column's cell is not a date (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD)"),
    "VALUE_DUPLICATE": ("critical", "reject", "a column declared unique repeats a value (rows listed)"),
    "ROWS_NOT_ALL_LISTED": ("info", "report", "more rows failed one check than a receipt lists; all are counted"),
    "REGISTRY_RECONCILIATION": ("warning", "flag", "registry head count vs the monthly return beyond the tolerance"),
    "PERSON_KEY_MISSING": ("critical", "reject", "DUIKOU_PERSON_KEY is not set: registries cannot be ingested"),
}


#: characters kept of an issue's message, and of the text fields that quote the submission (a
#: cell's value, a column's header, a sheet's name): an issue is copied into the receipt, the
#: issue table, the correction workbook and every report build, so it must stay small whatever
#: the file held (the reader already cuts cells to 1,000 characters; this is the second line)
MAX_MESSAGE_CHARS = 2_000
MAX_QUOTED_CHARS = 1_000


def _capped(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…(共{len(text)}字)"


@dataclass(frozen=True)
class Issue:
    code: str
    severity: Severity
    message: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    rule_id: str | None = None
    action: Action | None = None
    value: str | None = None
    #: the decisive issue this one follows from (wrong department's form, wrong period, …): its code
    caused_by: str | None = None

    def __post_init__(self) -> None:
        if self.code not in ISSUE_CODES:
            raise ValueError(f"unknown issue code {self.code!r}")
        # frozen: the caps are applied once, here, whoever builds the issue
        object.__setattr__(self, "message", _capped(self.message, MAX_MESSAGE_CHARS))
        for name in ("value", "column", "sheet"):
            object.__setattr__(self, name, _capped(getattr(self, name), MAX_QUOTED_CHARS))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


#: issues that decide a file by themselves: everything else found in the file follows from them
ROOT_CAUSES = ("HEADER_NOT_FOUND", "SHEET_AMBIGUOUS", "TITLE_DEPARTMENT_MISMATCH", "PERIOD_MISMATCH",
               "PERIOD_AMBIGUOUS")
#: context, not consequences: which sheet / encoding was read, cells cut at read time
_NEVER_FOLDED = frozenset({"SHEET_CHOSEN", "ENCODING_DETECTED", "CELL_TRUNCATED", "DUPLICATE_SUBMISSION"})


def fold_under_root_cause(issues: list[Issue] | tuple[Issue, ...]) -> tuple[Issue, ...]:
    """One root cause, not a cascade: after a decisive issue (:data:`ROOT_CAUSES`, first one found
    wins) every other issue that follows from it carries ``caused_by`` and comes after it.

    A wrong department's form also "misses" every column and "has" ten unknown ones; a form of
    another month fails its history checks: those are counted under the cause, not listed first.
    """
    root = next((i for c in ROOT_CAUSES for i in issues if i.code == c), None)
    if root is None:
        return tuple(issues)
    from dataclasses import replace

    context = [i for i in issues if i.code in _NEVER_FOLDED]
    roots = [i for i in issues if i.code in ROOT_CAUSES and i.code == root.code]
    rest = [replace(i, caused_by=root.code) for i in issues if i not in context and i.code != root.code]
    return (*roots, *context, *rest)


def issue(code: str, message: str, **where: Any) -> Issue:
    """An issue with the catalogue's default severity and action for ``code``."""
    severity, action, _ = ISSUE_CODES[code]
    where.setdefault("severity", severity)
    where.setdefault("action", action)
    return Issue(code=code, message=message, **where)
