"""Reading the ledger (``submission``) by id: the one reader the warehouse, the flows and the tasks share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from warehouse import schema


def ledger_row(engine: Engine, submission_id: str) -> dict[str, Any] | None:
    """The ledger row with this id, every column, as a dict, or None."""
    sub = schema.submission
    with engine.connect() as conn:
        row = conn.execute(select(sub).where(sub.c.submission_id == submission_id)).mappings().first()
    return dict(row) if row is not None else None
