from __future__ import annotations

import asyncio
import stat
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from connectors.base import StoredCredential
from dashboard.db import session_scope
from dashboard.models import Credential, Platform
from dashboard.services import vault as vault_module
from dashboard.services.credentials import DbCredentialStore, load_credential, save_credential
from dashboard.services.integrations import create_integration
from dashboard.services.vault import Vault, VaultError, _parse_keys, generate_key_spec, get_vault
from tests.conftest import reset_caches


def test_generates_a_private_key_file_once(hub_env: Path) -> None:
    first = get_vault()
    key_file = hub_env / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    vault_module.get_vault.cache_clear()
    assert get_vault().current_key_id == first.current_key_id
    key_id, ciphertext = first.encrypt("shpat_secret")
    assert get_vault().decrypt(key_id, ciphertext) == "shpat_secret"


def test_ciphertext_hides_the_secret_and_is_tagged() -> None:
    vault = Vault(_parse_keys(generate_key_spec("k1")))
    key_id, ciphertext = vault.encrypt("shpat_secret")
    assert key_id == "k1"
    assert "shpat_secret" not in ciphertext
    assert vault.encrypt("shpat_secret")[1] != ciphertext  # fresh nonce every time


def test_wrong_key_gives_clear_error_not_garbage() -> None:
    _, ciphertext = Vault(_parse_keys(generate_key_spec("k1"))).encrypt("secret")
    other = Vault(_parse_keys(generate_key_spec("k1")))
    with pytest.raises(VaultError, match="does not decrypt with key 'k1'"):
        other.decrypt("k1", ciphertext)
    with pytest.raises(VaultError, match="not configured"):
        other.decrypt("k0", ciphertext)


def test_bad_key_configuration_is_explained() -> None:
    with pytest.raises(VaultError, match="32 bytes"):
        _parse_keys("k1:c2hvcnQ")
    with pytest.raises(VaultError, match="key-id:base64-key"):
        _parse_keys("justbase64")
    with pytest.raises(VaultError, match="same key id"):
        spec = generate_key_spec("k1")
        _parse_keys(f"{spec},{spec}")


