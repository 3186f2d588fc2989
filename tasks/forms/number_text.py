"""Text → numbers, deterministically, recording every coercion.

County forms carry numbers as numbers, but also as text: ``"1,234"``, full-width ``"１２３"``,
``"12人"``, null tokens (— / 无 / blank) and Excel errors (#DIV/0!). Each outcome is explicit:
a value, a recorded coercion, or an error code — never a guess.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

NULL_TOKENS = frozenset({"—", "——", "-", "--", "–", "/", "无", "空", "\\", "－", "—-"})
EXCEL_ERRORS = frozenset(
    {"#DIV/0!", "#REF!", "#VALUE!", "#N/A", "#NAME?", "#NUM!", "#NULL!", "#ERROR", "#GETTING_DATA"}
)
_PLAIN = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


@dataclass(frozen=True)
class ParsedNumber:
    value: float | None
    coercion: str | None = None  # what was done to text, for the receipt
    error: str | None = None  # issue code when the cell cannot be a number
    null_token: str | None = None


def parse_number(raw: object, unit: str | None = None, *, native_text: bool = False) -> ParsedNumber:
    """Parse one cell. ``unit`` lets ``"12人"`` through when 人 is the column's declared unit.

    ``native_text``: the format has no number type (CSV), so a plain ``"123"`` is no coercion;
    in a workbook a number stored as text is one, and is recorded.
    """
    if raw is None:
        return ParsedNumber(None)
    if isinstance(raw, bool):
        return ParsedNumber(None, error="VALUE_NOT_NUMBER")
    if isinstance(raw, int | float):
        value = float(raw)
        if math.isnan(value):
            return ParsedNumber(None)
        if math.isinf(value):
            return ParsedNumber(None, error="VALUE_NOT_NUMBER")
        return ParsedNumber(value)
    text = str(raw).strip()
    if not text:
        return ParsedNumber(None)
    folded = unicodedata.normalize("NFKC", text).replace("\u3000", "").replace(" ", "")
    if folded.upper() in EXCEL_ERRORS:
        return ParsedNumber(None, error="VALUE_EXCEL_ERROR")
    if text in NULL_TOKENS or folded in NULL_TOKENS:
        return ParsedNumber(None, null_token=text)
    notes = []
    if folded != text:
        notes.append("全角/空格规范化")
    if unit and folded.endswith(unit) and len(folded) > len(unit):
        folded = folded[: -len(unit)]
        notes.append(f"去掉单位“{unit}”")
    if _THOUSANDS.fullmatch(folded):
        folded = folded.replace(",", "")
        notes.append("去掉千位分隔符")
    if _PLAIN.fullmatch(folded):
        value = float(folded)
        if native_text and not notes:
            return ParsedNumber(value)
        coercion = f"文本“{text}”读作{_format(value)}" + (f"({'，'.join(notes)})" if notes else "")
        return ParsedNumber(value, coercion=coercion)
    return ParsedNumber(None, error="VALUE_NOT_NUMBER")


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def is_whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-9
