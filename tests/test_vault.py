from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlmodel import Session, select

from connectors.base import StoredCredential
from dashboard.models import Credential, Platform
from dashboard.services import vault as vault_module
from dashboard.services.credentials import load_credential, save_credential
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