def test_rotation_reencrypts_every_credential(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key_spec("old")
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", old)
    reset_caches()
    integrations = [
        create_integration(
            session=session,
            platform=Platform.SHOPIFY,
            display_name=f"S{i}",
            shop_domain=f"shop-{i}.myshopify.com",
        )
        for i in range(3)
    ]
    for integration in integrations:
        save_credential(
            session=session,
            integration_id=integration.id,
            credential=StoredCredential("access_token", f"token-{integration.id}"),
        )
    session.commit()

    new = generate_key_spec("new")
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", f"{new},{old}")
    reset_caches()
    assert get_vault().rotate(session=session, batch_size=2) == 3
    assert {row.key_id for row in session.exec(select(Credential)).all()} == {"new"}

    # The old key can now be dropped: everything still decrypts with the new one alone.
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", new)
    reset_caches()
    for integration in integrations:
        credential = load_credential(
            session=session, integration_id=integration.id, kind="access_token"
        )
        assert credential is not None and credential.secret == f"token-{integration.id}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("hub_db" if request.param == "sqlite" else "pg_hub_db")


def _shop(session: Session, name: str = "S") -> uuid.UUID:
    integration = create_integration(
        session=session,
        platform=Platform.SHOPIFY,
        display_name=name,
        shop_domain=f"{name.lower()}.myshopify.com",
    )
    return integration.id


def test_a_ciphertext_moved_to_another_kind_does_not_decrypt(any_db: None) -> None:
    """Someone who can write the table copies the access token over the refresh token (or
    the reverse): the hub refuses to read it rather than use a secret as another kind."""
    with session_scope() as session:
        integration_id = _shop(session)
        for kind, secret in (("access_token", "shpat_live"), ("refresh_token", "shprt_live")):
            save_credential(
                session=session,
                integration_id=integration_id,
                credential=StoredCredential(kind, secret),
            )
    with session_scope() as session:
        rows = {
            row.kind: row
            for row in session.exec(
                select(Credential).where(Credential.integration_id == integration_id)
            )
        }
        rows["refresh_token"].key_id = rows["access_token"].key_id
        rows["refresh_token"].ciphertext = rows["access_token"].ciphertext
    with session_scope() as session, pytest.raises(VaultError, match="does not decrypt"):
        load_credential(session=session, integration_id=integration_id, kind="refresh_token")
    with session_scope() as session:
        access = load_credential(
            session=session, integration_id=integration_id, kind="access_token"
        )
        assert access is not None and access.secret == "shpat_live"


def test_rows_of_the_old_format_decrypt_and_rotation_rewrites_them(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written before the kind was bound (associated data: the integration id alone)
    still decrypt; `hub keys rotate` rewrites them in the new format, even under the same key,
    after which a moved ciphertext is refused for them too."""
    integration_id = _shop(session)
    vault = get_vault()
    for kind, secret in (("access_token", "shpat_old"), ("refresh_token", "shprt_old")):
        key_id, ciphertext = vault.encrypt(secret, associated_data=str(integration_id))
        session.add(
            Credential(
                integration_id=integration_id, kind=kind, key_id=key_id, ciphertext=ciphertext
            )
        )
    session.commit()
    old = load_credential(session=session, integration_id=integration_id, kind="access_token")
    assert old is not None and old.secret == "shpat_old"

    assert vault.rotate(session=session) == 2
    assert vault.rotate(session=session) == 0  # all current now
    rows = {
        row.kind: row
        for row in session.exec(select(Credential).execution_options(populate_existing=True)).all()
    }
    for kind, secret in (("access_token", "shpat_old"), ("refresh_token", "shprt_old")):
        assert (
            vault.decrypt_credential(
                rows[kind].key_id, rows[kind].ciphertext, integration_id=integration_id, kind=kind
            )
            == secret
        )
    rows["refresh_token"].ciphertext = rows["access_token"].ciphertext
    session.commit()
    with pytest.raises(VaultError):
        load_credential(session=session, integration_id=integration_id, kind="refresh_token")


async def test_rotation_during_a_token_refresh_keeps_the_refreshed_token(
    any_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh holds the integration's refresh lock, gets a new token from the platform
    and saves it, while `hub keys rotate` runs. Rotation must re-encrypt the new token, not
    write back the old one it would have read before the refresh saved."""
    old = generate_key_spec("old")
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", old)
    reset_caches()
    with session_scope() as session:
        integration_id = _shop(session)
        save_credential(
            session=session,
            integration_id=integration_id,
            credential=StoredCredential("access_token", "shpat_before_refresh"),
        )
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", f"{generate_key_spec('new')},{old}")
    reset_caches()

    # Rotation pauses after reading a row until the refresh has saved.
    rotation_read, refresh_saved = threading.Event(), threading.Event()
    decrypt = Vault.decrypt

    def pausing_decrypt(self: Vault, *args: Any, **kwargs: Any) -> str:
        plaintext = decrypt(self, *args, **kwargs)
        if threading.current_thread().name == "rotation":
            rotation_read.set()
            refresh_saved.wait(timeout=5)
        return plaintext

    monkeypatch.setattr(Vault, "decrypt", pausing_decrypt)
    store = DbCredentialStore(integration_id)

    def rotate() -> None:
        with session_scope() as session:
            get_vault().rotate(session=session)

    async with store.refresh_lock("access_token"):
        rotation = threading.Thread(target=rotate, name="rotation")
        rotation.start()
        # With the lock honoured, rotation cannot read the row while the refresh holds it.
        await asyncio.to_thread(rotation_read.wait, 1)
        await store.save(StoredCredential("access_token", "shpat_after_refresh"))
        refresh_saved.set()
    await asyncio.to_thread(rotation.join, 30)
    assert not rotation.is_alive()

    token = await store.get("access_token")
    assert token is not None and token.secret == "shpat_after_refresh"
    with session_scope() as session:
        assert {row.key_id for row in session.exec(select(Credential))} == {"new"}


def test_a_refresh_lock_holds_across_event_loops_of_one_process(hub_db) -> None:
    """A webhook applied on the served routes' loop and a sync on another loop of the same
    process refresh one integration's token: each waits its turn (an asyncio lock bound to
    one loop failed the other's run with "bound to a different event loop")."""
    from dashboard.services.credentials import cross_process_lock

    order: list[str] = []

    async def two_refreshes(loop_name: str) -> None:
        async def refresh(n: int) -> None:
            async with cross_process_lock("refresh:one-integration:access_token"):
                order.append(f"{loop_name}{n} in")
                await asyncio.sleep(0.05)
                order.append(f"{loop_name}{n} out")

        await asyncio.gather(refresh(1), refresh(2))  # contended: binds a lock to this loop

    asyncio.run(two_refreshes("a"))
    other = threading.Thread(target=lambda: asyncio.run(two_refreshes("b")))
    other.start()
    asyncio.run(two_refreshes("c"))
    other.join(10)
    assert len(order) == 12
    # Never two holders at once, whichever loop they ran on.
    assert all(order[i].endswith("in") and order[i + 1] == order[i][:-2] + "out"
               for i in range(0, 12, 2))  # fmt: skip
