"""Credential vault: AES-256-GCM with named keys.

Every ciphertext carries the id of the key that made it, so several keys can be live at
once (``HUB_ENCRYPTION_KEYS="k2:<b64>,k1:<b64>"``, newest first). New secrets use the newest
key; ``rotate`` re-encrypts every credential under it, one row at a time, without downtime.
With no key configured the embedded default generates one into ``{data_dir}/secret.key``.

A credential's ciphertext is bound to where it belongs by the AEAD's associated data. Format
v2 (ciphertext ``v2:<base64>``) binds the integration and the credential kind, so a token
copied into another row, or into another kind of the same integration (an access token
posing as a refresh token), does not decrypt. Rows of format v1 (plain base64) bound only the
integration: they still decrypt, and ``rotate`` rewrites them in v2.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session, col, select

from dashboard.data_dir import create_private_file, secure_data_dir
from dashboard.models import Credential, EncryptionKey
from dashboard.settings import Settings, get_settings

log = logging.getLogger(__name__)

_NONCE_BYTES = 12
_KEY_FILE = "secret.key"
CREDENTIAL_FORMAT = "v2:"  # prefix of the current credential format; base64 has no ":"


def credential_associated_data(integration_id: object, kind: str) -> str:
    """What a v2 credential ciphertext is bound to: its integration and its kind."""
    return f"hub-credential/v2|{integration_id}|{kind}"


class VaultError(RuntimeError):
    """The vault cannot encrypt or decrypt: the message says which key and what to do."""


@dataclass(frozen=True)
class VaultKey:
    key_id: str
    material: bytes


def _parse_keys(spec: str) -> list[VaultKey]:
    keys: list[VaultKey] = []
    for position, item in enumerate(part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise VaultError(
                f"HUB_ENCRYPTION_KEYS entry {position + 1} must look like 'key-id:base64-key'"
            )
        try:
            material = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise VaultError(f"HUB_ENCRYPTION_KEYS key {key_id!r} is not valid base64") from None
        if len(material) != 32:
            raise VaultError(
                f"HUB_ENCRYPTION_KEYS key {key_id!r} must be 32 bytes (AES-256), "
                f"got {len(material)}; generate one with `hub keys generate`"
            )
        keys.append(VaultKey(key_id, material))
    if not keys:
        raise VaultError("HUB_ENCRYPTION_KEYS is set but holds no key")
    if len({k.key_id for k in keys}) != len(keys):
        raise VaultError("HUB_ENCRYPTION_KEYS has the same key id twice")
    return keys


def key_fingerprint(material: bytes) -> str:
    """A short, one-way name of key material: equal fingerprints, same key. Sixteen hex
    digits of a domain-separated SHA-256; it tells keys apart and reveals nothing of them."""
    return hashlib.sha256(b"connector-hub key fingerprint/v1\0" + material).hexdigest()[:16]


def generate_key_spec(key_id: str | None = None) -> str:
    """A new 'key-id:base64' entry for HUB_ENCRYPTION_KEYS."""
    key_id = key_id or datetime.now(UTC).strftime("k%Y%m%d%H%M%S")
    return f"{key_id}:{base64.urlsafe_b64encode(AESGCM.generate_key(256)).decode().rstrip('=')}"


def _load_or_create_key_file(data_dir: Path) -> list[VaultKey]:
    path = secure_data_dir(data_dir) / _KEY_FILE
    if create_private_file(path, generate_key_spec("local1") + "\n"):
        log.warning(
            "No HUB_ENCRYPTION_KEYS set: generated an encryption key into %s (mode 0600). "
            "Back it up; credentials cannot be read without it.",
            path,
        )
    return _parse_keys(path.read_text().strip().replace("\n", ","))


class Vault:
    def __init__(self, keys: list[VaultKey]) -> None:
        if not keys:
            raise VaultError("the vault needs at least one key")
        self._keys = {key.key_id: AESGCM(key.material) for key in keys}
        self.key_ids = [key.key_id for key in keys]
        self.fingerprints = {key.key_id: key_fingerprint(key.material) for key in keys}
        self._material = {key.key_id: key.material for key in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        if settings.encryption_keys:
            return cls(_parse_keys(settings.encryption_keys))
        return cls(_load_or_create_key_file(settings.data_dir))

    @property
    def current_key_id(self) -> str:
        return self.key_ids[0]

    def encrypt(self, plaintext: str, *, associated_data: str = "") -> tuple[str, str]:
        """Encrypt with the newest key; returns (key id, base64 nonce+ciphertext)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._keys[self.current_key_id].encrypt(
            nonce, plaintext.encode(), associated_data.encode() or None
        )
        return self.current_key_id, base64.b64encode(nonce + sealed).decode()

    def decrypt(self, key_id: str, ciphertext: str, *, associated_data: str = "") -> str:
        """Decrypt; raises VaultError naming the key when it is missing or does not fit."""
        aead = self._keys.get(key_id)
        if aead is None:
            raise VaultError(
                f"credential was encrypted with key {key_id!r}, which is not configured; "
                f"add it back to HUB_ENCRYPTION_KEYS (configured: {', '.join(self.key_ids)})"
            )
        try:
            blob = base64.b64decode(ciphertext)
            return aead.decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated_data.encode() or None
            ).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise VaultError(
                f"credential does not decrypt with key {key_id!r}: the key material changed "
                "or the row is corrupted"
            ) from None

    def encrypt_credential(
        self, plaintext: str, *, integration_id: object, kind: str
    ) -> tuple[str, str]:
        """Encrypt an integration's secret of ``kind`` (format v2); returns (key id, text)."""
        key_id, sealed = self.encrypt(
            plaintext, associated_data=credential_associated_data(integration_id, kind)
        )
        return key_id, CREDENTIAL_FORMAT + sealed

    def decrypt_credential(
        self, key_id: str, ciphertext: str, *, integration_id: object, kind: str
    ) -> str:
        """Decrypt a credential of either format; raises VaultError when it is not this
        integration's secret of this kind (or the key is missing)."""
        if ciphertext.startswith(CREDENTIAL_FORMAT):
            return self.decrypt(
                key_id,
                ciphertext.removeprefix(CREDENTIAL_FORMAT),
                associated_data=credential_associated_data(integration_id, kind),
            )
        # v1, written before the kind was bound: the integration id alone.
        return self.decrypt(key_id, ciphertext, associated_data=str(integration_id))

    def is_current(self, key_id: str, ciphertext: str) -> bool:
        """Whether a credential is under the newest key and in the current format."""
        return key_id == self.current_key_id and ciphertext.startswith(CREDENTIAL_FORMAT)

    def rotate(self, *, session: Session, batch_size: int = 200) -> int:
        """Re-encrypt every credential not under the newest key or not in the current format,
        each integration's under its token-refresh lock; returns how many. Commits."""
        # They import the vault. Sealed buyer data and Settings-entered LWA secrets go too:
        # an old key dropped after a rotation must leave nothing it alone can open.
        from dashboard.services.amazon_lifecycle import reseal_secrets
        from dashboard.services.credentials import rotate_credentials
        from dashboard.services.personal_data import reseal_orders

        rotated = rotate_credentials(session=session, vault=self, batch_size=batch_size)
        rotated += reseal_orders(session=session, vault=self, batch_size=batch_size)
        rotated += reseal_secrets(session=session, vault=self)
        session.commit()
        return rotated

    def key_usage(self, *, session: Session) -> dict[str, int]:
        """How many secrets each key id protects (for the Settings page): credentials,
        orders' sealed buyer data, the app secret entered in Settings."""
        from dashboard.models import LwaClientSecret, Order

        counts = dict.fromkeys(self.key_ids, 0)
        for column in (col(Credential.key_id), col(Order.personal_key_id),
                       col(LwaClientSecret.key_id)):  # fmt: skip
            for key_id, count in session.execute(
                sa.select(column, sa.func.count()).where(column.is_not(None)).group_by(column)
            ).all():
                counts[key_id] = counts.get(key_id, 0) + count
        return counts


    def key_spec(self, key_ids: list[str] | None = None) -> str:
        """``HUB_ENCRYPTION_KEYS`` for these key ids (all by default), newest first. Secret:
        only for ``hub backup --with-keys``, which writes it to a 0600 file."""
        wanted = [k for k in self.key_ids if key_ids is None or k in key_ids]
        return ",".join(
            f"{k}:{base64.urlsafe_b64encode(self._material[k]).decode().rstrip('=')}"
            for k in wanted
        )


