"""What the quality page leads with (pure; frames in, views out): what needs someone's attention —
open follow-ups with Chinese indicator labels, quarantined and refused files, flagged values — and a
heat view of checks failed by department × month (``mart_dq_scorecard``). The full tables follow
on the page, folded (``tasks.report.quality``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks.report.quality import Matrix, indicator_label, receipt_name
from tasks.report.style import zh_punct
from tasks.report.tables import Cell, count_text
from tasks.report.view import DASH, number, period_label_zh
from warehouse.schema import SUBMISSION_STATUS_ZH


@dataclass(frozen=True)
class Attention:
    """What needs someone's attention, first on the quality page: counts and short lists."""

    followups: tuple[str, ...]  # one line per open follow-up: 部门 报告期 乡镇 指标：原因
    files: tuple[tuple[str, str | None], ...]  # (line, receipt href) per quarantined / rejected file
    flagged: int  # values flagged and not yet accepted (mart_dq_scorecard)
    open_count: int

    @property
    def empty(self) -> bool:
        return not self.followups and not self.files and not self.flagged


def attention(
    followups: pd.DataFrame | None, subs: pd.DataFrame, scorecard: pd.DataFrame | None,
    departments: dict[str, str], townships: pd.DataFrame, receipts: set[str],
) -> Attention:
    """Open follow-ups (Chinese indicator labels), files waiting in quarantine or refused, and the count
    of flagged values — newest period first."""
    names = dict(zip(townships["township_code"], townships["township_name"], strict=True))
    lines = []
    if followups is not None and not followups.empty:
        for r in followups.sort_values(["period", "department"], ascending=[False, True]).to_dict("records"):
            where = " ".join(t for t in (departments.get(str(r["department"]), str(r["department"])),
                                         period_label_zh(str(r["period"])),
                                         names.get(r["township_code"], "") if isinstance(r["township_code"], str)
                                         else "") if t)  # fmt: skip
            label = indicator_label(r["department"], r["indicator"])
            what = f"{label}：" if label != DASH else ""
            lines.append(zh_punct(f"{where} {what}{r['reason_zh']}"))  # our checks' words: typeset
    files = []
    waiting = subs[subs["status"].isin(["quarantined", "rejected"])] if not subs.empty else subs
    if not waiting.empty:
        for r in waiting.sort_values(["period", "department"], ascending=[False, True]).to_dict("records"):
            sid = str(r["submission_id"])
            status = SUBMISSION_STATUS_ZH.get(str(r["status"]), str(r["status"]))
            line = (f"{departments.get(str(r['department']), str(r['department']))} "
                    f"{period_label_zh(str(r['period']))} {status}：{r['original_name']}"
                    f"（严重问题 {count_text(r.get('critical_issues'))} 项）")  # fmt: skip
            files.append((line, f"receipts/{receipt_name(sid)}.html" if sid in receipts else None))
    flagged = 0 if scorecard is None or scorecard.empty else int(pd.to_numeric(scorecard["values_flagged"]).sum())
    return Attention(tuple(lines), tuple(files), flagged, len(lines))


HEAT_BUCKETS = (1, 3, 10)  # checks failed: 0, 1–2, 3–9, 10+ → classes h0..h3


def _heat_class(failed: float) -> str:
    return f"h{sum(failed >= b for b in HEAT_BUCKETS)}"


def heat_matrices(frame: pd.DataFrame | None, departments: dict[str, str]) -> list[Matrix]:
    """Checks failed (critical + warning) by department × month, one matrix per year, newest first."""
    if frame is None or frame.empty:
        return []
    data = frame.assign(period=frame["month"].astype(str), year=frame["month"].astype(str).str[:4].astype(int))
    out = []
    for year in sorted(set(data["year"]), reverse=True):
        rows = data[data["year"] == year]
        months = sorted({str(m) for m in rows["month"]})
        lookup = {(str(r["department"]), str(r["month"])): r for r in rows.to_dict("records")}
        body = []
        for department in sorted({str(d) for d in rows["department"]}):
            cells = [Cell(departments.get(department, department))]
            for month in months:
                r = lookup.get((department, month))
                if r is None:
                    cells.append(Cell("", "heat st-none"))
                    continue
                critical, warning = number(r["checks_failed_critical"]) or 0, number(r["checks_failed_warning"]) or 0
                failed = critical + warning
                cells.append(Cell(count_text(failed), f"heat {_heat_class(failed)}",
                                  title=f"{period_label_zh(month)}：检查 {count_text(r['checks_run'])} 项次，"
                                        f"严重未通过 {count_text(critical)}，警告未通过 {count_text(warning)}，"
                                        f"标记数值 {count_text(r['values_flagged'])}"))  # fmt: skip
            body.append(tuple(cells))
        out.append(Matrix(year, ("部门", *(f"{int(m[5:])}月" for m in months)), tuple(body)))
    return out
