"""``fact_indicator_value``'s foreign keys (``schema.FACT_REFERENCES``) hold on both backends.

SQLite enforces them as declared; on PostgreSQL they are statement-level triggers (a real
foreign key is checked row by row there, too slow for COPY). Either way the same things are
refused: a fact pointing at a missing submission, township or (department, indicator); deleting
or re-keying a parent row that facts reference. Refusals are ``IntegrityError``s (on PostgreSQL
naming the constraint, as a real foreign key would). A warehouse whose triggers are missing is
drift, reported by name.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, insert, inspect, text, update
from sqlalchemy.exc import IntegrityError

from warehouse import schema
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.migrate import SchemaDriftError, existing_triggers, schema_differences, verify_schema

ZHANGGU = "513323100"
BAWANG = "513323205"
DONGGU = "513323206"  # no fact of the fixture
SHUIZI = "513323207"  # no fact of the fixture
NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])


def record(content: str) -> SubmissionRecord:
    digest = hashlib.sha256(content.encode()).hexdigest()
    return SubmissionRecord(
        submission_id=submission_key("tourism", digest), sha256=digest, department="tourism", period="2016-07",
        original_name=f"{content}.xlsx", received_at=datetime(2016, 8, 1, tzinfo=UTC), status="loaded",
        rows_read=2, rows_loaded=2, rows_rejected=0, archive_path=None, receipt_path=None,
    )


def load(engine: Engine, content: str) -> str:
    facts = pd.DataFrame(
        [
            {"indicator": "tourism_revenue_yuan", "township_code": t, "value": 1.0, "flagged": False, "source_row": 5}
            for t in (ZHANGGU, BAWANG)
        ]
    )
    return record_submission(engine, record(content), facts, NO_TOTALS, [], []).submission_id


def fact_row(sid: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "submission_id": sid, "indicator": "tourism_revenue_yuan", "township_code": DONGGU,
        "department": "tourism", "period": "2016-07", "year": 2016, "month": 7, "value": 2.0,
        "flagged": False, "source_row": 9,
    }
    return {**row, **overrides}


def names_the(reference: str, error: IntegrityError, engine: Engine) -> bool:
    """PostgreSQL's trigger names the constraint; SQLite says only that a foreign key failed."""
    if engine.dialect.name == "sqlite":
        return "FOREIGN KEY constraint failed" in str(error)
    return reference in str(error) and "fact_indicator_value" in str(error)


def test_each_backend_enforces_the_references_its_way(warehouse_engine: Engine) -> None:
    declared = {t.name for t in schema.fact_reference_triggers(warehouse_engine.dialect.name)}
    with warehouse_engine.connect() as conn:
        assert declared <= existing_triggers(conn)
        assert schema_differences(conn) == []
        keys = {fk["name"] for fk in inspect(conn).get_foreign_keys("fact_indicator_value")}
    if warehouse_engine.dialect.name == "postgresql":
        assert len(declared) == 5 and not keys & schema.TRIGGER_ENFORCED_ON_POSTGRESQL
    else:
        assert declared == set() and len(schema.FACT_REFERENCES) == 3


@pytest.mark.parametrize(
    ("overrides", "reference"),
    [
        ({"submission_id": "0000000000000000"}, "fk_fact_indicator_value_submission_id_submission"),
        ({"township_code": "513323999"}, "fk_fact_indicator_value_township_code_ref_township"),
        ({"indicator": "not_declared"}, "fk_fact_indicator_value_department_ref_indicator"),
        ({"department": "health"}, "fk_fact_indicator_value_department_ref_indicator"),
    ],
)
def test_a_fact_without_its_parent_is_refused(
    warehouse_engine: Engine, overrides: dict[str, object], reference: str
) -> None:
    sid = load(warehouse_engine, "first")
    with pytest.raises(IntegrityError) as refused, warehouse_engine.begin() as conn:
        conn.execute(insert(schema.fact_indicator_value), [fact_row(sid, township_code=SHUIZI, source_row=1)])
        conn.execute(insert(schema.fact_indicator_value), [fact_row(sid, **overrides)])
    assert names_the(reference, refused.value, warehouse_engine)
    with warehouse_engine.connect() as conn:  # the whole transaction rolled back, the good row too
        count = conn.execute(text("SELECT COUNT(*) FROM fact_indicator_value")).scalar_one()
    assert count == 2


