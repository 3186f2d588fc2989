"""Messages to a department's own channel: a return falls due soon, or a return was refused.

Pure: which reminders are due today, and the Chinese text of each message with the portal's link.
Sending is the flow's business (``flows/department_notices.py``, through a Prefect notification
block named per department in the settings).

* **Due soon** — for each return a department owes whose due date is ``days`` ahead (settings:
  ``DUIKOU_REMIND_DAYS_BEFORE``, default ``3,1``) and which has not been received yet.
* **Refused or quarantined** — right after the run that decided it: the file, the outcome, the
  first issues and the link to the receipt page, where the advice and the correction workbook are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from expectations.declaration import Declaration
from expectations.obligations import due_date, is_owed, last_ended_period
from tasks.portal.blank_form import department_names, period_words

OUTCOME_WORDS = {"rejected": "已退回（数据未入库）", "quarantined": "已暂存待核（数据暂未入库）"}


@dataclass(frozen=True)
class Notice:
    department: str
    kind: str  # due / outcome
    subject: str
    body: str


def parse_days(text: str) -> tuple[int, ...]:
    """``"3,1"`` → (3, 1); each a whole number of days ≥ 0. ValueError naming the bad item."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not item.isdigit():
            raise ValueError(f"DUIKOU_REMIND_DAYS_BEFORE: {item!r} is not a whole number of days")
        out.append(int(item))
    return tuple(sorted(set(out), reverse=True))


def due_reminders(declarations: Mapping[str, Declaration], received: Mapping[str, Iterable[str]], today: date,
                  days_before: Iterable[int], portal_url: str) -> list[Notice]:
    """One notice per department × period due in exactly one of ``days_before`` days and not yet received.

    ``received``: the periods each department has sent (any outcome counts: a refused return is
    told by its own notice). The candidate periods are the last ended one and the one before
    (a monthly return is due in the month after its period; nothing else can fall due soon).
    """
    wanted = set(days_before)
    out = []
    for department in sorted(declarations):
        decl = declarations[department]
        sent = set(received.get(department, ()))
        for period in _candidates(decl.period_type, today):
            if not is_owed(decl, period) or period in sent:
                continue
            due = due_date(decl, period)
            left = (due - today).days
            if left not in wanted:
                continue
            out.append(_due_notice(decl, period, due, left, portal_url))
    return out


def _candidates(period_type: str, today: date) -> list[str]:
    last = last_ended_period(period_type, today)
    before = last_ended_period(period_type, date(int(last[:4]), int(last[5:7]) if len(last) > 4 else 1, 1))
    return [before, last] if period_type != "year" else [last]


def _department_zh(department: str) -> str:
    return department_names().get(department, department)


def _due_notice(decl: Declaration, period: str, due: date, left: int, portal_url: str) -> Notice:
    when = "今天" if left == 0 else f"还有{left}天（{due.month}月{due.day}日）"
    deadline = due + timedelta(days=decl.grace_days)
    grace = f"，宽限至{deadline.month}月{deadline.day}日" if decl.grace_days else ""
    subject = f"【报送提醒】{period_words(period)}{decl.title_zh}{'今天' if left == 0 else f'{left}天后'}到期"
    body = (f"{_department_zh(decl.department)}：{period_words(period)}{decl.title_zh}{when}到期{grace}，"
            f"系统尚未收到。请登录报表报送平台下载空白报表、填写后报送：{portal_url}")
    return Notice(decl.department, "due", subject, body)


def outcome_notice(department: str, title_zh: str, period: str, original_name: str, status: str,
                   issues: list[dict[str, object]], receipt_url: str) -> Notice | None:
    """The notice of a refused or quarantined return; None for any other outcome."""
    if status not in OUTCOME_WORDS:
        return None
    critical = [i for i in issues if i.get("severity") == "critical"]
    first = "；".join(str(i.get("message", "")) for i in critical[:3])
    more = f"等{len(critical)}项" if len(critical) > 3 else ""
    subject = f"【报送结果】{period_words(period)}{title_zh}{OUTCOME_WORDS[status][:3]}"
    body = (f"{_department_zh(department)}：您报送的“{original_name}”（{period_words(period)}）"
            f"{OUTCOME_WORDS[status]}。主要问题：{first or '见回执'}{more}。"
            f"怎样改正、核查工作簿请见回执：{receipt_url}")
    return Notice(department, "outcome", subject, body)
