"""Alembic environment of the warehouse — run through ``warehouse.migrate``, never an alembic.ini.

The caller passes an open connection in ``config.attributes["connection"]`` and usually holds a
transaction on it: the migrations then run inside that transaction (alembic does not begin its
own), on SQLite or PostgreSQL, in whatever schema the connection's ``search_path`` names. The
target metadata is ``warehouse.schema.metadata``, the one declaration of the warehouse.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from warehouse.migrate import UPGRADE_COMMAND, migration_options

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        f"the warehouse migrations need a connection from warehouse.migrate (`{UPGRADE_COMMAND}`); "
        "offline (--sql) mode is not supported"
    )
if connection.dialect.name == "sqlite":
    # Batch mode rebuilds a table (copy, drop, rename). PRAGMA foreign_keys cannot change inside
    # a transaction; deferring the checks to COMMIT lets the parent be dropped and re-created.
    connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
context.configure(connection=connection, **migration_options(connection))
with context.begin_transaction():
    context.run_migrations()
