"""Open the configured warehouse once per process, creating or upgrading it on first use.

``open_warehouse`` retries connecting (``warehouse.engine.connect_with_retries``: 3 retries after
1, 2, 4 s); a warehouse that never answers raises ``WarehouseUnreachable`` (``duikou`` exits 3
with one line). ``existing_warehouse`` does not wait: the intake server asks it inside a request.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, inspect

from duikou_settings import Settings
from warehouse.bootstrap import ensure_warehouse
from warehouse.engine import connect_with_retries, make_engine


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    engine = make_engine(url)
    connect_with_retries(engine)
    ensure_warehouse(engine)
    return engine


def open_warehouse(settings: Settings) -> Engine:
    """The warehouse engine, with schema, views and reference data in place."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    return _engine_for(settings.resolved_warehouse_url)


def existing_warehouse(settings: Settings) -> Engine | None:
    """The warehouse if it already exists — for dry runs, which must not create anything."""
    url = settings.resolved_warehouse_url
    if url.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(url.removeprefix("sqlite:///")).exists():
            return None
    engine = make_engine(url)
    return engine if inspect(engine).has_table("submission") else None


def clear_cache() -> None:
    _engine_for.cache_clear()