class KeyMismatchError(VaultError):
    """A configured key's material differs from the one this database knows under its id."""


def key_problems(*, session: Session, vault: Vault, register: bool = False) -> list[str]:
    """Configured keys that are not the database's key of the same id, one line each with
    what to do; [] when every key matches. With ``register`` a key id the database does not
    know yet is recorded, once a credential stored under it decrypted (or none exists): rows
    written before fingerprints existed vouch for the key that made them."""
    problems = []
    known = {row.key_id: row.fingerprint for row in session.exec(select(EncryptionKey)).all()}
    for key_id in vault.key_ids:
        mine = vault.fingerprints[key_id]
        recorded = known.get(key_id)
        if recorded is not None:
            if recorded != mine:
                problems.append(_mismatch(key_id, mine, f"fingerprint {recorded}"))
            continue
        samples = session.exec(
            select(Credential).where(Credential.key_id == key_id).limit(3)
        ).all()
        try:
            for row in samples:
                vault.decrypt_credential(
                    row.key_id, row.ciphertext, integration_id=row.integration_id, kind=row.kind
                )
        except VaultError:
            problems.append(_mismatch(key_id, mine, "credentials that do not decrypt with it"))
            continue
        if register:
            _register(session, key_id, mine)
    if register:
        again = {r.key_id: r.fingerprint for r in session.exec(select(EncryptionKey)).all()}
        problems += [
            _mismatch(k, vault.fingerprints[k], f"fingerprint {again[k]}")
            for k in vault.key_ids
            if k in again and k not in known and again[k] != vault.fingerprints[k]
        ]  # another host registered its own key under this id at the same moment
    return problems


