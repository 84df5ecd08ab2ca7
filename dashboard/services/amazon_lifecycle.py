"""Amazon's credential lifecycle: Appstore-started authorizations, the LWA client secret's
180 days and each seller's yearly re-authorization.

- A seller who authorizes the app from the Selling Partner Appstore (or renews it from
  "Manage Your Apps") arrives at the app's Login URI; the hub answers with its own single-use
  ``state`` (``issue_appstore_state``), bound to the seller and region Amazon named. The
  callback finds the integration holding that seller, or creates one, only after the code
  exchange proves the seller.
- "You must rotate your LWA credentials (client secrets) for all applications every 180
  days" (https://developer-docs.amazon.com/sp-api/docs/rotating-your-apps-lwa-credentials):
  the hub remembers when it first saw each secret (by fingerprint, never the secret) and
  opens one ``lwa_secret_expiring`` incident for the app (while any Amazon integration is
  active) ahead of the deadline. The secret comes from HUB_AMAZON_CLIENT_SECRET (``hub amazon
  rotate-secret``) or is entered by an admin in Settings → Amazon app, sealed by the vault;
  either way the one before stays the fallback during the switch (``app_secrets``).
- A seller's authorization lasts a year (https://developer-docs.amazon.com/sp-api/docs/
  selling-partner-appstore-authorization-workflow, "Manage Your Apps"):
  ``amazon_reauthorization_due`` opens ahead of it and a new authorization resolves it.

Every function runs inside the caller's transaction (``amazon_settings_values`` opens its
own).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.errors import InvalidInput, OAuthError
from dashboard.db import dialect_insert, in_session
from dashboard.models import (
    AppstoreState,
    Integration,
    IntegrationStatus,
    LwaClientSecret,
    Platform,
)
from dashboard.services import incidents
from dashboard.services.audit import record_audit
from dashboard.services.vault import Vault, get_vault
from dashboard.settings import Settings, get_settings

LWA_SECRET_LIFETIME = timedelta(days=180)
AUTHORIZATION_LIFETIME = timedelta(days=365)
APPSTORE_STATE_TTL = timedelta(minutes=10)
# Integrations that call SP-API with the app's secret and the seller's authorization (or
# will, once resumed or reconnected).
ACTIVE = tuple(
    status.value
    for status in IntegrationStatus
    if status not in (IntegrationStatus.PENDING, IntegrationStatus.DISCONNECTED)
)


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- Appstore-started authorization -----------------------------------------------------------


def issue_appstore_state(
    *, session: Session, region: str, selling_partner_id: str, marketplace_id: str
) -> str:
    """A random single-use ``state`` (10 minutes) for an authorization Amazon started."""
    state = secrets.token_urlsafe(32)
    session.add(
        AppstoreState(
            state_hash=_hash(state),
            region=region,
            selling_partner_id=selling_partner_id,
            marketplace_id=marketplace_id,
            expires_at=_now() + APPSTORE_STATE_TTL,
        )
    )
    session.flush()
    return state


def consume_appstore_state(*, session: Session, state: str | None) -> AppstoreState | None:
    """The Appstore start behind ``state``, now used; None when ``state`` is not one (the
    website workflow's states are checked by ``consume_oauth_state``). Raises OAuthError for
    a used or expired one."""
    if not state:
        return None
    row = session.exec(
        select(AppstoreState).where(AppstoreState.state_hash == _hash(state))
    ).first()
    if row is None:
        return None
    restart = "Start again from the app's page in the Selling Partner Appstore."
    if row.used_at is not None:
        raise OAuthError(
            "appstore state replayed",
            user_message=f"This authorization was completed already and cannot be reused. "
            f"{restart}",
        )
    if row.expires_at <= _now():
        raise OAuthError(
            "appstore state expired",
            user_message=f"This authorization request expired (they last 10 minutes). {restart}",
        )
    row.used_at = _now()
    session.add(row)
    session.flush()
    return row


def seller_authorized(*, session: Session, integration: Integration) -> None:
    """The seller authorized the app (first time or renewal): the year starts again."""
    integration.authorized_at = _now()
    session.add(integration)
    incidents.reauthorized(session=session, integration=integration)


# --- the LWA client secret --------------------------------------------------------------------


def secret_fingerprint(secret: str) -> str:
    """A short one-way name of a client secret: equal fingerprints, same secret."""
    return hashlib.sha256(b"connector-hub lwa secret/v1\0" + secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SecretStatus:
    fingerprint: str
    set_at: datetime
    deadline: datetime
    previous_configured: bool  # a fallback secret is in place (the switch is not over)
    from_settings: bool = False  # entered in Settings (sealed in the database), not the env
    switch_pending: bool = False  # entered in Settings, the switch not yet confirmed

    def days_left(self, now: datetime | None = None) -> int:
        return (self.deadline - (now or _now())).days


@dataclass(frozen=True)
class AppSecrets:
    """The LWA client secret the hub signs token calls with, and the one it falls back to
    when Login with Amazon refuses it (invalid_client) during a switch."""

    current: str | None
    previous: str | None

    def __repr__(self) -> str:  # never the secrets, even in a traceback's locals
        return f"AppSecrets(current={'set' if self.current else None})"


def record_secret(
    *, session: Session, secret: str, set_at: datetime | None = None
) -> LwaClientSecret:
    """The row of ``secret``, made the first time the hub sees it (``set_at``: now, or the
    date it was generated when an admin knows it better), and now the one in use."""
    fingerprint = secret_fingerprint(secret)
    row = _row_of(session, fingerprint)
    if row is None:
        # A seller's first runs start together and each may see the secret first: the
        # database keeps one row, and only the run whose row it is retires the one before.
        new_id = session.execute(
            _insert_secret(session.get_bind().dialect.name),
            {"id": uuid.uuid4(), "fingerprint": fingerprint, "set_at": set_at or _now()},
        ).scalar_one_or_none()
        row = _row_of(session, fingerprint)
        assert row is not None
        if new_id is None:
            return row  # recorded meanwhile by another run or process
        _retire_current(session, keep=row.id)
    elif set_at is not None:
        row.set_at = set_at
    if row.retired_at is not None:
        _retire_current(session)
    row.retired_at = None
    session.add(row)
    session.flush()
    return row


def _row_of(session: Session, fingerprint: str) -> LwaClientSecret | None:
    return session.exec(
        select(LwaClientSecret).where(LwaClientSecret.fingerprint == fingerprint)
    ).first()


@functools.cache
def _insert_secret(dialect: str) -> sa.Executable:
    insert = dialect_insert(dialect)
    table: sa.Table = LwaClientSecret.__table__  # type: ignore[attr-defined]
    return insert(table).on_conflict_do_nothing().returning(table.c.id)


def _retire_current(session: Session, *, keep: uuid.UUID | None = None) -> None:
    for older in session.exec(
        select(LwaClientSecret).where(
            col(LwaClientSecret.retired_at).is_(None), LwaClientSecret.id != keep
        )
    ).all():
        older.retired_at = _now()
        session.add(older)


def _current_row(
    session: Session, settings: Settings, *, record: bool = True
) -> LwaClientSecret | None:
    """The secret in use: the newest one the hub knows. A new HUB_AMAZON_CLIENT_SECRET is
    recorded (and used) the first time it is seen (unless ``record`` is off: reading only);
    one entered in Settings since stays in use over the environment's older one."""
    if settings.amazon_client_secret and record:
        fingerprint = secret_fingerprint(settings.amazon_client_secret)
        if _row_of(session, fingerprint) is None:
            record_secret(session=session, secret=settings.amazon_client_secret)
    return session.exec(
        select(LwaClientSecret)
        .where(col(LwaClientSecret.retired_at).is_(None))
        .order_by(col(LwaClientSecret.set_at).desc())
    ).first()


def _associated_data(fingerprint: str) -> str:
    return f"hub-lwa-client-secret/v1|{fingerprint}"


def _value_of(row: LwaClientSecret, settings: Settings) -> str | None:
    """The secret a row stands for: sealed in it, or the environment's with its fingerprint."""
    if row.ciphertext and row.key_id:
        return get_vault().decrypt(
            row.key_id, row.ciphertext, associated_data=_associated_data(row.fingerprint)
        )
    for candidate in (settings.amazon_client_secret, settings.amazon_client_secret_previous):
        if candidate and secret_fingerprint(candidate) == row.fingerprint:
            return candidate
    return None


def _fallback_row(session: Session, current: LwaClientSecret) -> LwaClientSecret | None:
    """The secret before a Settings-entered one whose switch is not confirmed yet."""
    if not current.ciphertext or current.switch_confirmed_at is not None:
        return None
    return session.exec(
        select(LwaClientSecret)
        .where(col(LwaClientSecret.retired_at).is_not(None))
        .order_by(col(LwaClientSecret.retired_at).desc())
    ).first()


def app_secrets(*, session: Session, settings: Settings | None = None) -> AppSecrets:
    """The secrets token calls use: one entered in Settings (and, until its switch is
    confirmed, the one before it), else HUB_AMAZON_CLIENT_SECRET and _PREVIOUS."""
    settings = settings or get_settings()
    current = _current_row(session, settings)
    if current is None or not current.ciphertext:
        return AppSecrets(settings.amazon_client_secret, settings.amazon_client_secret_previous)
    fallback = _fallback_row(session, current)
    return AppSecrets(
        _value_of(current, settings), _value_of(fallback, settings) if fallback else None
    )


def settings_entered_secret(
    *, session: Session, settings: Settings
) -> tuple[LwaClientSecret, str | None] | None:
    """The secret entered in Settings when it is the one in use (its row and value), else
    None: then HUB_AMAZON_CLIENT_SECRET is. Reads only (``hub doctor``)."""
    row = _current_row(session, settings, record=False)
    if row is None or not row.ciphertext:
        return None
    if settings.amazon_client_secret:
        env_row = _row_of(session, secret_fingerprint(settings.amazon_client_secret))
        if env_row is None:  # a new environment secret: it takes over at the next start
            return None
    return row, _value_of(row, settings)


async def amazon_settings_values() -> dict[str, Any]:
    """The hub's settings as the Amazon connector reads them, with the secrets in use."""
    values = get_settings().model_dump()
    secrets_in_use = await in_session(lambda s: app_secrets(session=s))
    values.update(
        amazon_client_secret=secrets_in_use.current,
        amazon_client_secret_previous=secrets_in_use.previous,
    )
    return values


def secret_status(*, session: Session, settings: Settings | None = None) -> SecretStatus | None:
    """When the secret in use was set and must be rotated by; None without a secret."""
    settings = settings or get_settings()
    row = _current_row(session, settings)
    if row is None:
        return None
    pending = bool(row.ciphertext) and row.switch_confirmed_at is None
    return SecretStatus(
        fingerprint=row.fingerprint,
        set_at=row.set_at,
        deadline=row.set_at + LWA_SECRET_LIFETIME,
        previous_configured=pending
        if row.ciphertext
        else bool(settings.amazon_client_secret_previous),
        from_settings=bool(row.ciphertext),
        switch_pending=pending,
    )


def set_secret(*, session: Session, secret: str, actor: str) -> SecretStatus:
    """An admin entered the app's new LWA client secret (Settings): sealed and used from now
    on, the one before kept as the fallback until the switch is confirmed; audited, never
    logged. Raises InvalidInput for a value that cannot be a new secret."""
    secret = secret.strip()
    if not secret or len(secret) > 512 or any(not c.isprintable() or c.isspace() for c in secret):
        raise InvalidInput("enter the new client secret exactly as Amazon shows it (one word)")
    settings = get_settings()
    current = _current_row(session, settings)
    fingerprint = secret_fingerprint(secret)
    if current is not None and current.fingerprint == fingerprint:
        raise InvalidInput("this is the client secret in use already")
    if _row_of(session, fingerprint) is not None:
        raise InvalidInput(
            "this client secret was used before; rotate it in Solution Provider Portal and "
            "enter the new one"
        )
    if current is not None and current.ciphertext and current.switch_confirmed_at is None:
        raise InvalidInput("confirm the switch to the secret entered last before entering another")
    _forget_retired(session)  # only the one now in use becomes the fallback
    key_id, ciphertext = get_vault().encrypt(secret, associated_data=_associated_data(fingerprint))
    _retire_current(session)
    row = LwaClientSecret(
        fingerprint=fingerprint, set_at=_now(), key_id=key_id, ciphertext=ciphertext
    )
    session.add(row)
    session.flush()
    record_audit(
        session=session, actor=actor, action="amazon.secret_set",
        context={"fingerprint": fingerprint, "previous": current.fingerprint if current else None},
    )  # fmt: skip
    incidents.lwa_secret_rotated(session=session)
    status = secret_status(session=session, settings=settings)
    assert status is not None
    return status


def confirm_switch(*, session: Session, actor: str) -> SecretStatus:
    """The new secret works (Amazon's seven days of the old one may end): the fallback is
    dropped and its sealed copy erased. Raises InvalidInput when no switch is under way."""
    settings = get_settings()
    current = _current_row(session, settings)
    if current is None or not current.ciphertext or current.switch_confirmed_at is not None:
        raise InvalidInput("no switch to confirm: enter a new client secret first")
    current.switch_confirmed_at = _now()
    session.add(current)
    _forget_retired(session)
    record_audit(
        session=session, actor=actor, action="amazon.secret_switch_confirmed",
        context={"fingerprint": current.fingerprint},
    )  # fmt: skip
    status = secret_status(session=session, settings=settings)
    assert status is not None
    return status


def _forget_retired(session: Session) -> None:
    """Erase the sealed copies of secrets no longer in use (their fingerprints and dates
    stay: a secret is never taken back)."""
    session.execute(
        sa.update(LwaClientSecret)
        .where(col(LwaClientSecret.retired_at).is_not(None))
        .values(key_id=None, ciphertext=None)
    )


def reseal_secrets(*, session: Session, vault: Vault) -> int:
    """Seal again under the newest key a Settings-entered secret sealed under an older one."""
    rows = session.exec(
        select(LwaClientSecret).where(
            col(LwaClientSecret.ciphertext).is_not(None),
            col(LwaClientSecret.key_id) != vault.current_key_id,
        )
    ).all()
    for row in rows:
        assert row.key_id is not None and row.ciphertext is not None
        where = _associated_data(row.fingerprint)
        secret = vault.decrypt(row.key_id, row.ciphertext, associated_data=where)
        row.key_id, row.ciphertext = vault.encrypt(secret, associated_data=where)
        session.add(row)
    session.flush()
    return len(rows)


def _active_amazon(session: Session) -> list[Integration]:
    return list(
        session.exec(
            select(Integration).where(
                Integration.platform == Platform.AMAZON.value,
                col(Integration.status).in_(ACTIVE),
            )
        ).all()
    )


def sweep(*, session: Session, now: datetime | None = None) -> int:
    """The periodic check (beside the expired-link sweep): the LWA secret nearing its 180
    days, and sellers whose yearly authorization comes due. Returns incidents raised."""
    settings = get_settings()
    now = now or _now()
    raised = 0
    status = secret_status(session=session, settings=settings)
    amazon = _active_amazon(session)
    if status is not None and amazon:
        # One incident for the app: the secret is the app's, shared by every integration.
        warn_from = status.deadline - timedelta(days=settings.amazon_secret_warning_days)
        if now >= warn_from:
            incidents.lwa_secret_expiring(session=session, deadline=status.deadline, now=now)
            raised += 1
        else:
            incidents.lwa_secret_rotated(session=session)
    elif not amazon:
        incidents.lwa_secret_rotated(
            session=session, resolution="no active Amazon integration uses the secret"
        )
    # Appstore starts nobody finished are kept a day (for the logs), then forgotten.
    session.execute(
        sa.delete(AppstoreState).where(col(AppstoreState.expires_at) < now - timedelta(days=1))
    )
    ahead = timedelta(days=settings.amazon_reauthorization_warning_days)
    for integration in amazon:
        if integration.authorized_at is None:
            continue
        due = integration.authorized_at + AUTHORIZATION_LIFETIME
        if now >= due - ahead:
            incidents.reauthorization_due(
                session=session, integration=integration, due=due, now=now
            )
            raised += 1
    return raised


def integration_for_seller(
    *, session: Session, region: str, selling_partner_id: str
) -> Integration | None:
    """The integration holding this seller in this region, or else the newest one that
    belonged to it (a disconnected or lapsed one comes back rather than a duplicate)."""
    from dashboard.services.integrations import find_connected_account

    holder = find_connected_account(
        session=session,
        platform=Platform.AMAZON.value,
        selling_partner_id=selling_partner_id,
        region=region,
    )
    if holder is not None:
        return holder
    return session.exec(
        select(Integration)
        .where(
            Integration.platform == Platform.AMAZON.value,
            Integration.region == region,
            Integration.selling_partner_id == selling_partner_id,
        )
        .order_by(col(Integration.created_at).desc())
    ).first()
