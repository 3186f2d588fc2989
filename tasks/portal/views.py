"""What the portal's pages show, without HTTP: the department's submissions and a receipt as a page.

* :func:`department_submissions` — 本部门报送: the ledger's rows of one department and the files
  still waiting in its landing area, newest first, each with its status in Chinese and the time it
  was received in Beijing time;
* :func:`receipt_page` — 回执: the outcome first, then each issue in Chinese with where it is and
  what to do (``expectations/advice.py``, the same texts as docs/departments.md); the issues that
  follow from a root cause (a form of another department or period, no header, two candidate
  sheets: the receipt's ``caused_by``, ``expectations.issues.fold_under_root_cause``) are folded as
  “另有N项由此引起”.

Another department's submission is never read here: every function takes the department and
filters by it (the portal's routes add nothing to that).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, select

from duikou_settings import Settings
from expectations.advice import GUIDANCE, advice_for, needs_no_action
from tasks.landing.landed import ACCEPTED_SUFFIXES, find_landed, read_sidecar
from warehouse import schema
from warehouse.ledger import ledger_row

BEIJING = timezone(timedelta(hours=8))
STATUS_ZH = {
    "loaded": "已入库",
    "superseded": "已入库（已被新版本取代）",
    "rejected": "已退回",
    "quarantined": "待核实",
    "duplicate": "重复",
    "received": "处理中",
    "nil": "已入库（无数据申报）",
}
SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
OUTCOME_ZH = {
    "loaded": "数据已入库。",
    "superseded": "数据曾入库，已被本报告期后来报送的版本取代。",
    "rejected": "文件有必须改正的错误，数据一条也没有入库。请按下列说明改正后，重新报送整张报表。",
    "quarantined": "数据可疑，暂未入库，工作人员正在核实；确有错误的，请改正后重新报送整张报表。",
    "duplicate": "与此前收到的文件完全相同，未重复入库，无需处理。",
    "received": "文件已收到，正在处理，本页会自动刷新。",
    "nil": "已记录本期无数据申报：按已报送计，没有数据入库。",
}


def beijing(value: datetime | str | None) -> str:
    """``2017-06-08 09:30`` in Beijing time (a naive datetime is taken as UTC, as the ledger stores it)."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class SubmissionLine:
    submission_id: str
    period: str
    original_name: str
    received_at: datetime
    status: str

    @property
    def status_zh(self) -> str:
        return STATUS_ZH.get(self.status, self.status)

    @property
    def received_zh(self) -> str:
        return beijing(self.received_at)


def department_submissions(engine: Engine | None, settings: Settings, department: str) -> list[SubmissionLine]:
    """The department's submissions, newest first: the ledger's rows and the files still waiting."""
    lines: dict[str, SubmissionLine] = {}
    if engine is not None:
        sub = schema.submission
        query = select(sub.c.submission_id, sub.c.period, sub.c.original_name, sub.c.received_at,
                       sub.c.status).where(sub.c.department == department)
        with engine.connect() as conn:
            for row in conn.execute(query).mappings():
                lines[row["submission_id"]] = line_of(dict(row))
    for path in _waiting(settings.landing_dir / department):
        key = path.stem
        if key in lines:
            continue
        waiting = waiting_submission(settings, department, key)
        if waiting is not None:
            lines[key] = waiting
    return sorted(lines.values(), key=lambda line: (line.received_at, line.submission_id), reverse=True)


def ledger_periods(engine: Engine | None, department: str) -> tuple[set[str], str | None]:
    """(periods with a loaded return, the department's earliest period in the ledger) — for the period picker."""
    if engine is None:
        return set(), None
    sub = schema.submission
    with engine.connect() as conn:
        rows = conn.execute(select(sub.c.period, sub.c.status).where(sub.c.department == department)).all()
    loaded = {str(r.period) for r in rows if r.status in ("loaded", "superseded")}
    return loaded, min((str(r.period) for r in rows), default=None)


def _waiting(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("*/*") if p.is_file() and p.suffix in ACCEPTED_SUFFIXES
            and not p.name.startswith(".")]


@dataclass(frozen=True)
class IssueLine:
    code: str
    severity: str
    where: str  # 工作表“Sheet1” 第7行 C列 在校学生数/小学
    message: str
    advice: str
    meaning: str
    caused_by: str | None = None

    @property
    def severity_zh(self) -> str:
        return SEVERITY_ZH.get(self.severity, self.severity)

    @property
    def no_action(self) -> bool:
        return needs_no_action(self.code)


#: a waiting receipt page refreshes every second while the file is fresh (a receipt usually follows
#: within a second of the upload: docs/scaling.md), then every few seconds (a long registry, a queue)
FAST_REFRESH_SECONDS, SLOW_REFRESH_SECONDS, FAST_REFRESH_WINDOW_SECONDS = 1, 3, 15


