"""The migration history builds exactly the tables the code declares (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from dashboard import db, migrations
from tests.conftest import reset_caches

FOREIGN_TABLES = {"apscheduler_jobs"}


def _drift(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, *_: (
                    not (type_ == "table" and name in FOREIGN_TABLES)
                ),
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))


def _upgrade_and_check() -> None:
    migrations.upgrade_head()
    assert migrations.is_at_head()
    assert _drift(db.get_engine()) == []
    tables = set(sa.inspect(db.get_engine()).get_table_names())
    assert {"users", "integrations", "credentials", "sync_runs", "products", "orders"} <= tables


def test_sqlite_upgrade_head_has_no_drift(hub_env: Path) -> None:
    _upgrade_and_check()


@pytest.mark.postgres
def test_postgres_upgrade_head_has_no_drift(
    pg_database_url: str, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_database_url)
    reset_caches()
    _upgrade_and_check()
