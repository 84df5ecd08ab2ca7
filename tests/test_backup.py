"""`hub backup` and `hub restore`, proven the way an operator would rely on them.

The round trip runs on SQLite and on PostgreSQL: a backup taken while a Shopify sync is
writing, restored into a new empty database, verified against its manifest (row counts per
table, every credential decrypts), and then syncing resumes from the restored checkpoint and
ends with exactly the platform's records, none twice.
"""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from connectors.base import StoredCredential
from connectors.shopify.client import _throttles
from dashboard import cli, migrations
from dashboard.db import session_scope
from dashboard.models import Product, StreamConfig, SyncRun
from dashboard.services import sync
from dashboard.services.backup import BackupError, create_backup, restore_backup
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.vault import generate_key_spec
from tests.conftest import PG_ADMIN_URL, reset_caches
from tests.sandbox_server import control_headers, running_sandbox, shopify_install
from tests.test_shopify_sync import engine_for, truth

SHOP = "backup-test.myshopify.com"
PRODUCTS = 1200
KEYS = generate_key_spec("prod1")


@contextmanager
def new_pg_database() -> Iterator[str]:
    """One more throw-away PostgreSQL database (the restore target)."""
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    name = f"hub_restore_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        reset_caches()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The hub's database, migrated, on a SQLite file and then on PostgreSQL."""
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", KEYS)
    if request.param == "postgres":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_database_url"))
    reset_caches()
    migrations.upgrade_head()
    return str(request.param)


@pytest.fixture
def sandbox() -> Iterator[str]:
    _throttles.clear()
    with running_sandbox(seed=7, time_scale=200) as (base, _app):
        yield base
    _throttles.clear()


def connected_shop(base: str) -> uuid.UUID:
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        json={"shop": SHOP, "products": PRODUCTS},
        headers=control_headers(base),
    ).raise_for_status()
    token = shopify_install(base, SHOP, scopes="read_products")
    with session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name="Backup Shop", shop_domain=SHOP,
            streams={"products": 15},
        )  # fmt: skip
        save_credential(
            session=session,
            integration_id=integration.id,
            credential=StoredCredential("access_token", token, ["read_products"]),
        )
        mark_connected(session=session, integration_id=integration.id)
        return integration.id


