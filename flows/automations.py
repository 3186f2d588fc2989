"""Prefect automations the ops team relies on, created idempotently by ``duikou automations``
(and by ``duikou serve``).

| automation | fires on | sends |
|---|---|---|
| ``duikou: flow run failed`` | a duikou flow run entering Failed or Crashed | the run's name and message |
| ``duikou: returns missing`` | ``duikou.returns.missing`` (the nightly run) | the return and its due date |
| ``duikou: restatement needed`` | ``duikou.release.restatement_needed`` | the release and its draft |
| ``duikou: submission quarantined`` | ``duikou.submission.quarantined`` (ingest, nightly) | file, why, run link |
| ``duikou: daily refusals`` | ``duikou.submissions.refused`` (the nightly, when any) | every file refused in 24 h |

The failed-run alert's link is the server's ``{{ flow_run|ui_url }}``: the Prefect *server* needs
``PREFECT_UI_URL`` or the link reads ``None`` (``duikou serve`` warns once when it is unset). The
quarantine notice carries the link its run computed (``run_url`` in the event's payload).

All send through one notification block chosen by configuration (``DUIKOU_NOTIFY_BLOCK``,
``<block type slug>/<block name>``, default ``custom-webhook/duikou-ops``): any Prefect
notification block works (Slack, email, MS Teams, a custom webhook). ``duikou automations
--webhook-url URL`` saves a custom-webhook block under that name for the common case.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast
from uuid import UUID

from prefect.automations import AutomationCore
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from flows.events import RESTATEMENT_NEEDED, RETURNS_MISSING, SUBMISSION_QUARANTINED, SUBMISSIONS_REFUSED

FAILED_RUNS = "duikou: flow run failed"
MISSING_RETURNS = "duikou: returns missing"
RESTATEMENT = "duikou: restatement needed"
QUARANTINE_NOTICE = "duikou: submission quarantined"
REFUSALS_DIGEST = "duikou: daily refusals"
DUIKOU_FLOWS = ["ingest-submission", "nightly", "refresh-reports"]


class NotificationBlockMissing(LookupError):
    """The configured notification block does not exist on the Prefect server."""


def save_webhook_block(slug: str, url: str) -> UUID:
    """Save (or overwrite) a custom-webhook notification block under ``slug``'s name."""
    block_type, _, name = slug.partition("/")
    if block_type != "custom-webhook" or not name:
        raise ValueError(f"--webhook-url needs DUIKOU_NOTIFY_BLOCK of the form custom-webhook/<name>, not {slug!r}")
    block = CustomWebhookNotificationBlock(
        name="duikou ops", url=url, method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}", "source": "{{name}}"}, headers=None, cookies=None,
    )
    return cast(UUID, block.save(name, overwrite=True))


def notification_block_id(slug: str) -> UUID:
    try:
        block = cast(Block, Block.load(slug))
    except ValueError as exc:
        raise NotificationBlockMissing(
            f"notification block {slug!r} not found on the Prefect server: create it in the UI (Blocks) or run "
            f"`duikou automations --webhook-url URL`") from exc
    block_id = block._block_document_id
    if block_id is None:
        raise NotificationBlockMissing(f"notification block {slug!r} has no id")
    return block_id


def desired_automations(block_id: UUID) -> list[AutomationCore]:
    failed = AutomationCore(
        name=FAILED_RUNS,
        description="A duikou flow run failed or crashed: look at its logs in the UI (docs/operations.md).",
        enabled=True,
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": DUIKOU_FLOWS},
            posture=Posture.Reactive, threshold=1, within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="duikou: {{ flow_run.name }} {{ flow_run.state.name }}",
            body=("duikou flow run {{ flow_run.name }} ({{ flow.name }}) ended {{ flow_run.state.name }}: "
                  "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}"),
        )],
    )
    missing = AutomationCore(
        name=MISSING_RETURNS,
        description="A return is past its deadline with nothing received (raised by the nightly run).",
        enabled=True,
        trigger=EventTrigger(
            expect={RETURNS_MISSING},
            match={"prefect.resource.id": "duikou.returns.*"},
            posture=Posture.Reactive, threshold=1, within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="duikou: {{ event.payload.title_zh }} 逾期未报 {{ event.payload.count }} returns missing",
            body=("{{ event.payload.department }} ({{ event.payload.title_zh }}): {{ event.payload.count }} "
                  "return(s) past their deadline with nothing received, latest {{ event.payload.latest_period }}, "
                  "oldest due {{ event.payload.oldest_due_date }}. Periods: {{ event.payload.periods|join(', ') }}"),
        )],
    )
    restatement = AutomationCore(
        name=RESTATEMENT,
        description="A correction moved figures of a published release; its next version waits for sign-off.",
        enabled=True,
        trigger=EventTrigger(
            expect={RESTATEMENT_NEEDED},
            match={"prefect.resource.id": "duikou.release.*"},
            posture=Posture.Reactive, threshold=1, within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="duikou: {{ event.payload.published_id }} 需要更正 restatement needed",
            body=("A correction moved {{ event.payload.changed_figures }} published figure(s) of "
                  "{{ event.payload.published_id }}; draft {{ event.payload.draft_id }} carries the 更正说明 and "
                  "waits for sign-off (duikou release show {{ event.payload.draft_id }})."),
        )],
    )
    quarantined = AutomationCore(
        name=QUARANTINE_NOTICE,
        description="A return was quarantined: an operator releases or rejects it (docs/operations.md).",
        enabled=True,
        trigger=EventTrigger(
            expect={SUBMISSION_QUARANTINED},
            match={"prefect.resource.id": "duikou.submission.*"},
            posture=Posture.Reactive, threshold=1, within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject=("duikou: 待核 {{ event.payload.department }} {{ event.payload.period }} "
                     "{{ event.payload.original_name }} quarantined"),
            body=("{{ event.payload.department }} {{ event.payload.period }} 《{{ event.payload.original_name }}》"
                  " 已暂存待核 (quarantined): {{ event.payload.reason }}\n"
                  "运行 run: {{ event.payload.run_url }}\n"
                  "回执 receipt: {{ event.payload.receipt_url }}\n"
                  "处理 decide: duikou quarantine release|reject {{ event.payload.submission_id }} --reason …"),
        )],
    )
    digest = AutomationCore(
        name=REFUSALS_DIGEST,
        description="Once a night: every return rejected or quarantined in the last 24 hours.",
        enabled=True,
        trigger=EventTrigger(
            expect={SUBMISSIONS_REFUSED},
            match={"prefect.resource.id": "duikou.submissions"},
            posture=Posture.Reactive, threshold=1, within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject=("duikou: 24小时内退回 {{ event.payload.rejected }} 份、待核 {{ event.payload.quarantined }} 份 "
                     "(refused in 24 h)"),
            body="{{ event.payload.text }}",
        )],
    )
    return [failed, missing, restatement, quarantined, digest]


def ensure_automations(block_id: UUID) -> list[str]:
    """Create or update the automations by name (one of each; extra copies removed)."""
    done: list[str] = []
    with get_client(sync_client=True) as client:
        for automation in desired_automations(block_id):
            existing = client.read_automations_by_name(automation.name)
            if existing:
                client.update_automation(existing[0].id, automation)
                for extra in existing[1:]:
                    client.delete_automation(extra.id)
                done.append(f"{automation.name} (updated)")
            else:
                client.create_automation(automation)
                done.append(f"{automation.name} (created)")
    return done
