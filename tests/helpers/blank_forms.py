"""Filling the portal's blank form as a clerk would (openpyxl, plain numbers): shared by the blank-form
test and the portal's browser test."""

from __future__ import annotations

import io
from collections.abc import Mapping

import openpyxl

from tasks.portal.blank_form import TOTAL_LABEL


def education_values(n: int) -> dict[str, float]:
    """A plausible education row for the n-th township: rules hold (合计 = 小学 + 初中, no dropouts)."""
    primary, junior = 300 + 7 * n, 150 + 3 * n
    return {"school_age_children_persons": primary + junior + 20, "enrolled_primary_persons": primary,
            "enrolled_junior_persons": junior, "enrolled_total_persons": primary + junior,
            "enrolled_poor_persons": 40 + n, "dropouts_persons": 0, "returned_to_school_ytd_persons": 0,
            "nutrition_beneficiaries_persons": primary, "student_aid_ytd_person_times": 60 + n,
            "student_aid_ytd_yuan": round(10.25 + n, 2), "teacher_training_person_times": n % 3}


def fill_blank(content: bytes, names: list[str], values: Mapping[int, Mapping[str, float]] | None = None,
               override: Mapping[tuple[str, str], object] | None = None) -> bytes:
    """The blank form with every township row and the 合计 row filled (columns in ``names`` order, from B).

    ``values``: township row index → indicator → value (default :func:`education_values`);
    ``override``: (township name or 合计, indicator) → a value written instead (a flaw to plant).
    """
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    ws = workbook.worksheets[0]
    rows = [r for r in range(1, ws.max_row + 1) if ws.cell(row=r, column=1).value is not None]
    first = next(r for r in rows if ws.cell(row=r, column=1).value == "乡(镇)")
    body = [r for r in rows if r > first]  # the second header row's A cell is inside the 乡(镇) merge: None
    towns = [r for r in body if ws.cell(row=r, column=1).value != TOTAL_LABEL]
    total_row = next(r for r in body if ws.cell(row=r, column=1).value == TOTAL_LABEL)
    sums = dict.fromkeys(names, 0.0)
    for n, r in enumerate(towns):
        row_values = (values or {}).get(n) or education_values(n)
        for c, name in enumerate(names, start=2):
            value = row_values[name]
            sums[name] += value
            ws.cell(row=r, column=c, value=(override or {}).get((str(ws.cell(row=r, column=1).value), name), value))
    for c, name in enumerate(names, start=2):
        total = int(sums[name]) if float(sums[name]).is_integer() else round(sums[name], 2)
        ws.cell(row=total_row, column=c, value=(override or {}).get((TOTAL_LABEL, name), total))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