def runs_of(integration_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as s:
        query = select(SyncRun).where(SyncRun.integration_id == integration_id)
        return list(s.exec(query.order_by(col(SyncRun.created_at))).all())


def stored_products(integration_id: uuid.UUID) -> tuple[int, int]:
    """(rows, distinct external ids) of the integration's products."""
    with session_scope() as s:
        rows = s.exec(
            select(sa.func.count(), sa.func.count(sa.distinct(Product.external_id))).where(
                Product.integration_id == integration_id
            )
        ).one()
    return int(rows[0]), int(rows[1])


def product_checkpoint(integration_id: uuid.UUID) -> dict[str, object]:
    with session_scope() as s:
        config = s.exec(
            select(StreamConfig).where(StreamConfig.integration_id == integration_id)
        ).one()
        return dict(config.cursor or {})


async def test_round_trip_during_an_active_sync_then_resume_without_duplicates(
    database: str, sandbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration_id = connected_shop(sandbox)
    # Each page takes ~0.1 s: the sync is still writing when the backup runs.
    faults = f"{sandbox}/_sandbox/faults/shopify/{SHOP}"
    httpx.put(
        faults, json={"slow_rate": 1.0, "slow_seconds": 20}, headers=control_headers(sandbox)
    ).raise_for_status()
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="products")
    while not (runs := runs_of(integration_id)) or runs[0].records_read < 200:
        assert not runs or runs[0].status in ("queued", "running"), runs[0].error
        await asyncio.sleep(0.02)

    backup_dir = tmp_path / "backup"
    result = await asyncio.to_thread(create_backup, destination=backup_dir, with_keys=True)
    [run] = runs_of(integration_id)
    assert run.status == "running", "the sync ended before the backup: not a backup under load"
    httpx.put(faults, json={}, headers=control_headers(sandbox)).raise_for_status()
    await engine.wait()
    assert stored_products(integration_id) == (PRODUCTS, PRODUCTS)
    [whole_run] = runs_of(integration_id)  # products and their variants, from the start

    # What an operator reads in the manifest.
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["database"] == database.replace("postgres", "postgresql")
    assert manifest["schema_revision"] == migrations.head_revision()
    snapshot_products = manifest["tables"]["products"]
    assert 0 < snapshot_products < PRODUCTS  # mid-sync
    assert manifest["tables"]["credentials"] == 1
    assert [(k["key_id"], k["credentials"]) for k in manifest["keys"]] == [("prod1", 1)]
    assert KEYS.split(":", 1)[1] not in json.dumps(manifest)  # key material only in keys.secret
    keys_file = backup_dir / "keys.secret"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700

    # A new host: an empty database, the keys from the backup's keys file.
    with contextmanager_for(database, tmp_path, monkeypatch):
        monkeypatch.setenv("HUB_ENCRYPTION_KEYS", keys_file.read_text().strip())
        reset_caches()
        report = await asyncio.to_thread(restore_backup, source=backup_dir)
        assert report.count_mismatches == [] and report.credential_problems == []
        assert report.counts == manifest["tables"]
        assert report.credentials == 1
        assert stored_products(integration_id) == (snapshot_products, snapshot_products)
        restored_checkpoint = product_checkpoint(integration_id)
        assert restored_checkpoint  # mid-stream, not empty

        # The restored hub starts: the run that was running resumes from its checkpoint.
        _throttles.clear()
        sync.set_engine(engine_for(sandbox))
        try:
            async with sync.engine_lifespan() as resumed_engine:
                await resumed_engine.wait()
        finally:
            sync.set_engine(None)
        interrupted, retry = runs_of(integration_id)
        assert interrupted.status == "interrupted"
        assert (retry.trigger, retry.status) == ("retry", "succeeded")
        assert retry.cursor_before == restored_checkpoint
        assert retry.records_read < whole_run.records_read  # resumed, not started over
        assert stored_products(integration_id) == (PRODUCTS, PRODUCTS)
        with session_scope() as s:
            ids = s.exec(
                select(Product.external_id).where(Product.integration_id == integration_id)
            ).all()
        from connectors.sandbox.core import checksum

        assert {"count": len(ids), "checksum": checksum(ids)} == truth(sandbox, SHOP)["products"]


@contextmanager
def contextmanager_for(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Point the hub at a new, empty database of the same kind."""
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "restored-host"))
    if database == "sqlite":
        yield
        return
    with new_pg_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        yield


# --- refusals ----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_backup(hub_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A backup of a migrated SQLite hub with one credential (HUB_ENCRYPTION_KEYS=KEYS)."""
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", KEYS)
    reset_caches()
    migrations.upgrade_head()
    with session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name="Keys", shop_domain=SHOP
        )
        save_credential(
            session=session,
            integration_id=integration.id,
            credential=StoredCredential("access_token", "shpat_backup_secret", []),
        )
    assert cli.main(["backup", "--to", str(tmp_path / "b")]) == 0
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "other-host"))
    reset_caches()
    return tmp_path / "b"


def test_restore_refuses_a_database_that_is_not_empty(
    sqlite_backup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrations.upgrade_head()  # the new host migrated before restoring: not empty
    assert cli.main(["restore", "--from", str(sqlite_backup)]) == 2
    error = capsys.readouterr().err
    assert "is not empty" in error and "Restore only goes into an empty database" in error


def test_restore_refuses_a_backup_from_a_newer_schema(sqlite_backup: Path) -> None:
    manifest_path = sqlite_backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_revision"] = "f00dfacef00d"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="newer than this hub knows"):
        restore_backup(source=sqlite_backup)
    assert not (sqlite_backup.parent / "other-host" / "hub.db").exists()  # nothing restored


def test_restore_refuses_a_damaged_dump(sqlite_backup: Path) -> None:
    with (sqlite_backup / "hub.sqlite3").open("r+b") as dump:
        dump.seek(4096)
        dump.write(b"damaged")
    with pytest.raises(BackupError, match="checksum"):
        restore_backup(source=sqlite_backup)


def test_restore_without_the_keys_says_which_credentials_do_not_decrypt(
    sqlite_backup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup without --with-keys restored on a host with another key: restored, but the
    command fails and names the key the credential needs."""
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", generate_key_spec("prod1"))  # same id, new key
    reset_caches()
    assert not (sqlite_backup / "keys.secret").exists()
    assert cli.main(["restore", "--from", str(sqlite_backup)]) == 1
    out = capsys.readouterr().out
    assert "row counts of all" in out
    assert "does not decrypt with key 'prod1'" in out
    assert "shpat_backup_secret" not in out


def test_backup_refuses_a_directory_that_is_not_empty(
    hub_db: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "used"
    target.mkdir()
    (target / "hub.sqlite3").write_text("an older backup")
    assert cli.main(["backup", "--to", str(target)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (target / "hub.sqlite3").read_text() == "an older backup"
