"""Every table and view of the warehouse, declared once (SQLAlchemy Core).

Layers: ``ref_*`` reference data, ``submission`` (the ledger) with its ``submission_issue`` /
``dq_result`` detail and its ``submission_decision`` audit trail, ``fact_*`` facts in long form,
``mart_*`` derived tables, ``v_*`` analyst views. Each table's docstring-like ``comment`` states
its grain. Chinese text is data, never an identifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

REFRESHED_AT = "when the mart was last recomputed (timestamptz)"
SUBMISSION_STATUSES = ("loaded", "superseded", "rejected", "quarantined", "duplicate")
#: Chinese labels beside the codes: the views and marts carry both (one source for the report too)
SUBMISSION_STATUS_ZH = {
    "loaded": "已入库",
    "superseded": "已被更正替代",
    "rejected": "已拒收",
    "quarantined": "已隔离待查",
    "duplicate": "重复报送",
}
COMPLETENESS_STATUS_ZH = {
    "on_time": "按时",
    "late": "逾期",
    "missing": "缺报",
    "quarantined": "隔离待查",
    "rejected": "拒收",
    "pending": "未到期",
}
SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}

# ---------------------------------------------------------------- reference data
ref_department = Table(
    "ref_department",
    metadata,
    Column("department", String(32), primary_key=True, comment="department id, e.g. labour"),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    comment="one row per reporting department",
)

ref_unit = Table(
    "ref_unit",
    metadata,
    Column("unit", String(16), primary_key=True, comment="unit as written on forms, e.g. 万元"),
    Column("base_unit", String(16), nullable=False, comment="unit facts are stored in, e.g. 元"),
    Column("factor", Float, nullable=False, comment="value_in_base = value_on_form × factor"),
    Column("quantity_zh", Text, nullable=False),
    Column("note", Text),
    CheckConstraint("factor > 0", name="factor_positive"),
    comment="one row per unit; 人 and 人次 never convert into each other",
)

ref_township = Table(
    "ref_township",
    metadata,
    Column("township_code", String(12), primary_key=True,
           comment="9-digit NBS code of a unit as of 2016–2017; 513323Rnn for a unit of the 2019 reform "
           "(our key, not an NBS code)"),
    Column("name_zh", Text, nullable=False, comment="official name during the validity interval"),
    Column("township_type", String(8), nullable=False, comment="镇 or 乡"),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, comment="last day of validity; null while the unit exists"),
    Column("note", Text),
    Column("source", String(16), nullable=False, comment="NBS / ART / K / assumed"),
    comment="one row per township with its own boundaries and validity interval: the 15 units of 2016–2019 "
    "and the 12 from 2020 (a unit whose boundaries did not change is one row across the reform)",
)

ref_township_alias = Table(
    "ref_township_alias",
    metadata,
    Column("alias", Text, primary_key=True, comment="a name as it may appear on a form"),
    Column("valid_from", Date, primary_key=True),
    Column("valid_to", Date, nullable=False),
    Column("township_code", String(12), ForeignKey("ref_township.township_code"), nullable=False),
    Column("alias_kind", String(16), nullable=False, comment="official / short / former"),
    Column("source", String(16), nullable=False),
    Column("note", Text),
    comment="one row per (name, validity interval): 巴底乡 is right for 2011, wrong for 2017",
)

ref_township_crosswalk = Table(
    "ref_township_crosswalk",
    metadata,
    Column("predecessor_code", String(12), ForeignKey("ref_township.township_code"), primary_key=True),
    Column("successor_code", String(12), ForeignKey("ref_township.township_code"), primary_key=True),
    Column("effective_date", Date, nullable=False, comment="first day the successor's boundaries apply"),
    Column("weight", Float, nullable=False,
           comment="share of the predecessor that went to the successor (of its population, or another basis)"),
    Column("basis", String(16), nullable=False, comment="what the weight measures: population / whole_unit / area"),
    Column("source", String(16), nullable=False, comment="NBS / K / assumed"),
    Column("verified", Boolean, nullable=False),
    Column("note", Text),
    CheckConstraint("weight > 0 AND weight <= 1", name="weight_share"),
    comment="one row per predecessor → successor of a boundary change (the 2019 reform): re-aggregates "
    "earlier periods onto current boundaries; data a county can correct, never a rewrite of history",
)

ref_helper_unit = Table(
    "ref_helper_unit",
    metadata,
    Column("helper_unit_id", String(16), primary_key=True),
    Column("stat_code", String(12), comment="NBS code; none for 龙潭总部新城管委会"),
    Column("name_zh", Text, nullable=False),
    Column("unit_type", String(8), nullable=False),
    Column("source", String(16), nullable=False),
    comment="one row per Chenghua helper unit (街道 / 管委会)",
)

ref_pairing = Table(
    "ref_pairing",
    metadata,
    Column("township_code", String(12), ForeignKey("ref_township.township_code"), primary_key=True),
    Column("helper_unit_id", String(16), ForeignKey("ref_helper_unit.helper_unit_id"), nullable=False),
    Column("valid_from", Date, nullable=False, comment="first day of the pairing"),
    Column("valid_to", Date, comment="last day of the pairing; null while it lasts"),
    Column("source", String(16), nullable=False, comment="ART = stated in the article; assumed otherwise"),
    Column("verified", Boolean, nullable=False),
    Column("note", Text),
    comment="one row per township: its paired Chenghua unit, dated; only ART rows are verified "
    "(a pairing carried to a unit of the 2019 reform is assumed)",
)

ref_indicator = Table(
    "ref_indicator",
    metadata,
    Column("department", String(32), ForeignKey("ref_department.department"), primary_key=True),
    Column("indicator", String(64), primary_key=True, comment="canonical snake_case name"),
    Column("label_zh", Text, nullable=False),
    Column("unit", String(16), nullable=False, comment="base unit of stored values"),
    Column("form_unit", String(16), nullable=False, comment="unit on the county form"),
    Column("value_type", String(8), nullable=False),
    Column("cumulative", Boolean, nullable=False, comment="本年累计: running total within the year"),
    Column("required", Boolean, nullable=False),
    Column("header_path", Text, nullable=False, comment="header path on the form, levels joined by /"),
    Column(
        "kind",
        String(12),
        nullable=False,
        comment="how values add up: flow (sum over periods and townships), stock (last value over time, sum "
        "over townships), cumulative (本年累计: the year's last period), rate (never summed)",
    ),
    Column("over_townships", String(16), nullable=False, comment="sum, weighted_mean (by the declared weight) or none"),
    Column("over_periods", String(8), nullable=False,
           comment="sum (a flow) or last (a stock, 本年累计: each township's latest period) or none (a rate)"),
    CheckConstraint("kind IN ('flow', 'stock', 'cumulative', 'rate')", name="kind_known"),
    comment="one row per declared indicator; derived from expectations/declarations",
)

# ---------------------------------------------------------------- ledger
submission = Table(
    "submission",
    metadata,
    Column(
        "submission_id",
        String(16),
        primary_key=True,
        comment="first 16 hex digits of sha256(department ':' sha256) (warehouse/keys.py); "
        "rows from before migration 0012: of sha256",
    ),
    Column("sha256", String(64), nullable=False, comment="of the file's bytes; unique together with department"),
    Column("department", String(32), ForeignKey("ref_department.department"), nullable=False),
    Column("period", String(7), nullable=False, comment="YYYY-MM or YYYY"),
    Column("original_name", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Column("loaded_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_loaded", Integer, nullable=False, default=0),
    Column("rows_rejected", Integer, nullable=False, default=0),
    Column("facts_loaded", Integer, nullable=False, default=0),
    Column(
        "supersedes",
        String(16),
        ForeignKey("submission.submission_id"),
        comment="submission this one replaced",
    ),
    Column(
        "superseded_by",
        String(16),
        ForeignKey("submission.submission_id"),
        comment="submission that replaced this one",
    ),
    Column("archive_path", Text, comment="where the file is kept, relative to the data dir"),
    Column("receipt_path", Text, comment="receipt JSON, relative to the data dir"),
    Column(
        "source_url",
        Text,
        comment="the object this file was fetched from when the landing area is elsewhere (DUIKOU_LANDING_URL; "
        "fsspec URL, no credentials); null for a file read where it lay",
    ),
    CheckConstraint(
        "status IN ('loaded', 'superseded', 'rejected', 'quarantined', 'duplicate')", name="status_known"
    ),
    # the same bytes from two departments are two submissions
    UniqueConstraint("department", "sha256", name="uq_submission_department_sha256"),
    comment="the ledger: one row per distinct file received from one department; "
    "status 'loaded' marks the current version",
)
Index("ix_submission_partition", submission.c.department, submission.c.period, submission.c.status)
# At most one current version per partition: the database, not only the loader, guarantees it.
Index(
    "uq_submission_current",
    submission.c.department,
    submission.c.period,
    unique=True,
    sqlite_where=submission.c.status == "loaded",
    postgresql_where=submission.c.status == "loaded",
)

submission_issue = Table(
    "submission_issue",
    metadata,
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("code", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("action", String(16)),
    Column("rule_id", String(64)),
    Column("sheet", Text),
    Column("row_number", Integer, comment="1-based row in the sheet/file"),
    Column("column_label", Text, comment="column letter and header as on the form"),
    Column("message_zh", Text, nullable=False),
    comment="one row per issue in a submission's receipt (no personal data)",
)

submission_decision = Table(
    "submission_decision",
    metadata,
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True),
    Column("seq", Integer, primary_key=True, comment="1, 2, ... per submission, in decision order"),
    Column("decision", String(8), nullable=False, comment="release (load despite the quarantine) or reject"),
    Column("decided_by", Text, nullable=False, comment="who decided: the operator's name or OS user"),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False, comment="why, in the operator's words (required)"),
    Column("resulting_status", String(16), nullable=False, comment="ledger status the decision set"),
    Column("overrode_version", String(16), nullable=True,
           comment="a forced release (--force): the later loaded version of the partition it replaced"),
    CheckConstraint("decision IN ('release', 'reject')", name="decision_known"),
    CheckConstraint(
        "(decision = 'release' AND resulting_status = 'loaded') "
        "OR (decision = 'reject' AND resulting_status = 'rejected')",
        name="resulting_status_fits",
    ),
    CheckConstraint("length(trim(decided_by)) > 0", name="decided_by_given"),
    CheckConstraint("length(trim(reason)) > 0", name="reason_given"),
    comment="one row per operator decision on a quarantined submission; append-only (the audit trail): "
    "rows are never updated or deleted, also not when the same file is received again",
)

dq_result = Table(
    "dq_result",
    metadata,
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True),
    Column("check_id", String(96), primary_key=True, comment="rule id or generated check id"),
    Column("expectation_type", String(96), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("element_count", Integer),
    Column("unexpected_count", Integer),
    Column("observed", Text, comment="compact JSON: observed value or failing township codes"),
    Column("issue_code", String(40), comment="receipt issue code a failure raises, e.g. VALUE_OUTLIER"),
    Column("action", String(16), comment="what a failure does: reject, quarantine, flag or report"),
    Column("unexpected_rows", Text, comment="JSON list of the form's row numbers that failed (no values)"),
    comment="one row per GX check evaluated on a submission (compact: no raw rows)",
)

dq_flag = Table(
    "dq_flag",
    metadata,
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True),
    Column("indicator", String(64), primary_key=True),
    Column("township_code", String(12), primary_key=True),
    Column("check_id", String(96), primary_key=True, comment="e.g. income__outlier_mzscore"),
    Column("severity", String(8), nullable=False, comment="warning (loads, flagged) or critical"),
    Column("value", Float, comment="the flagged value, in the indicator's base unit"),
    Column(
        "reference_value",
        Float,
        comment="what it was compared with: the series' median, the same month's median, a band "
        "limit, or the other department's figure",
    ),
    Column("score", Float, comment="modified z-score, ratio or difference, as the check defines"),
    Column("source_row", Integer, comment="row on the form the value came from"),
    Column("reason_zh", Text, nullable=False),
    Column(
        "accepted",
        Boolean,
        nullable=False,
        default=False,
        comment="an accepted follow-up covers this value: it loaded unflagged",
    ),
    comment="one row per value × check that a history-aware or cross-return check flagged in a "
    "submission (no personal data)",
)

# ---------------------------------------------------------------- follow-ups
FOLLOWUP_KINDS = ("value", "cross", "submission")
FOLLOWUP_STATUSES = ("open", "accepted", "dismissed", "resolved")
followup = Table(
    "followup",
    metadata,
    Column(
        "followup_id",
        String(12),
        primary_key=True,
        comment="stable id derived from the natural key (kind, department, period, township, "
        "indicator, check): the same finding keeps its id across re-runs",
    ),
    Column("kind", String(12), nullable=False, comment="value (flagged value), cross (cross-return), submission"),
    Column("department", String(32), ForeignKey("ref_department.department"), nullable=False),
    Column("period", String(7), nullable=False),
    Column("township_code", String(12), comment="null for kind submission"),
    Column("indicator", String(64), comment="null for kind submission"),
    Column("check_id", String(96), nullable=False),
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), comment="latest submission seen"),
    Column("severity", String(8), nullable=False),
    Column("value", Float, comment="the value at the latest sighting (kinds value and cross)"),
    Column("reason_zh", Text, nullable=False),
    Column("status", String(10), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), comment="when it was accepted, dismissed or resolved"),
    CheckConstraint("kind IN ('value', 'cross', 'submission')", name="kind_known"),
    CheckConstraint("status IN ('open', 'accepted', 'dismissed', 'resolved')", name="status_known"),
    comment="one row per finding the ops team works through: a flagged value, a cross-return "
    "disagreement or a quarantined submission",
)
Index("ix_followup_status", followup.c.status, followup.c.department, followup.c.period)

followup_decision = Table(
    "followup_decision",
    metadata,
    Column("followup_id", String(12), ForeignKey("followup.followup_id"), primary_key=True),
    Column("seq", Integer, primary_key=True, comment="1, 2, ... per follow-up, in decision order"),
    Column("decision", String(8), nullable=False, comment="accept, dismiss or reopen"),
    Column("decided_by", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False),
    Column("value_at_decision", Float, comment="an acceptance covers this value only"),
    CheckConstraint("decision IN ('accept', 'dismiss', 'reopen')", name="decision_known"),
    CheckConstraint("length(trim(decided_by)) > 0", name="decided_by_given"),
    CheckConstraint("length(trim(note)) > 0", name="note_given"),
    comment="one row per operator decision on a follow-up; append-only audit trail",
)

# ---------------------------------------------------------------- facts
fact_indicator_value = Table(
    "fact_indicator_value",
    metadata,
    # The three references are FOREIGN KEYs on SQLite; on PostgreSQL they are enforced by the
    # statement-level triggers of fact_reference_triggers() instead (see FACT_REFERENCES below).
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True),
    Column("indicator", String(64), primary_key=True),
    Column("township_code", String(12), ForeignKey("ref_township.township_code"), primary_key=True),
    Column("department", String(32), nullable=False),
    Column("period", String(7), nullable=False),
    Column("year", Integer, nullable=False),
    Column("month", Integer, comment="null for annual returns"),
    Column("value", Float, comment="in the indicator's base unit; null when the form left it blank"),
    Column(
        "flagged",
        Boolean,
        nullable=False,
        default=False,
        comment="a warning rule failed on this row, or an operator released it past a quarantine check",
    ),
    Column("source_row", Integer, comment="row on the form the value came from"),
    # a fact whose indicator is not declared would be invisible in v_indicator_value (inner join)
    ForeignKeyConstraint(
        ["department", "indicator"], ["ref_indicator.department", "ref_indicator.indicator"]
    ),
    comment="one row per submission × indicator × township; every version is kept",
)
Index("ix_fact_partition", fact_indicator_value.c.department, fact_indicator_value.c.period)

fact_form_total = Table(
    "fact_form_total",
    metadata,
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True),
    Column("indicator", String(64), primary_key=True),
    Column("value", Float),
    Column("label_zh", Text, nullable=False, comment="the row's label: 合计 / 总计 / 全县合计 ..."),
    comment="one row per submission × indicator: the form's own 合计 row, kept to check sums",
)

# ---------------------------------------------------------------- marts
mart_county_kpi_yearly = Table(
    "mart_county_kpi_yearly",
    metadata,
    Column("year", Integer, primary_key=True, comment="calendar year"),
    Column("kpi", String(64), primary_key=True, comment="KPI id in expectations/kpis.yaml"),
    Column("label_zh", Text, nullable=False, comment="the KPI's name in Chinese"),
    Column("value", Float, comment="unrounded, in unit; null when it cannot be computed (zero denominator)"),
    Column("unit", String(16), nullable=False, comment="unit of value (base unit: 元, 人, 人次, %, 倍)"),
    Column("department", String(32), nullable=False, comment="source department"),
    Column("coverage_used", Integer, nullable=False, comment="township-periods with data"),
    Column("coverage_expected", Integer, nullable=False, comment="township-periods expected"),
    Column("coverage", Float, nullable=False, comment="used / expected"),
    Column(
        "publishable",
        Boolean,
        nullable=False,
        default=False,
        comment="true when coverage is complete (every expected township-period used)",
    ),
    Column("definition_zh", Text, nullable=False, comment="口径"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    Column("definition_version", String(200), nullable=False, server_default="v1",
           comment="the dated definition the value was computed with (the KPI's version and each input "
           "indicator's with more than one); years with different tags do not compare"),
    comment="one row per year × KPI, computed from current loaded facts (expectations/kpis.yaml)",
)

# ---------------------------------------------------------------- follow-up explanations (issue 20)
followup_explanation = Table(
    "followup_explanation",
    metadata,
    Column("followup_id", String(12), ForeignKey("followup.followup_id"), primary_key=True),
    Column("seq", Integer, primary_key=True, comment="1, 2, ... per follow-up, in the order given"),
    Column("explained_by", Text, nullable=False, comment="login of the department's clerk who wrote it"),
    Column("department", String(32), nullable=False, comment="the department the clerk reports for"),
    Column("explained_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False,
           comment="说明: why the flagged value is what it is, in the department's words"),
    Column("value_at_explanation", Float, comment="the value the 说明 was written for"),
    CheckConstraint("length(trim(explained_by)) > 0", name="explained_by_given"),
    CheckConstraint("length(trim(note)) > 0", name="note_given"),
    comment="one row per department 说明 on a follow-up (a flagged value); append-only: a release needs a 说明 "
    "or an operator's acceptance for every flagged value it publishes",
)

# ---------------------------------------------------------------- releases (issue 20)
RELEASE_KINDS = ("monthly", "annual")
RELEASE_STATES = ("draft", "in_review", "approved")
RELEASE_ACTIONS = ("draft", "redraft", "review", "approve", "return")
release = Table(
    "release",
    metadata,
    Column("release_id", String(40), primary_key=True, comment="<kind>-<period>-v<version>, e.g. annual-2016-v1"),
    Column("kind", String(8), nullable=False, comment="monthly or annual (expectations/releases.yaml)"),
    Column("period", String(7), nullable=False, comment="YYYY (annual) or YYYY-MM (monthly)"),
    Column("version", Integer, nullable=False, comment="1, 2, ... per kind and period; a restatement is the next"),
    Column("state", String(10), nullable=False, comment="draft / in_review (some steps signed) / approved (published)"),
    Column("steps_done", Integer, nullable=False, comment="sign-off steps completed (0 for a draft)"),
    Column("prepared_by", Text, nullable=False, comment="login of the preparer (who drafted it last)"),
    Column("frozen_at", DateTime(timezone=True), nullable=False, comment="as-of time: when its values were frozen"),
    Column("incomplete", Boolean, nullable=False, comment="drafted with --allow-incomplete: returns were missing"),
    Column("values_sha256", String(64), nullable=False, comment="of the canonical values file (values.json)"),
    Column("provenance", Text, nullable=False, comment="JSON: code version and commit, declaration and KPI-definition "
           "hashes, coverage, missing returns, open follow-ups at freezing"),
    Column("supersedes", String(40), ForeignKey("release.release_id"),
           comment="the approved version this one restates"),
    Column("restatement", Text, comment="JSON: the released figures this version moves against the one it supersedes"),
    Column("approved_at", DateTime(timezone=True)),
    Column("superseded_by", String(40), ForeignKey("release.release_id"),
           comment="the approved version that restated this one (set when that one is approved)"),
    CheckConstraint("kind IN ('monthly', 'annual')", name="kind_known"),
    CheckConstraint("state IN ('draft', 'in_review', 'approved')", name="state_known"),
    CheckConstraint("version >= 1", name="version_positive"),
    UniqueConstraint("kind", "period", "version", name="uq_release_kind_period_version"),
    comment="one row per release version (a frozen candidate of a bulletin): its state in the sign-off chain and "
    "its provenance; an approved row is published and its values never change",
)

release_input = Table(
    "release_input",
    metadata,
    Column("release_id", String(40), ForeignKey("release.release_id"), primary_key=True),
    Column("submission_id", String(16), ForeignKey("submission.submission_id"), primary_key=True,
           comment="the version pinned: the ledger keeps it when a correction supersedes it"),
    Column("department", String(32), nullable=False),
    Column("period", String(7), nullable=False),
    Column("sha256", String(64), nullable=False, comment="of the file's bytes"),
    Column("original_name", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    comment="one row per release × submission it was computed from (the versions current when it was frozen)",
)

release_value = Table(
    "release_value",
    metadata,
    Column("release_id", String(40), ForeignKey("release.release_id"), primary_key=True),
    Column("value_kind", String(10), primary_key=True, comment="kpi (a county KPI) or indicator (a township value)"),
    Column("name", String(64), primary_key=True, comment="KPI or indicator id"),
    Column("period", String(7), primary_key=True, comment="the KPI's year, or the value's period"),
    Column("township_code", String(12), primary_key=True, comment="513323 (the county) for KPIs"),
    Column("department", String(32), nullable=False),
    Column("value", Float, comment="unrounded, in the base unit; null when it cannot be computed"),
    Column("unit", String(16), nullable=False),
    Column("submission_id", String(16), comment="indicator values: the version the value came from"),
    Column("flagged", Boolean, nullable=False, comment="indicator values: a warning check flagged it"),
    Column("coverage_used", Integer, comment="KPIs: township-periods with data"),
    Column("coverage_expected", Integer, comment="KPIs: township-periods expected"),
    CheckConstraint("value_kind IN ('kpi', 'indicator')", name="value_kind_known"),
    comment="one row per release × figure: the county KPIs of every year up to the period and the township "
    "values of the period behind them, as frozen (never updated)",
)

release_signoff = Table(
    "release_signoff",
    metadata,
    Column("release_id", String(40), ForeignKey("release.release_id"), primary_key=True),
    Column("seq", Integer, primary_key=True, comment="1, 2, ... per release"),
    Column("action", String(8), nullable=False, comment="draft, redraft, review, approve or return"),
    Column("step_zh", Text, nullable=False, comment="the declared step, e.g. 统计审核, 分管领导审批, 编制"),
    Column("role", String(16), nullable=False, comment="the role the account acted in"),
    Column("acted_by", Text, nullable=False, comment="account login"),
    Column("acted_by_name", Text, nullable=False, comment="account display name at the time"),
    Column("acted_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False),
    CheckConstraint("action IN ('draft', 'redraft', 'review', 'approve', 'return')", name="action_known"),
    CheckConstraint("length(trim(acted_by)) > 0", name="acted_by_given"),
    comment="one row per sign-off action on a release; append-only audit trail (who, when, note)",
)

BASES = ("as_reported", "current_boundaries")
mart_township_kpi_yearly = Table(
    "mart_township_kpi_yearly",
    metadata,
    Column("basis", String(24), primary_key=True,
           comment="as_reported: each period on the units it was reported for; current_boundaries: earlier "
           "periods re-aggregated onto today's units through ref_township_crosswalk (warehouse/boundaries.py)"),
    Column("township_code", String(12), primary_key=True,
           comment="→ ref_township (a current unit for current_boundaries)"),
    Column("year", Integer, primary_key=True, comment="calendar year"),
    Column("kpi", String(64), primary_key=True, comment="KPI id in expectations/kpis.yaml"),
    Column("value", Float, comment="in the KPI's unit; null when it cannot be computed"),
    Column("unit", String(16), nullable=False, comment="unit of value (base unit: 元, 人, 人次, %, 倍)"),
    Column("coverage_used", Integer, nullable=False, comment="township-periods with data"),
    Column("coverage_expected", Integer, nullable=False, comment="township-periods expected"),
    Column("definition_version", String(200), nullable=False, comment="as in mart_county_kpi_yearly"),
    Column("assumed", Boolean, nullable=False,
           comment="current_boundaries: the value rests on a crosswalk row that is not verified"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    CheckConstraint("basis IN ('as_reported', 'current_boundaries')", name="basis_known"),
    comment="one row per basis × township × year × KPI: the county formulas (kpis.yaml) on one township's "
    "facts, as reported and on current boundaries",
)

COMPLETENESS_STATUSES = ("on_time", "late", "missing", "quarantined", "rejected", "pending")
mart_completeness = Table(
    "mart_completeness",
    metadata,
    Column("department", String(32), primary_key=True, comment="department id (ref_department)"),
    Column("period", String(7), primary_key=True, comment="YYYY-MM or YYYY"),
    Column("due_date", Date, nullable=False, comment="from the declaration's due_day (county time)"),
    Column("deadline", Date, nullable=False, comment="due_date + grace_days: the last on-time day"),
    Column(
        "status",
        String(12),
        nullable=False,
        comment="on_time / late (a version is loaded), quarantined / rejected (received, none loaded), "
        "missing (past its deadline, nothing received), pending (not yet past its deadline)",
    ),
    Column("status_zh", Text, nullable=False,
           comment="the status in Chinese: 按时 / 逾期 / 隔离待查 / 拒收 / 缺报 / 未到期"),
    Column("expected", Integer, nullable=False, comment="1: the obligations calendar expects this return"),
    Column("received", Integer, nullable=False, comment="1: at least one file received"),
    Column("on_time", Integer, nullable=False, comment="1: first file received by the deadline"),
    Column("late", Integer, nullable=False, comment="1: first file received after the deadline"),
    Column("missing", Integer, nullable=False, comment="1: past the deadline and nothing received"),
    Column("loaded", Integer, nullable=False, comment="1: a version is loaded (current)"),
    Column("quarantined", Integer, nullable=False, comment="1: none loaded, a file waits in quarantine"),
    Column("rejected", Integer, nullable=False, comment="1: none loaded or quarantined, a file was rejected"),
    Column("files_received", Integer, nullable=False, comment="distinct files in the ledger (every status)"),
    Column("first_received_at", DateTime(timezone=True), comment="the first file's arrival (UTC)"),
    Column("current_submission_id", String(16), comment="the loaded version, if any"),
    Column("townships_expected", Integer, nullable=False, comment="townships valid in the period"),
    Column("townships_reported", Integer, nullable=False,
           comment="of those, with a value in the loaded version (a registry: with at least one person)"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    CheckConstraint(
        "status IN ('on_time', 'late', 'missing', 'quarantined', 'rejected', 'pending')", name="status_known"
    ),
    comment="one row per department × period the obligations calendar expects or the ledger has seen: "
    "derived from the ledger (submission.received_at, status) and current facts",
)

mart_completeness_township = Table(
    "mart_completeness_township",
    metadata,
    Column("department", String(32), primary_key=True, comment="department id (ref_department)"),
    Column("period", String(7), primary_key=True, comment="YYYY-MM or YYYY"),
    Column("township_code", String(12), primary_key=True, comment="township (ref_township)"),
    Column("reported", Boolean, nullable=False,
           comment="the loaded version has a value for this township (a registry: at least one person)"),
    Column("values_reported", Integer, nullable=False,
           comment="non-blank values in the loaded version (a registry: people listed)"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    comment="one row per department × period (as in mart_completeness) × township valid in the period",
)

# ---------------------------------------------------------------- person-level registries (issue 8)
# No ID number and no name is stored anywhere: person_key is HMAC-SHA256(DUIKOU_PERSON_KEY, ID).
# fact_person has no row-level foreign keys (a 2 M-row COPY would run a trigger per row, see
# fact_indicator_value): warehouse/registry.py writes the ledger row first in the same transaction
# and resolves every township before any row is written; a file with an unresolved one is rejected.
fact_person = Table(
    "fact_person",
    metadata,
    Column("submission_id", String(16), primary_key=True, comment="→ submission (written first, same transaction)"),
    Column("source_row", Integer, primary_key=True, comment="1-based row in the file the person came from"),
    Column("person_key", String(64), nullable=False,
           comment="hex HMAC-SHA256 of the normalised ID number under DUIKOU_PERSON_KEY; never the ID itself"),
    Column("township_code", String(12), nullable=False, comment="→ ref_township, resolved at the snapshot"),
    Column("village", Text),
    Column("sex", String(2), comment="the column with role sex: 男 / 女 (agrees with the ID's 17th digit)"),
    Column("birth_year", Integer, nullable=False, comment="from the ID; the full birth date is not kept"),
    Column("age_years", Integer, nullable=False, comment="completed years at the end of the snapshot period"),
    Column("ethnicity", Text),
    Column("education_level", String(16), comment="the column with role education"),
    Column("poor_household", Boolean, comment="the column with role poor_household (是否建档立卡贫困户)"),
    Column("employment_status", String(16), comment="the column with role employment"),
    Column("monthly_income_yuan", Float),
    Column("training_trades", Text, comment="the column with role trainings, as listed (、-separated)"),
    Column("training_person_times", Integer,
           comment="items listed in the trainings column: each is one 人次 of training (null: no such column)"),
    Column("certificate_level", String(16), comment="the column with role certificate; null or 无 = no certificate"),
    Column("flagged", Boolean, nullable=False, comment="a warning check (age band, income range) failed on the row"),
    Column("attributes", Text,
           comment="JSON object of the declared columns with no fact_person column of their name (null: none)"),
    comment="one row per person × registry snapshot (submission); every version is kept; no personal identifiers",
)

mart_registry_township = Table(
    "mart_registry_township",
    metadata,
    Column("department", String(32), primary_key=True, comment="registry department, e.g. labour_registry"),
    Column("period", String(7), primary_key=True, comment="snapshot month"),
    Column("township_code", String(12), primary_key=True, comment="township (ref_township)"),
    Column("submission_id", String(16), nullable=False, comment="the loaded snapshot counted"),
    Column("persons", Integer, nullable=False, comment="distinct people (人)"),
    Column("poor_persons", Integer, nullable=False, comment="people of 建档立卡 households (人)"),
    Column("persons_trained", Integer, nullable=False, comment="distinct people with any training (人)"),
    Column("training_person_times", Integer, nullable=False, comment="trainings (人次): never equal to people"),
    Column("certified_persons", Integer, nullable=False, comment="people holding any certificate (人)"),
    Column("certified_mid_senior_persons", Integer, nullable=False, comment="中级工 and above (人)"),
    Column("employed_persons", Integer, nullable=False, comment="就业状态 other than 未就业 (人)"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    comment="one row per registry × snapshot month × township: head counts from the current loaded snapshot",
)

mart_registry_county = Table(
    "mart_registry_county",
    metadata,
    Column("department", String(32), primary_key=True, comment="registry department, e.g. labour_registry"),
    Column("period", String(7), primary_key=True, comment="snapshot month"),
    Column("submission_id", String(16), nullable=False, comment="the loaded snapshot counted"),
    Column("townships", Integer, nullable=False, comment="townships with at least one person"),
    Column("persons", Integer, nullable=False, comment="distinct people (人)"),
    Column("poor_persons", Integer, nullable=False, comment="people of 建档立卡 households (人)"),
    Column("persons_trained", Integer, nullable=False, comment="distinct people trained (人)"),
    Column("training_person_times", Integer, nullable=False, comment="trainings (人次)"),
    Column("certified_persons", Integer, nullable=False, comment="people holding any certificate (人)"),
    Column("certified_mid_senior_persons", Integer, nullable=False, comment="中级工 and above (人)"),
    Column("employed_persons", Integer, nullable=False, comment="就业状态 other than 未就业 (人)"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    comment="one row per registry × snapshot month: county head counts — distinct people trained beside "
    "training person-times (人 vs 人次); people add across townships within a snapshot, never across months",
)

mart_registry_category = Table(
    "mart_registry_category",
    metadata,
    Column("department", String(32), primary_key=True, comment="registry department"),
    Column("period", String(7), primary_key=True, comment="snapshot month"),
    Column("township_code", String(12), primary_key=True, comment="township (ref_township)"),
    Column("dimension", String(24), primary_key=True,
           comment="employment_status / certificate_level / education_level / sex_age_band"),
    Column("category", String(24), primary_key=True, comment="the value, e.g. 省外就业, 中级工, 女35-44"),
    Column("persons", Integer, nullable=False, comment="distinct people in the category (人)"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    comment="one row per registry × snapshot month × township × dimension × category: people counted",
)

mart_registry_reconciliation = Table(
    "mart_registry_reconciliation",
    metadata,
    Column("department", String(32), primary_key=True, comment="registry department"),
    Column("period", String(7), primary_key=True, comment="snapshot month"),
    Column("township_code", String(12), primary_key=True, comment="township (ref_township)"),
    Column("check_id", String(64), primary_key=True, comment="reconciliation id in the registry declaration"),
    Column("registry_value", Integer, nullable=False, comment="head count from the registry"),
    Column("form_department", String(32), nullable=False, comment="department of the aggregate return compared"),
    Column("form_indicator", String(64), nullable=False, comment="indicator of that return compared"),
    Column("form_value", Float, comment="the aggregate return's current value; null when not reported"),
    Column("difference", Float, comment="registry_value − form_value"),
    Column("tolerance_relative", Float, nullable=False, comment="declared tolerance, fraction of the form value"),
    Column("within_tolerance", Boolean, comment="null when the form has no value to compare"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    comment="one row per registry × snapshot month × township × reconciliation: registry counts vs the "
    "monthly aggregate return",
)

mart_dq_scorecard = Table(
    "mart_dq_scorecard",
    metadata,
    Column("department", String(32), primary_key=True, comment="department id (ref_department)"),
    Column(
        "month",
        String(7),
        primary_key=True,
        comment="YYYY-MM reporting month: the period of a monthly return; an annual return's YYYY-12",
    ),
    Column("submissions", Integer, nullable=False, comment="files recorded for the month (every status)"),
    Column("checks_run", Integer, nullable=False, comment="dq_result rows of those files"),
    Column("checks_failed_critical", Integer, nullable=False, comment="checks of severity critical that failed"),
    Column("checks_failed_warning", Integer, nullable=False, comment="checks of severity warning that failed"),
    Column("values_flagged", Integer, nullable=False, comment="dq_flag rows not covered by an acceptance"),
    Column("followups_open", Integer, nullable=False, comment="follow-ups still open"),
    Column("followups_closed", Integer, nullable=False, comment="accepted, dismissed or resolved"),
    Column("median_resolution_hours", Float, comment="median opened → closed of the closed follow-ups"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, comment=REFRESHED_AT),
    comment="one row per department × reporting month: checks run and failed by severity, values "
    "flagged, follow-ups open and closed, resolution time (warehouse/scorecard.py)",
)

# ---------------------------------------------------------------- accounts (tasks/accounts/)
#: who may act, and what each role is called on the portal (tasks/accounts/model.py holds what each may do)
ACCOUNT_ROLES = ("clerk", "ops", "preparer", "reviewer", "approver")

account = Table(
    "account",
    metadata,
    Column("account_id", Integer, primary_key=True, autoincrement=True),
    Column("login", String(64), nullable=False, unique=True, comment="sign-in name: lower-case letters, digits, . _ -"),
    Column("display_name", Text, nullable=False, comment="the person's name as shown on pages and in audits"),
    Column(
        "department",
        String(32),
        ForeignKey("ref_department.department"),
        comment="the department a clerk acts for (the portal never reads it from a form); null for others",
    ),
    Column(
        "password_hash",
        Text,
        comment="scrypt$n$r$p$salt$hash (hex); null: signs in only by a one-time link",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True), comment="set when the account may no longer act"),
    CheckConstraint("length(trim(display_name)) > 0", name="display_name_given"),
    comment="one row per person (or system) that acts on duikou: department clerks, ops, officials",
)

account_role = Table(
    "account_role",
    metadata,
    Column("account_id", Integer, ForeignKey("account.account_id"), primary_key=True),
    Column("role", String(16), primary_key=True, comment="clerk, ops, preparer, reviewer or approver"),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("role IN ('clerk', 'ops', 'preparer', 'reviewer', 'approver')", name="role_known"),
    comment="one row per account × role it holds",
)

sign_in_link = Table(
    "sign_in_link",
    metadata,
    Column("link_sha256", String(64), primary_key=True, comment="SHA-256 of the link's secret (never the secret)"),
    Column("account_id", Integer, ForeignKey("account.account_id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), comment="set on first use: a link signs in once"),
    comment="one row per one-time sign-in link handed to a person",
)

web_session = Table(
    "web_session",
    metadata,
    Column("session_sha256", String(64), primary_key=True, comment="SHA-256 of the cookie's secret"),
    Column("account_id", Integer, ForeignKey("account.account_id"), nullable=False),
    Column("csrf_token", String(64), nullable=False, comment="the token every POST of the session must carry"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), comment="set at sign-out"),
    comment="one row per signed-in browser session",
)

sign_in_attempt = Table(
    "sign_in_attempt",
    metadata,
    Column("attempt_id", Integer, primary_key=True, autoincrement=True),
    Column("login", Text, nullable=False, comment="the name given, as typed (capped at 64 characters)"),
    Column("remote", Text, nullable=False, comment="the client address"),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("reason", Text, comment="why a failed attempt failed (unknown, password, disabled, throttled, link)"),
    comment="one row per sign-in attempt: the log failed sign-ins are counted and rate-limited from",
)
Index("ix_sign_in_attempt_login", sign_in_attempt.c.login, sign_in_attempt.c.attempted_at)
Index("ix_sign_in_attempt_remote", sign_in_attempt.c.remote, sign_in_attempt.c.attempted_at)


# ---------------------------------------------------------------- views
def _labels(column: str, labels: dict[str, str]) -> str:
    """``CASE column WHEN 'code' THEN '中文' ... END``: our own constants, never user text."""
    whens = " ".join(f"WHEN '{code}' THEN '{label}'" for code, label in labels.items())
    return f"CASE {column} {whens} END"


#: Analysts read these (the analyst role reads v_*, mart_*, ref_* only). Timestamps are timestamptz
#: (UTC text on SQLite); the analyst role's session time zone is Asia/Shanghai (warehouse.roles), so a
#: BI tool shows them in Beijing time. Township views carry township_order (official order).
VIEWS: dict[str, str] = {
    "v_township": """
        SELECT t.township_code, t.name_zh AS township_name, t.township_type,
               ROW_NUMBER() OVER (ORDER BY t.township_code) AS township_order,
               t.valid_from, t.valid_to
        FROM ref_township t
    """,
    "v_indicator_value": """
        SELECT f.department, f.indicator, i.label_zh, f.township_code, t.township_name,
               t.township_order, f.period, f.year, f.month, f.value, i.unit, i.kind, i.over_townships,
               i.over_periods, f.flagged, f.submission_id
        FROM fact_indicator_value f
        JOIN submission s ON s.submission_id = f.submission_id AND s.status = 'loaded'
        JOIN ref_indicator i ON i.department = f.department AND i.indicator = f.indicator
        JOIN v_township t ON t.township_code = f.township_code
    """,
    "v_submission": f"""
        SELECT s.submission_id, s.department, d.name_zh AS department_name, s.period, s.status,
               {_labels("s.status", SUBMISSION_STATUS_ZH)} AS status_zh,
               s.original_name, s.received_at, s.loaded_at, s.rows_read, s.rows_loaded,
               s.rows_rejected, s.supersedes, s.superseded_by, s.receipt_path, s.source_url,
               (SELECT COUNT(*) FROM submission_issue i
                 WHERE i.submission_id = s.submission_id AND i.severity = 'critical') AS critical_issues,
               (SELECT COUNT(*) FROM submission_issue i
                 WHERE i.submission_id = s.submission_id AND i.severity = 'warning') AS warning_issues
        FROM submission s JOIN ref_department d ON d.department = s.department
    """,
    # A person-level registry's messages may quote a person's value (“初中”): withheld here.
    "v_submission_issue": f"""
        SELECT s.submission_id, s.department, d.name_zh AS department_name, s.period,
               s.original_name, s.received_at, s.status,
               {_labels("s.status", SUBMISSION_STATUS_ZH)} AS status_zh,
               i.seq, i.code, i.severity, {_labels("i.severity", SEVERITY_ZH)} AS severity_zh, i.action,
               i.rule_id, i.sheet, i.row_number, i.column_label,
               CASE WHEN EXISTS (SELECT 1 FROM ref_indicator r WHERE r.department = s.department)
                    THEN i.message_zh END AS message_zh
        FROM submission_issue i
        JOIN submission s ON s.submission_id = i.submission_id
        JOIN ref_department d ON d.department = s.department
    """,
    "v_township_pairing": """
        SELECT t.township_code, t.township_name, t.township_type, t.township_order,
               h.helper_unit_id, h.name_zh AS helper_unit_name, p.source, p.verified
        FROM v_township t
        LEFT JOIN ref_pairing p ON p.township_code = t.township_code
        LEFT JOIN ref_helper_unit h ON h.helper_unit_id = p.helper_unit_id
    """,
    # One row per superseding version × (indicator, township) whose value changed against the
    # version it superseded. A missing row and a NULL value both mean "no value": a value that
    # appeared or disappeared shows NULL on that side, and difference is then NULL too.
    # UNION ALL of two LEFT JOINs, not FULL OUTER JOIN: SQLite has that only from 3.39.
    "v_restatement": """
        WITH pair AS (
            SELECT s.submission_id AS new_id, s.supersedes AS old_id, s.department, s.period,
                   s.loaded_at
            FROM submission s
            WHERE s.supersedes IS NOT NULL
        ),
        paired AS (
            SELECT p.department, p.period, n.year, n.indicator, n.township_code, p.old_id, p.new_id,
                   o.value AS old_value, n.value AS new_value, p.loaded_at
            FROM pair p
            JOIN fact_indicator_value n ON n.submission_id = p.new_id
            LEFT JOIN fact_indicator_value o ON o.submission_id = p.old_id
                 AND o.indicator = n.indicator AND o.township_code = n.township_code
            UNION ALL
            SELECT p.department, p.period, o.year, o.indicator, o.township_code, p.old_id, p.new_id,
                   o.value AS old_value, NULL AS new_value, p.loaded_at
            FROM pair p
            JOIN fact_indicator_value o ON o.submission_id = p.old_id
            LEFT JOIN fact_indicator_value n ON n.submission_id = p.new_id
                 AND n.indicator = o.indicator AND n.township_code = o.township_code
            WHERE n.submission_id IS NULL
        )
        SELECT c.department, c.period, c.year, c.indicator, i.label_zh, c.township_code,
               t.township_name, t.township_order, c.old_id AS old_submission_id,
               c.new_id AS new_submission_id, c.old_value, c.new_value,
               c.new_value - c.old_value AS difference, i.unit, c.loaded_at AS superseded_at
        FROM paired c
        JOIN ref_indicator i ON i.department = c.department AND i.indicator = c.indicator
        JOIN v_township t ON t.township_code = c.township_code
        WHERE (c.old_value IS NULL AND c.new_value IS NOT NULL)
           OR (c.old_value IS NOT NULL AND c.new_value IS NULL)
           OR c.old_value <> c.new_value
    """,
}

#: one line per view for the data dictionary (docs/warehouse.md) and COMMENT ON VIEW (PostgreSQL);
#: tests/warehouse/test_dictionary.py fails when a view of VIEWS has none
VIEW_COMMENTS: dict[str, str] = {
    "v_township": "one row per township (2016–2017 boundaries) with its official order (township_order: "
    "NBS code order, 镇 before 乡) for sorting",
    "v_indicator_value": "one row per department × indicator × township × period, current loaded version "
    "only: the values analysts query, with Chinese labels, township names, the base unit and how the "
    "indicator adds up (kind, over_townships, over_periods)",
    "v_submission": "one row per distinct file received (every status), with the department's name, the "
    "status in Chinese and the counts of critical and warning issues on its receipt",
    "v_submission_issue": "one row per issue on a submission's receipt: why a file was refused, quarantined "
    "or flagged (department, period, file, status, code, severity, row, column, message); never a "
    "person-level value (a registry's messages are withheld)",
    "v_township_pairing": "one row per township with its paired Chenghua helper unit (null when none); "
    "only source 'ART' pairings are verified",
    "v_restatement": "one row per superseding version × indicator × township whose value changed against "
    "the version it superseded (a value that appeared or disappeared shows NULL on that side)",
}

#: comments of view columns the data dictionary cannot trace to a table column (computed, or read
#: through another view); with the traced ones they become COMMENT ON COLUMN on PostgreSQL
_TOWNSHIP_NAME = "official name 2016–2017 (ref_township.name_zh)"
_TOWNSHIP_ORDER = "official order of the township (1 = 章谷镇; NBS code order, 镇 before 乡): sort by it"
VIEW_COLUMN_COMMENTS: dict[str, dict[str, str]] = {
    "v_township": {"township_order": _TOWNSHIP_ORDER},
    "v_indicator_value": {"township_name": _TOWNSHIP_NAME, "township_order": _TOWNSHIP_ORDER},
    "v_submission": {
        "status_zh": "the status in Chinese: 已入库 / 已被更正替代 / 已拒收 / 已隔离待查 / 重复报送",
        "critical_issues": "issues of severity critical on the receipt (the file was refused or quarantined)",
        "warning_issues": "issues of severity warning on the receipt (loaded, flagged)",
    },
    "v_submission_issue": {
        "status_zh": "the submission's status in Chinese",
        "severity_zh": "严重 (critical) / 警告 (warning) / 提示 (info)",
        "message_zh": "what is wrong, in Chinese, as on the receipt; null for a person-level registry "
        "(its messages may quote a person's value)",
    },
    "v_township_pairing": {"township_name": _TOWNSHIP_NAME, "township_type": "镇 or 乡",
                           "township_order": _TOWNSHIP_ORDER},
    "v_restatement": {
        "year": "calendar year of the period",
        "township_name": _TOWNSHIP_NAME,
        "township_order": _TOWNSHIP_ORDER,
        "old_submission_id": "the version superseded",
        "new_submission_id": "the version that superseded it",
        "old_value": "value in the superseded version (base unit; null: none)",
        "new_value": "value in the new version (base unit; null: none)",
        "difference": "new_value − old_value (null when either is null)",
        "superseded_at": "when the new version was loaded (timestamptz)",
    },
}


# ---------------------------------------------------------------- fact references (triggers)
@dataclass(frozen=True)
class FactReference:
    """One FOREIGN KEY of ``fact_indicator_value``, as the PostgreSQL triggers enforce it."""

    name: str  # the constraint's name (naming convention); errors carry it
    columns: tuple[str, ...]  # in fact_indicator_value
    parent: str
    parent_columns: tuple[str, ...]


#: The foreign keys of ``fact_indicator_value``, read from the table above (one declaration).
#: SQLite enforces them as declared (``PRAGMA foreign_keys=ON``, a cheap per-row index probe).
#: PostgreSQL checks a foreign key row by row through internal triggers — ~13 s of an 18 s COPY
#: of 1 000 000 facts — so there they are not created (revision 0002 drops them) and
#: ``fact_reference_triggers`` enforces them instead, per statement: inserting or updating facts
#: that reference a missing parent row, and deleting or re-keying a parent row that facts
#: reference, fail with SQLSTATE 23503 (an ``IntegrityError``) naming the constraint.
FACT_REFERENCES: tuple[FactReference, ...] = tuple(
    FactReference(
        name=str(fk.name),
        columns=tuple(c.name for c in fk.columns),
        parent=fk.referred_table.name,
        parent_columns=tuple(e.column.name for e in fk.elements),
    )
    for fk in sorted(fact_indicator_value.foreign_key_constraints, key=lambda fk: str(fk.name))
)
#: foreign keys that exist in the metadata but, on PostgreSQL, as triggers (the drift check and
#: autogenerate skip them there and look for the triggers instead)
TRIGGER_ENFORCED_ON_POSTGRESQL: frozenset[str] = frozenset(ref.name for ref in FACT_REFERENCES)


@dataclass(frozen=True)
class TriggerDDL:
    """One PostgreSQL trigger and its function, as created and dropped."""

    name: str
    table: str
    create: tuple[str, ...]  # statements, in order
    drop: tuple[str, ...]


def _fact_check(name: str, event: str) -> TriggerDDL:
    """Statement-level: one anti-join per reference over the statement's new rows (a COPY too)."""
    checks = []
    for ref in FACT_REFERENCES:
        cols = ", ".join(ref.columns)
        shown = " || '/' || ".join(f"c.{c}" for c in ref.columns)
        match = " AND ".join(f"p.{pc} = c.{cc}" for pc, cc in zip(ref.parent_columns, ref.columns, strict=True))
        checks.append(
            f"""    SELECT {shown} INTO offending
      FROM (SELECT DISTINCT {cols} FROM new_facts) c
     WHERE NOT EXISTS (SELECT 1 FROM {ref.parent} p WHERE {match}) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{ref.name}',
            MESSAGE = format('insert or update on table "fact_indicator_value" violates foreign key '
                             'constraint "{ref.name}": ({cols})=(%s) is not present in table '
                             '"{ref.parent}"', offending);
    END IF;"""
        )
    body = "\n".join(checks)
    function = f"{name}_fn"
    return TriggerDDL(
        name=name,
        table="fact_indicator_value",
        create=(
            f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE offending text;
BEGIN
{body}
    RETURN NULL;
END
$fn$""",
            f"CREATE TRIGGER {name} AFTER {event} ON fact_indicator_value "
            f"REFERENCING NEW TABLE AS new_facts FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ),
        drop=(f"DROP TRIGGER IF EXISTS {name} ON fact_indicator_value", f"DROP FUNCTION IF EXISTS {function}()"),
    )


def _parent_guard(ref: FactReference) -> TriggerDDL:
    """Row-level on the (small, rarely changed) parent: refuse to orphan facts.

    ``LOCK ... SHARE ROW EXCLUSIVE`` waits for loads in flight (they hold ROW EXCLUSIVE) and
    keeps new ones out until this transaction ends, so no fact can slip in unseen — what the
    ``FOR KEY SHARE`` row locks of a real foreign key achieve, at the cost of the (rare) parent
    change instead of every fact.
    """
    name = f"{ref.parent}_guard_facts"
    function = f"{name}_fn"
    old_match = " AND ".join(f"f.{cc} = OLD.{pc}" for pc, cc in zip(ref.parent_columns, ref.columns, strict=True))
    shown = " || '/' || ".join(f"OLD.{pc}" for pc in ref.parent_columns)
    changed = " OR ".join(f"NEW.{pc} IS DISTINCT FROM OLD.{pc}" for pc in ref.parent_columns)
    return TriggerDDL(
        name=name,
        table=ref.parent,
        create=(
            f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND NOT ({changed}) THEN
        RETURN NEW;  -- a key column was SET to the value it had
    END IF;
    LOCK TABLE fact_indicator_value IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM fact_indicator_value f WHERE {old_match}) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{ref.name}',
            MESSAGE = format('update or delete on table "{ref.parent}" violates foreign key constraint '
                             '"{ref.name}" on table "fact_indicator_value": (%s) is still referenced',
                             {shown});
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$fn$""",
            f"CREATE TRIGGER {name} BEFORE UPDATE OF {', '.join(ref.parent_columns)} OR DELETE ON {ref.parent} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        ),
        drop=(f"DROP TRIGGER IF EXISTS {name} ON {ref.parent}", f"DROP FUNCTION IF EXISTS {function}()"),
    )


def fact_reference_triggers(dialect: str) -> tuple[TriggerDDL, ...]:
    """The triggers enforcing FACT_REFERENCES on ``dialect``: PostgreSQL only (SQLite has the keys)."""
    if dialect != "postgresql":
        return ()
    return (
        _fact_check("fact_indicator_value_references_insert", "INSERT"),
        _fact_check("fact_indicator_value_references_update", "UPDATE"),
        *(_parent_guard(ref) for ref in FACT_REFERENCES),
    )
