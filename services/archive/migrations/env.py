"""Alembic environment: migrations run on the connection the archive hands over (store.migrate), or,
from the `alembic` command line, on `sqlalchemy.url`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from services.archive.geometry import declared
from services.archive.tables import metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, include_object=declared)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True, include_object=declared)
        with context.begin_transaction():
            context.run_migrations()


run()
