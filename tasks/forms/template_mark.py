"""The mark a blank form made by the portal carries: which department, period and declaration it is for.

The portal's 空白报表 (``tasks/portal/blank_form.py``) writes a very hidden sheet named
:data:`MARK_SHEET` holding ``key → value`` rows (department, period, declaration version). When
the filled form comes back, the reader finds that sheet here: it is never a candidate for the form
(no SHEET_CHOSEN note for it), and a mark that names another department or period than the one
declared at submission refuses the file with the cell of the mark that disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.forms.grid import Grid

MARK_SHEET = "duikou_template"
MARK_KEYS = ("department", "period", "declaration_version")


@dataclass(frozen=True)
class TemplateMark:
    department: str
    period: str
    declaration_version: str

    def rows(self) -> list[tuple[str, str]]:
        return [("department", self.department), ("period", self.period),
                ("declaration_version", self.declaration_version)]


def is_mark(grid: Grid) -> bool:
    return grid.sheet == MARK_SHEET


def find_mark(grids: list[Grid]) -> tuple[TemplateMark | None, list[Grid]]:
    """The mark of a returned blank form (None when the file is not one) and the other grids."""
    marks = [g for g in grids if is_mark(g)]
    others = [g for g in grids if not is_mark(g)]
    if not marks:
        return None, grids
    values = {str(row[0]).strip(): str(row[1]).strip() for row in marks[0].rows
              if len(row) >= 2 and row[0] is not None and row[1] is not None}
    if not all(key in values for key in MARK_KEYS):
        return None, others  # a sheet of that name without the mark: not ours, and never the form
    return TemplateMark(values["department"], values["period"], values["declaration_version"]), others
