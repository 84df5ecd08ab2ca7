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
  active) ahead of the deadline.
- A seller's authorization lasts a year (https://developer-docs.amazon.com/sp-api/docs/
  selling-partner-appstore-authorization-workflow, "Manage Your Apps"):
  ``amazon_reauthorization_due`` opens ahead of it and a new authorization resolves it.

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.errors import OAuthError
from dashboard.models import (
    AppstoreState,
    Integration,
    IntegrationStatus,
    LwaClientSecret,
    Platform,
)
from dashboard.services import incidents
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
    previous_configured: bool

    def days_left(self, now: datetime | None = None) -> int:
        return (self.deadline - (now or _now())).days


def record_secret(
    *, session: Session, secret: str, set_at: datetime | None = None
) -> LwaClientSecret:
    """The row of ``secret``, made the first time the hub sees it (``set_at``: now, or the
    date it was generated when an admin knows it better)."""
    fingerprint = secret_fingerprint(secret)
    row = session.exec(
        select(LwaClientSecret).where(LwaClientSecret.fingerprint == fingerprint)
    ).first()
    if row is None:
        row = LwaClientSecret(fingerprint=fingerprint, set_at=set_at or _now())
        for older in session.exec(
            select(LwaClientSecret).where(col(LwaClientSecret.retired_at).is_(None))
        ).all():
            older.retired_at = _now()
            session.add(older)
    elif set_at is not None:
        row.set_at = set_at
    row.retired_at = None
    session.add(row)
    session.flush()
    return row


def secret_status(*, session: Session, settings: Settings | None = None) -> SecretStatus | None:
    """When the configured secret was set and must be rotated by; None without a secret."""
    settings = settings or get_settings()
    if not settings.amazon_client_secret:
        return None
    row = record_secret(session=session, secret=settings.amazon_client_secret)
    return SecretStatus(
        fingerprint=row.fingerprint,
        set_at=row.set_at,
        deadline=row.set_at + LWA_SECRET_LIFETIME,
        previous_configured=bool(settings.amazon_client_secret_previous),
    )


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
