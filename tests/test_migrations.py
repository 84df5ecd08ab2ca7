"""The migration history builds exactly the tables the code declares (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from reflex.model import ModelRegistry
from sqlmodel import SQLModel

from dashboard import db, migrations
from tests.conftest import reset_caches


def _drift(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def _start_job_store(engine: sa.Engine) -> None:
    """What the scheduler does first: APScheduler makes its table unless it exists."""
    SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs").start(
        AsyncIOScheduler(), "default"
    )


def _upgrade_and_check() -> None:
    migrations.upgrade_head()
    assert migrations.is_at_head()
    engine = db.get_engine()
    assert _drift(engine) == []
    tables = set(sa.inspect(engine).get_table_names())
    assert {"users", "integrations", "credentials", "sync_runs", "products", "orders"} <= tables
    _start_job_store(engine)
    assert _drift(engine) == []
    # Reflex compares its model registry with the database at every start-up and prints
    # "Detected database schema changes" for any difference: there must be none.
    with engine.connect() as connection:
        assert (
            compare_metadata(MigrationContext.configure(connection), ModelRegistry.get_metadata())
            == []
        )


def test_a_job_store_apscheduler_made_before_its_migration_is_kept(hub_env: Path) -> None:
    command.upgrade(migrations.alembic_config(), "6a2d9c4e8f17")
    engine = db.get_engine()
    _start_job_store(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES "
                    "('sync:1', 1.5, x'00')")
        )  # fmt: skip
    migrations.upgrade_head()
    assert migrations.is_at_head() and _drift(engine) == []
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM apscheduler_jobs")).all() == [("sync:1",)]


def test_sqlite_upgrade_head_has_no_drift(hub_env: Path) -> None:
    _upgrade_and_check()


@pytest.mark.postgres
def test_postgres_upgrade_head_has_no_drift(
    pg_database_url: str, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_database_url)
    reset_caches()
    _upgrade_and_check()
