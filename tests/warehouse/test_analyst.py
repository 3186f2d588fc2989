"""The analyst surface on PostgreSQL, as the read-only analyst role: every example query of
docs/warehouse.md runs (views and marts only), every view and mart and each of their columns carries
a comment, timestamps read in Beijing time, and the documented right way to add up a stock gives
the mart's figure while the documented wrong way does not.

Reuses test_roles' role fixture (roles created per test, dropped at teardown) and its poverty loader.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from expectations.issues import Issue
from tests.warehouse.test_roles import BAWANG, ZHANGGU, RoleSet, denied, load_poverty, roles  # noqa: F401
from warehouse import schema
from warehouse.dictionary import STOCK_RIGHT, STOCK_WRONG, example_queries
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.marts import refresh_marts

pytestmark = pytest.mark.postgres
#: enrolled pupils at the end of each month: a stock
ENROLLED = {ZHANGGU: (800.0, 810.0, 820.0), BAWANG: (300.0, 305.0, 302.0)}


def _record(engine: Engine, name: str, department: str, period: str, status: str, facts: pd.DataFrame,
            issues: list[Issue]) -> str:  # fmt: skip
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    outcome = record_submission(
        engine,
        SubmissionRecord(
            submission_id=submission_key(department, digest), sha256=digest, department=department, period=period,
            original_name=name, received_at=datetime(2016, 12, 10, 1, 30, tzinfo=UTC), status=status,  # type: ignore[arg-type]
            rows_read=2, rows_loaded=2 if status == "loaded" else 0, rows_rejected=0, archive_path=None,
            receipt_path=None,
        ),
        facts, pd.DataFrame(columns=["indicator", "value", "label_zh"]), issues, [],
    )  # fmt: skip
    return outcome.submission_id


def _fill(engine: Engine) -> None:
    load_poverty(engine, "poverty-2016-v1", 100.0)
    load_poverty(engine, "poverty-2016-v2", 150.0)  # a correction: v_restatement has rows
    for i, month in enumerate(("2016-10", "2016-11", "2016-12")):
        facts = pd.DataFrame(
            [{"indicator": "enrolled_total_persons", "township_code": code, "value": values[i], "flagged": False,
              "source_row": 5} for code, values in ENROLLED.items()]
        )  # fmt: skip
        _record(engine, f"教育{month}.xlsx", "education", month, "loaded", facts, [])
    refused = Issue(code="RULE_FAILED", severity="critical", message="在校学生数合计不等于小学与初中之和",
                    sheet="Sheet1", row=7, column="E 在校学生数/合计", rule_id="edu_enrolled_total_is_sum",
                    action="reject")  # fmt: skip
    _record(engine, "教育2016-09.xlsx", "education", "2016-09", "rejected", pd.DataFrame(), [refused])
    refresh_marts(engine)


def test_every_documented_example_runs_as_the_analyst(roles: RoleSet) -> None:  # noqa: F811
    _fill(roles.admin)
    roles.create()
    analyst = roles.connect_as(roles.analyst)
    with analyst.connect() as conn:
        for example in example_queries():
            rows = conn.exec_driver_sql(example.sql).all()  # any refusal fails the test, naming the query
            assert isinstance(rows, list), example.question
        # the documented right way to add up a stock gives the mart's figure; the wrong way twelve-fold-ish
        right = dict(conn.exec_driver_sql(STOCK_RIGHT.sql).all())
        wrong = dict(conn.exec_driver_sql(STOCK_WRONG.sql).all())
        mart = conn.execute(text("SELECT value FROM mart_county_kpi_yearly WHERE kpi = 'enrolled_students_persons' "
                                 "AND year = 2016")).scalar_one()  # fmt: skip
        assert right[2016] == mart == 820 + 302
        assert wrong[2016] == sum(sum(v) for v in ENROLLED.values()) != mart
        kinds = dict(conn.execute(text("SELECT DISTINCT indicator, kind || '/' || over_periods FROM v_indicator_value"))
                     .all())  # fmt: skip
        assert kinds["enrolled_total_persons"] == "stock/last"
        assert kinds["net_income_per_capita_yuan"] == "rate/none"
        # why a return was refused, without reading the ledger's tables
        issue = conn.execute(text("SELECT department_name, period, original_name, status_zh, code, severity_zh, "
                                  "row_number, column_label, message_zh FROM v_submission_issue")).one()  # fmt: skip
        assert tuple(issue)[3:] == ("已拒收", "RULE_FAILED", "严重", 7, "E 在校学生数/合计",
                                    "在校学生数合计不等于小学与初中之和")
        # timestamptz, read in Beijing time by the analyst's session
        received = conn.execute(text("SELECT received_at::text FROM v_submission_issue")).scalar_one()
        assert received == "2016-12-10 09:30:00+08"
        order = conn.execute(text("SELECT township_name FROM v_township ORDER BY township_order LIMIT 2")).scalars()
        assert list(order) == ["章谷镇", "巴底镇"]
        status = conn.execute(text("SELECT DISTINCT status_zh FROM mart_completeness WHERE status = 'on_time'"))
        assert set(status.scalars()) <= {"按时"}
    denied(analyst, "SELECT * FROM submission_issue")
    denied(analyst, "SELECT * FROM fact_indicator_value")


def test_every_view_and_mart_and_column_carries_a_comment(roles: RoleSet) -> None:  # noqa: F811
    roles.create()
    analyst = roles.connect_as(roles.analyst)
    marts = [t for t in schema.metadata.tables if t.startswith("mart_")]
    with analyst.connect() as conn:
        for relation in [*schema.VIEWS, *marts]:
            comment = conn.execute(text("SELECT obj_description(to_regclass(:r), 'pg_class')"), {"r": relation})
            assert comment.scalar_one(), f"{relation} has no COMMENT"
            columns = conn.execute(
                text("SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
                     "WHERE a.attrelid = to_regclass(:r) AND a.attnum > 0 AND NOT a.attisdropped"), {"r": relation}
            ).all()  # fmt: skip
            assert columns and all(c for _, c in columns), (relation, [n for n, c in columns if not c])
        v_comment = conn.execute(text("SELECT obj_description(to_regclass('v_indicator_value'), 'pg_class')"))
        assert v_comment.scalar_one() == schema.VIEW_COMMENTS["v_indicator_value"]