def _register(session: Session, key_id: str, fingerprint: str) -> None:
    insert = sa.insert(EncryptionKey).values(
        key_id=key_id, fingerprint=fingerprint, registered_at=datetime.now(UTC)
    )
    try:
        with session.begin_nested():
            session.execute(insert)
    except sa.exc.IntegrityError:
        pass  # registered meanwhile by another process: compared by the caller


def _mismatch(key_id: str, mine: str, theirs: str) -> str:
    return (
        f"encryption key {key_id!r} here (fingerprint {mine}) is not the key {key_id!r} this "
        f"database holds {theirs}: this host has a key of its own under the same id. Every "
        "host of a hub must share the same keys: copy HUB_ENCRYPTION_KEYS (or the data dir's "
        "secret.key) from a host whose hub works, then restart"
    )


def ensure_keys_match(*, session: Session, vault: Vault) -> None:
    """Register the vault's keys and raise KeyMismatchError listing every key that differs
    from the database's; does nothing before migrations created ``encryption_keys``."""
    if not sa.inspect(session.connection()).has_table(EncryptionKey.__tablename__):
        return
    problems = key_problems(session=session, vault=vault, register=True)
    if problems:
        raise KeyMismatchError("\n  ".join(problems))


def stored_key_fingerprints(*, session: Session) -> dict[str, str]:
    """Every key id the database has recorded, with its fingerprint."""
    rows = session.exec(select(EncryptionKey).order_by(col(EncryptionKey.key_id))).all()
    return {row.key_id: row.fingerprint for row in rows}


@functools.cache
def get_vault() -> Vault:
    return Vault.from_settings(get_settings())
