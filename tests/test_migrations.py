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


# --- rolling back the newest migration (docs/deploy.md, "Roll back") ------------------------


def _schema(engine: sa.Engine) -> dict[str, object]:
    """Tables with their columns (name, type, nullability), indexes, unique and foreign keys:
    what a downgrade must give back. Server defaults may differ (a column re-added by a
    downgrade needs one for the rows already there)."""
    inspector = sa.inspect(engine)
    schema: dict[str, object] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        schema[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ),
            "primary_key": sorted(inspector.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return schema


def _row_counts(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(
                sa.select(sa.func.count()).select_from(sa.table(table))
            ).scalar_one()
            for table in tables
        }


def _last_migration_rolls_back_and_forward() -> None:
    """What the upgrade runbook promises: `alembic downgrade -1` after a bad release gives
    back the previous schema exactly, keeps the data, and the release upgrades again."""
    from alembic.script import ScriptDirectory

    from dashboard.services.auth import Role, create_user
    from dashboard.services.integrations import create_integration

    config = migrations.alembic_config()
    head = ScriptDirectory.from_config(config).get_revision("head")
    assert head is not None and isinstance(head.down_revision, str), "one head, one parent"
    engine = db.get_engine()

    command.upgrade(config, head.down_revision)
    previous = _schema(engine)
    migrations.upgrade_head()
    with db.session_scope() as session:
        create_user(session=session, email="kept@example.com", role=Role.ADMIN,
                    password="kept-password-1")  # fmt: skip
        create_integration(session=session, platform="shopify", display_name="Kept store",
                           shop_domain="kept.myshopify.com", streams={"products": 15})  # fmt: skip
    kept_tables = [t for t in ("users", "integrations", "stream_configs") if t in previous]
    counts = _row_counts(engine, kept_tables)
    assert counts == {"users": 1, "integrations": 1, "stream_configs": 1}

    command.downgrade(config, "-1")
    assert migrations.current_revision() == head.down_revision
    engine.dispose()
    assert _schema(engine) == previous
    assert _row_counts(engine, kept_tables) == counts

    migrations.upgrade_head()
    assert migrations.is_at_head() and _drift(engine) == []
    assert _row_counts(engine, kept_tables) == counts


def test_sqlite_last_migration_downgrades_and_upgrades_again(hub_env: Path) -> None:
    _last_migration_rolls_back_and_forward()


@pytest.mark.postgres
def test_postgres_last_migration_downgrades_and_upgrades_again(
    pg_database_url: str, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_database_url)
    reset_caches()
    _last_migration_rolls_back_and_forward()