@dataclass(frozen=True)
class ReceiptPage:
    submission_id: str
    department: str
    period: str
    original_name: str
    status: str
    summary_zh: str
    received_zh: str
    shown: list[IssueLine] = field(default_factory=list)  # root causes first, or every issue
    folded: list[IssueLine] = field(default_factory=list)  # 另有N项由此引起
    root_cause: bool = False
    has_workbook: bool = False
    supersedes: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    refresh_seconds: int = SLOW_REFRESH_SECONDS  # while waiting: how soon the page asks again

    @property
    def status_zh(self) -> str:
        return STATUS_ZH.get(self.status, self.status)

    @property
    def outcome_zh(self) -> str:
        return OUTCOME_ZH.get(self.status, "")

    @property
    def done(self) -> bool:
        return self.status != "received"


def _where(item: dict[str, Any]) -> str:
    parts = []
    if item.get("sheet"):
        parts.append(f"工作表“{item['sheet']}”")
    if item.get("row") is not None:
        parts.append(f"第{item['row']}行")
    if item.get("column"):
        parts.append(str(item["column"]))
    return " ".join(parts) or "整个文件"


def issue_lines(issues: list[dict[str, Any]]) -> list[IssueLine]:
    """Each issue of a receipt with its advice, most severe first (the receipt's order within a severity)."""
    lines = [IssueLine(str(i.get("code", "")), str(i.get("severity", "info")), _where(i), str(i.get("message", "")),
                       advice_for(str(i.get("code", ""))),
                       GUIDANCE[str(i["code"])].meaning_zh if i.get("code") in GUIDANCE else "",
                       str(i["caused_by"]) if i.get("caused_by") else None)
             for i in issues]
    return sorted(lines, key=lambda line: SEVERITY_RANK.get(line.severity, 3))


def receipt_page(receipt: dict[str, Any] | None, line: SubmissionLine, department: str) -> ReceiptPage:
    """The receipt of ``line`` as a page; ``receipt`` None while the file is still being processed."""
    if receipt is None:
        fresh = (datetime.now(UTC) - line.received_at).total_seconds() < FAST_REFRESH_WINDOW_SECONDS
        return ReceiptPage(line.submission_id, department, line.period, line.original_name, line.status,
                           "", line.received_zh,
                           refresh_seconds=FAST_REFRESH_SECONDS if fresh else SLOW_REFRESH_SECONDS)
    lines = issue_lines(list(receipt.get("issues") or []))
    folded = [x for x in lines if x.caused_by is not None]  # the pipeline's own judgement of what follows
    shown = [x for x in lines if x.caused_by is None]
    roots = sorted({x.caused_by for x in folded if x.caused_by is not None})
    counts = {s: sum(1 for x in lines if x.severity == s) for s in SEVERITY_RANK}
    status = "nil" if receipt.get("nil_return") and receipt.get("status") == "loaded" else \
        str(receipt.get("status") or line.status)
    if line.status == "superseded":
        status = "superseded"
    return ReceiptPage(line.submission_id, department, line.period, line.original_name, status,
                       str(receipt.get("summary_zh") or ""), line.received_zh, shown, folded, bool(roots),
                       bool(receipt.get("correction_workbook")), receipt.get("supersedes"), counts)


def read_receipt(settings: Settings, submission_id: str) -> dict[str, Any] | None:
    """The receipt JSON of a processed submission (the id is checked by the caller), or None."""
    path = settings.receipts_dir / f"{submission_id}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUBMISSION_ID = re.compile(r"^[0-9a-f]{16}$")


def owned_submission(engine: Engine | None, department: str, submission_id: str) -> dict[str, Any] | None:
    """The ledger row of ``submission_id`` when it is ``department``'s; None for another department's
    and for an unknown id alike (an id never reveals that it exists)."""
    if engine is None or not SUBMISSION_ID.match(submission_id):
        return None
    row = ledger_row(engine, submission_id)
    return row if row is not None and row["department"] == department else None


def waiting_submission(settings: Settings, department: str, submission_id: str) -> SubmissionLine | None:
    """A file of this department still waiting in the landing area (not processed yet)."""
    if not SUBMISSION_ID.match(submission_id):
        return None
    path = find_landed(settings.landing_dir, department, submission_id)
    if path is None:
        return None
    meta = read_sidecar(path) or {}
    received = datetime.fromisoformat(meta["received_at"]) if "received_at" in meta else \
        datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return SubmissionLine(submission_id, path.parent.name, str(meta.get("original_name", path.name)), received,
                          "received")


def line_of(row: dict[str, Any]) -> SubmissionLine:
    received = row["received_at"]
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return SubmissionLine(str(row["submission_id"]), str(row["period"]), str(row["original_name"]), received,
                          str(row["status"]))


def correction_workbook_path(settings: Settings, submission_id: str) -> Path | None:
    path = settings.receipts_dir / f"{submission_id}.correction.xlsx"
    return path if path.exists() else None


def attachment(file_name: str) -> dict[str, str]:
    """Content-Disposition for a download named ``file_name`` (Chinese kept through RFC 5987, an ASCII fallback)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", file_name).strip("_") or "download"
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name)}"}


def correction_download_name(original_name: str) -> str:
    """``教育月报.xls`` → ``教育月报_更正.xlsx``: the clerk's own name, so they know which file it is."""
    stem = Path(original_name).stem or "报表"
    return f"{stem}_更正.xlsx"