def test_an_update_to_a_missing_parent_is_refused(warehouse_engine: Engine) -> None:
    sid = load(warehouse_engine, "first")
    fact = schema.fact_indicator_value
    with pytest.raises(IntegrityError) as refused, warehouse_engine.begin() as conn:
        conn.execute(update(fact).where(fact.c.township_code == ZHANGGU).values(township_code="513323999"))
    assert names_the("fk_fact_indicator_value_township_code_ref_township", refused.value, warehouse_engine)
    with warehouse_engine.begin() as conn:  # updates that keep the references are fine
        changed = conn.execute(update(fact).where(fact.c.submission_id == sid).values(flagged=True)).rowcount
    assert changed == 2


@pytest.mark.parametrize(
    ("statement", "reference"),
    [
        (delete(schema.ref_township).where(schema.ref_township.c.township_code == ZHANGGU), "township_code"),
        (
            update(schema.ref_township).where(schema.ref_township.c.township_code == ZHANGGU)
            .values(township_code="513323998"),
            "township_code",
        ),
        (
            delete(schema.ref_indicator).where(schema.ref_indicator.c.indicator == "tourism_revenue_yuan"),
            "department_ref_indicator",
        ),
    ],
)
def test_a_referenced_parent_cannot_be_deleted_or_rekeyed(
    warehouse_engine: Engine, statement: object, reference: str
) -> None:
    load(warehouse_engine, "first")
    with pytest.raises(IntegrityError) as refused, warehouse_engine.begin() as conn:
        # the township's other dependants go first, so only the facts can stand in the way
        conn.execute(delete(schema.ref_township_alias).where(schema.ref_township_alias.c.township_code == ZHANGGU))
        conn.execute(delete(schema.ref_pairing).where(schema.ref_pairing.c.township_code == ZHANGGU))
        conn.execute(statement)  # type: ignore[call-overload]
    assert names_the(reference, refused.value, warehouse_engine)


def test_a_referenced_submission_cannot_be_deleted_but_an_unreferenced_parent_can(warehouse_engine: Engine) -> None:
    sid = load(warehouse_engine, "first")
    sub = schema.submission
    with pytest.raises(IntegrityError), warehouse_engine.begin() as conn:
        conn.execute(delete(sub).where(sub.c.submission_id == sid))
    with warehouse_engine.begin() as conn:  # non-key updates of a parent pass the guard
        conn.execute(update(sub).where(sub.c.submission_id == sid).values(original_name="renamed.xlsx"))
        conn.execute(
            update(schema.ref_township).where(schema.ref_township.c.township_code == ZHANGGU).values(note="checked")
        )
        # a township no fact references may go
        gone = conn.execute(
            delete(schema.ref_township_alias).where(schema.ref_township_alias.c.township_code == "513323213")
        ).rowcount
        gone += conn.execute(
            delete(schema.ref_pairing).where(schema.ref_pairing.c.township_code == "513323213")
        ).rowcount
        deleted = conn.execute(
            delete(schema.ref_township).where(schema.ref_township.c.township_code == "513323213")
        ).rowcount
    assert deleted == 1


@pytest.mark.postgres
def test_a_missing_trigger_is_drift(postgres_engine: Engine) -> None:
    warehouse_engine = postgres_engine
    trigger = schema.fact_reference_triggers("postgresql")[0]
    with warehouse_engine.begin() as conn:
        conn.exec_driver_sql(trigger.drop[0])
    with pytest.raises(SchemaDriftError) as refused, warehouse_engine.connect() as conn:
        verify_schema(conn)
    assert f"trigger {trigger.name} on fact_indicator_value" in str(refused.value)
