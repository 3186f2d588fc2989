"""Notices to a department's own channel (flows/department_notices.py) against a local webhook receiver:
a due-day reminder and a refusal notice arrive through the department's Prefect notification block,
in Chinese, with the portal's link; a department without a block gets nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from sqlalchemy import Engine

from duikou_settings import Settings
from expectations.declaration import load_declarations
from flows.department_notices import notify_departments_task, notify_outcome
from tasks.portal.reminders import due_reminders, parse_days
from tasks.submission.result import SubmissionResult
from tests.helpers.ops_processes import WebhookReceiver, wait_for

PUBLIC = "http://intake.danba.test"
PORTAL = f"{PUBLIC}/portal"


@pytest.fixture
def receiver(prefect_harness: None) -> Iterator[tuple[WebhookReceiver, str]]:
    hook = WebhookReceiver()
    url = hook.start()
    CustomWebhookNotificationBlock(name="education chat", url=url, method="POST",
                                   json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(
        "edu-chat", overwrite=True)
    yield hook, "custom-webhook/edu-chat"
    hook.stop()


def test_reminders_fall_three_and_one_day_before_the_due_day_unless_the_return_is_in() -> None:
    declarations = load_declarations()
    days = parse_days("3,1")
    on_7th = due_reminders(declarations, {"health": {"2017-05"}}, date(2017, 6, 7), days, PORTAL)
    assert {(n.department, n.kind) for n in on_7th} == {("education", "due"), ("labour", "due"), ("tourism", "due")}
    education = next(n for n in on_7th if n.department == "education")
    assert "2017年5月教育扶贫工作进展月报表" in education.body and "还有3天（6月10日）" in education.body
    assert "宽限至6月13日" in education.body and PORTAL in education.body
    assert due_reminders(declarations, {}, date(2017, 6, 8), days, PORTAL) == []  # 2 days before: not asked for
    assert {n.department for n in due_reminders(declarations, {}, date(2017, 6, 9), days, PORTAL)} >= {"education"}
    with pytest.raises(ValueError, match="DUIKOU_REMIND_DAYS_BEFORE"):
        parse_days("3,one")


def _refused() -> SubmissionResult:
    issues = [{"code": "TOWNSHIP_UNKNOWN", "severity": "critical",
               "message": "“聂嘎乡”不是本报告期有效的丹巴县乡镇名称",
               "row": 9, "column": "A列 乡(镇)"}]
    return SubmissionResult("0123456789abcdef", "education", "2017-05", "教育扶贫5月.xlsx", "rejected",
                            {"status": "rejected", "issues": issues}, None)


def test_a_due_reminder_and_a_refusal_arrive_at_the_departments_webhook(
        receiver: tuple[WebhookReceiver, str], sqlite_engine: Engine, tmp_path: Path) -> None:
    hook, slug = receiver
    settings = Settings(data_dir=tmp_path / "data", public_url=PUBLIC, department_notify_blocks=f"education={slug}")
    sent = notify_departments_task(sqlite_engine, settings, [_refused()], today=date(2017, 6, 9))
    assert [(s["department"], s["kind"], s["sent"]) for s in sent] == [
        ("education", "due", "yes"), ("education", "outcome", "yes")]  # labour, tourism: no block, no notice
    bodies: list[dict[str, Any]] = wait_for("two notices at the webhook", lambda: hook.received[:2]
                                            if len(hook.received) >= 2 else None, timeout=30)
    due, refused = bodies
    assert due["subject"] == "【报送提醒】2017年5月教育扶贫工作进展月报表1天后到期"
    assert "县教育局" in due["body"] and f"{PORTAL}" in due["body"]
    assert refused["subject"] == "【报送结果】2017年5月教育扶贫工作进展月报表已退回"
    assert "教育扶贫5月.xlsx" in refused["body"] and "聂嘎乡" in refused["body"]
    assert f"{PORTAL}/submissions/0123456789abcdef" in refused["body"]


def test_a_department_without_a_block_gets_nothing_and_a_dead_channel_fails_nothing(
        receiver: tuple[WebhookReceiver, str], tmp_path: Path) -> None:
    hook, _ = receiver
    quiet = Settings(data_dir=tmp_path / "data", public_url=PUBLIC)
    assert notify_outcome(_refused(), quiet) == []
    broken = Settings(data_dir=tmp_path / "data", public_url=PUBLIC,
                      department_notify_blocks="education=custom-webhook/no-such-block")
    outcome = notify_outcome(_refused(), broken)
    assert [(o["sent"], o["kind"]) for o in outcome] == [("no", "outcome")] and "no-such-block" in outcome[0]["reason"]
    assert hook.received == []
