"""The periodic looks for incidents nothing else reports: connect links that expired unused,
Shopify refresh tokens near their 90 days. Run by the sync engine's sweep
(``SyncEngine.supervise``), in the sweep's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.auth import REFRESH_TOKEN
from dashboard.models import (
    ConnectLink,
    Credential,
    Incident,
    IncidentCause,
    IncidentStatus,
    Integration,
    IntegrationStatus,
    Platform,
)
from dashboard.services.incident_words import plural
from dashboard.services.incidents import open_incident, raise_cause, resolve_cause


def sweep_expired_links(*, session: Session, now: datetime | None = None) -> int:
    """Integrations still pending whose every connect link expired unused get an incident,
    once per expiry: a link sent since (live) resolves it, and when that one expires unused
    too, a new incident says so. Returns how many were opened. Cheap: only pending
    integrations with an expired, unused link are read."""
    now = now or datetime.now(UTC)
    cause = IncidentCause.CONNECT_LINK_EXPIRED_UNUSED
    live_link = (
        select(ConnectLink.id)
        .where(
            col(ConnectLink.integration_id) == col(Integration.id),
            col(ConnectLink.expires_at) > now,
            col(ConnectLink.revoked_at).is_(None),
            col(ConnectLink.used_at).is_(None),
        )
        .exists()
    )
    # An open incident, or one opened after the link expired, told about that expiry already.
    told = (
        select(Incident.id)
        .where(
            # the link's integration: a subquery correlates with the query just around it
            col(Incident.integration_id) == col(ConnectLink.integration_id),
            Incident.cause == cause.value,
            sa.or_(
                col(Incident.status) == IncidentStatus.OPEN.value,
                col(Incident.opened_at) >= col(ConnectLink.expires_at),
            ),
        )
        .exists()
    )
    expired_untold = (
        select(ConnectLink.id)
        .where(
            col(ConnectLink.integration_id) == col(Integration.id),
            col(ConnectLink.expires_at) <= now,
            col(ConnectLink.used_at).is_(None),
            col(ConnectLink.declined_at).is_(None),
            col(ConnectLink.revoked_at).is_(None),
            ~told,
        )
        .exists()
    )
    pending = Integration.status == IntegrationStatus.PENDING.value
    rows = session.exec(select(Integration).where(pending, expired_untold, ~live_link)).all()
    for integration in rows:
        raise_cause(session=session, integration=integration, cause=cause)
    # What to do was done: a new link is out (the merchant has not used it yet).
    sent_again = session.exec(
        select(Integration)
        .join(Incident, col(Incident.integration_id) == col(Integration.id))
        .where(
            Incident.cause == cause.value,
            Incident.status == IncidentStatus.OPEN.value,
            live_link,
        )
    ).all()
    for integration in sent_again:
        resolve_cause(session=session, integration=integration, cause=cause,
                      resolution="a new connect link was sent")  # fmt: skip
    return len(rows)


# Shopify's refresh token of an expiring offline token lives 90 days from its issue; each
# refresh issues a new one. Used when the token endpoint did not say (no expires_at stored).
SHOPIFY_REFRESH_TOKEN_LIFETIME = timedelta(days=90)


def sweep_expiring_refresh_tokens(
    *, session: Session, now: datetime | None = None, warn_days: int | None = None
) -> int:
    """Shopify integrations whose refresh token ends within ``warn_days`` (setting
    ``shopify_refresh_warning_days``) get an incident, its title counting the days left;
    once the token was refreshed (a sync did it, or a reconnect) the incident is resolved.
    Returns how many integrations are at risk. One query over Shopify's refresh tokens."""
    from dashboard.settings import get_settings

    now = now or datetime.now(UTC)
    warn = timedelta(days=warn_days or get_settings().shopify_refresh_warning_days)
    rows = session.exec(
        select(Integration, Credential)
        .join(Credential, col(Credential.integration_id) == col(Integration.id))
        .where(
            Integration.platform == Platform.SHOPIFY.value,
            Credential.kind == REFRESH_TOKEN,
            col(Integration.status).not_in(
                [IntegrationStatus.DISCONNECTED.value, IntegrationStatus.PENDING.value]
            ),
        )
    ).all()
    at_risk = 0
    for integration, credential in rows:
        ends = credential.expires_at or (
            (credential.refreshed_at or credential.created_at) + SHOPIFY_REFRESH_TOKEN_LIFETIME
        )
        left = ends - now
        if left > warn:
            resolve_cause(session=session, integration=integration,
                          cause=IncidentCause.REFRESH_TOKEN_EXPIRING,
                          resolution="the token was refreshed")  # fmt: skip
            continue
        at_risk += 1
        days = max(0, left.days)
        title = (
            "Shopify access has ended: the refresh token passed its 90 days unused"
            if left <= timedelta(0)
            else f"Shopify access ends in {plural(days, 'day') if days else 'less than a day'}"
            " unless the token is refreshed"
        )
        current = open_incident(session, integration.id, IncidentCause.REFRESH_TOKEN_EXPIRING)
        if current is not None and current.title == title:
            continue  # told already; the sweep runs every few seconds
        raise_cause(session=session, integration=integration,
                    cause=IncidentCause.REFRESH_TOKEN_EXPIRING, title=title)  # fmt: skip
    return at_risk
