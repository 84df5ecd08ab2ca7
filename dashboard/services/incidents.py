"""Incidents: one per integration and cause, opened once, updated while it lasts, resolved
by itself when a run succeeds or access returns.

What a person reads is made here, from one mapping (``FAILURES``) that turns raw errors such
as ``POST /sandbox/shopify/.../graphql.json answered 503`` into a category and plain words:
"Shopify answered 503 for 4 streams since 10:02 — the store's API is down or overloaded; the
hub retries every 15 min". The bell, the Overview's attention panel and the outgoing alert
webhook (``alerts.notify`` with kind ``incident_opened`` / ``incident_resolved``) come from
here, so one outage is one notification.

Every function runs inside the caller's transaction (the engine's, a webhook's, a route's).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, func, select

from connectors.auth import REFRESH_TOKEN
from dashboard import routes
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
from dashboard.services import alerts

INCIDENTS: sa.Table = Incident.__table__  # type: ignore[attr-defined]
PLATFORM_LABELS = {"shopify": "Shopify", "amazon": "Amazon"}
PLATFORM_APIS = {"shopify": "the store's API", "amazon": "Amazon's SP-API"}


@dataclass(frozen=True)
class Failure:
    """What a raw error means: its category, in words, and what happens or what to do."""

    category: str
    words: str
    advice: str


# Raw error text -> category and words, first match wins. ``{platform}``, ``{api}``,
# ``{status}`` and ``{interval}`` are filled in by ``describe_failure``.
FAILURES: tuple[tuple[re.Pattern[str], Failure], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), failure)
    for pattern, failure in (
        (
            r"refused the hub's access|AuthRevoked|AuthError|\b40[13]\b",
            Failure(
                "access_refused",
                "{platform} refused the hub's access",
                "send the merchant a reconnect link; syncing stops until they approve",
            ),
        ),
        (
            r"throttl|\b429\b|rate.?limit|RateLimited",
            Failure(
                "rate_limited",
                "{platform} kept throttling the hub (429)",
                "another app or hub may share this account's quota; "
                "the hub retries every {interval} min",
            ),
        ),
        (
            r"answered (?P<status>5\d\d)|\b(?P<bare>5\d\d)\b",
            Failure(
                "server_error",
                "{platform} answered {status}",
                "{api} is down or overloaded; the hub retries every {interval} min",
            ),
        ),
        (
            r"timed? ?out|Timeout",
            Failure(
                "timeout",
                "{platform} did not answer in time",
                "{api} is slow or unreachable; the hub retries every {interval} min",
            ),
        ),
        (
            r"malformed|truncated",
            Failure(
                "malformed",
                "{platform} sent broken answers",
                "usually passes by itself; the hub retries every {interval} min",
            ),
        ),
        (
            r"no progress|stalled",
            Failure(
                "stalled",
                "a sync of {platform} made no progress",
                "the hub keeps the run going and tells when it moves again",
            ),
        ),
        (
            r"^internal error",
            Failure(
                "internal",
                "the hub failed while syncing {platform} (a bug on our side)",
                "the run's log has the details; the hub retries every {interval} min",
            ),
        ),
        (
            r".",
            Failure(
                "platform_rejected",
                "{platform} refused a request",
                "retrying will not fix it: read the error and the run's log",
            ),
        ),
    )
)


@dataclass(frozen=True)
class Described:
    category: str
    words: str
    advice: str


def describe_failure(error: str, *, platform: str, interval_minutes: int = 15) -> Described:
    """The category and plain words of a raw error (``FAILURES``, first match)."""
    for pattern, failure in FAILURES:
        match = pattern.search(error or "")
        if match is None:
            continue
        groups = match.groupdict()
        values = {
            "platform": PLATFORM_LABELS.get(platform, platform.title() or "The platform"),
            "api": PLATFORM_APIS.get(platform, "the platform's API"),
            "status": groups.get("status") or groups.get("bare") or "",
            "interval": interval_minutes,
        }
        return Described(
            failure.category, failure.words.format(**values), failure.advice.format(**values)
        )
    raise AssertionError("unreachable: the last pattern matches everything")  # pragma: no cover


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --- opening, updating, resolving --------------------------------------------------------------


@functools.cache
def _insert_statement(dialect: str) -> sa.Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(INCIDENTS).on_conflict_do_nothing().returning(INCIDENTS.c.id)


def _open_incident(
    session: Session, integration_id: uuid.UUID | None, cause: IncidentCause, *, lock: bool = False
) -> Incident | None:
    """The open incident of ``cause`` (of the app itself when ``integration_id`` is None);
    ``lock`` holds its row until the transaction ends (PostgreSQL; SQLite's write lock
    already does), so concurrent runs update it in turn."""
    statement = select(Incident).where(
        Incident.integration_id == integration_id
        if integration_id is not None
        else col(Incident.integration_id).is_(None),
        Incident.cause == cause.value,
        Incident.status == IncidentStatus.OPEN.value,
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.exec(statement).first()


def _raise(
    session: Session,
    *,
    integration: Integration | None,
    cause: IncidentCause,
    title: str | Callable[[Incident], str],
    advice: str,
    error: str | None = None,
    category: str | None = None,
    stream: str | None = None,
    run_id: uuid.UUID | None = None,
) -> Incident:
    """Open the integration's incident of ``cause`` (the app's, for no integration), or
    update the open one (last seen, occurrences, latest error, affected streams). Emits
    ``incident_opened`` once.

    ``title`` may be a function of the incident as updated (its streams, its opening time).
    Concurrent callers (runs of several streams ending at once) are kept apart by the partial
    unique index (one insert wins) and the row lock (updates take turns).
    """
    now = datetime.now(UTC)
    integration_id = integration.id if integration is not None else None
    incident = _open_incident(session, integration_id, cause, lock=True)
    if incident is None:
        candidate = Incident(
            integration_id=integration_id, cause=cause.value, category=category, title="",
            advice=advice, latest_error=(error or "")[:2000] or None,
            streams=[stream] if stream else [], opened_at=now, last_seen_at=now,
        )  # fmt: skip
        candidate.title = title(candidate) if callable(title) else title
        values = {column.name: getattr(candidate, column.name) for column in INCIDENTS.columns}
        statement = _insert_statement(session.get_bind().dialect.name)
        if session.execute(statement, values).scalar_one_or_none() is not None:
            incident = _open_incident(session, integration_id, cause)
            assert incident is not None
            _emit(session, incident, integration, "incident_opened", run_id)
            return incident
        # Another transaction opened it meanwhile: update that one, in turn.
        incident = _open_incident(session, integration_id, cause, lock=True)
        assert incident is not None
    incident.occurrences += 1
    incident.last_seen_at = now
    incident.category = category or incident.category
    if error:
        incident.latest_error = error[:2000]
    if stream and stream not in incident.streams:
        incident.streams = [*incident.streams, stream]
    incident.title = title(incident) if callable(title) else title
    incident.advice = advice
    session.add(incident)
    return incident


def _resolve(
    session: Session,
    incident: Incident,
    resolution: str,
    integration: Integration | None = None,
) -> None:
    incident.status = IncidentStatus.RESOLVED.value
    incident.resolved_at = datetime.now(UTC)
    incident.resolution = resolution[:500]
    session.add(incident)
    session.flush()
    if incident.integration_id is not None:
        integration = integration or session.get(Integration, incident.integration_id)
        if integration is None:
            return
    _emit(session, incident, integration, "incident_resolved", None)


def _emit(
    session: Session,
    incident: Incident,
    integration: Integration | None,
    kind: str,
    run_id: uuid.UUID | None,
) -> None:
    """The bell and the alert webhook, through the alerts service's public ``notify``."""
    name = integration.display_name if integration is not None else _subject(incident)
    if kind == "incident_opened" and incident.cause == IncidentCause.ACCESS_LOST.value:
        # What to do comes first: this one needs a person (the merchant) to act.
        message = f"{name} needs to be reconnected: {incident.title}"
    elif kind == "incident_opened":
        message = f"{name}: {incident.title} — {incident.advice}"
    else:
        message = f"{name}: resolved: {incident.title} ({incident.resolution})"
    alerts.notify(
        session=session,
        kind=kind,
        message=message,
        integration_id=integration.id if integration is not None else None,
        run_id=run_id,
        incident=incident_row(incident, integration),
    )


def stream_failed(
    *,
    session: Session,
    integration: Integration,
    stream: str,
    error: str,
    interval_minutes: int,
    run_id: uuid.UUID | None = None,
) -> Incident:
    """A run of ``stream`` failed: the integration's ``stream_failing`` incident counts it."""
    described = describe_failure(
        error, platform=integration.platform, interval_minutes=interval_minutes
    )

    def title(incident: Incident) -> str:
        streams = f"for {_plural(len(incident.streams) or 1, 'stream')}"
        return f"{described.words} {streams} since {_hhmm(incident.opened_at)}"

    return _raise(
        session, integration=integration, cause=IncidentCause.STREAM_FAILING, title=title,
        advice=described.advice, error=error, category=described.category, stream=stream,
        run_id=run_id,
    )  # fmt: skip


def stream_stalled(
    *, session: Session, integration: Integration, stream: str, reason: str
) -> Incident:
    label = PLATFORM_LABELS.get(integration.platform, integration.platform)

    def title(incident: Incident) -> str:
        streams = sorted(incident.streams)
        return f"{_plural(len(streams), 'sync')} of {label} made no progress ({', '.join(streams)})"

    return _raise(
        session, integration=integration, cause=IncidentCause.STALLED, title=title,
        advice=f"{reason}; the hub keeps the run going and resolves this when it moves again",
        error=reason, category="stalled", stream=stream,
    )  # fmt: skip


def stream_succeeded(*, session: Session, integration: Integration, stream: str) -> None:
    """A run of ``stream`` succeeded: it no longer counts in a failing or stalled incident
    (resolved when no stream is left), and access evidently works again."""
    for cause in (IncidentCause.STREAM_FAILING, IncidentCause.STALLED):
        incident = _open_incident(session, integration.id, cause, lock=True)
        if incident is None or (incident.streams and stream not in incident.streams):
            continue
        left = [name for name in incident.streams if name != stream]
        if left:
            incident.streams = left
            incident.title = re.sub(
                r"for \d+ streams?", f"for {_plural(len(left), 'stream')}", incident.title
            )
            session.add(incident)
            continue
        _resolve(session, incident, f"{stream} synced at {_hhmm(datetime.now(UTC))}", integration)
    access = _open_incident(session, integration.id, IncidentCause.ACCESS_LOST)
    if access is not None:
        _resolve(session, access, f"{stream} synced again", integration)


def stream_moving(*, session: Session, integration: Integration, stream: str) -> None:
    """A stalled run stored a page again: it no longer counts as stalled."""
    incident = _open_incident(session, integration.id, IncidentCause.STALLED, lock=True)
    if incident is None:
        return
    left = [name for name in incident.streams if name != stream]
    if left:
        incident.streams = left
        session.add(incident)
    else:
        _resolve(session, incident, f"{stream} moved again", integration)


def access_lost(
    *, session: Session, integration: Integration, error: str, run_id: uuid.UUID | None = None
) -> Incident:
    label = PLATFORM_LABELS.get(integration.platform, integration.platform)
    return _raise(
        session, integration=integration, cause=IncidentCause.ACCESS_LOST,
        title=f"{label} refused the hub's access since {_hhmm(datetime.now(UTC))}",
        advice="send the merchant a reconnect link; scheduled syncs stop until they approve",
        error=error, category="access_refused", run_id=run_id,
    )  # fmt: skip


def uninstalled(*, session: Session, integration_id: uuid.UUID) -> Incident | None:
    """The merchant removed the app (Shopify's ``app/uninstalled``)."""
    integration = session.get(Integration, integration_id)
    if integration is None:
        return None
    return _raise(
        session, integration=integration, cause=IncidentCause.UNINSTALLED,
        title=f"The merchant removed the app from {integration.shop_domain or 'their shop'}",
        advice="the hub's access is gone and syncing stopped; send a reconnect link if this "
        "was a mistake",
        category="uninstalled",
    )  # fmt: skip


def declined(*, session: Session, integration_id: uuid.UUID) -> Incident | None:
    """The merchant pressed Decline on a connect link."""
    integration = session.get(Integration, integration_id)
    if integration is None:
        return None
    return _raise(
        session, integration=integration, cause=IncidentCause.DECLINED,
        title="The merchant declined the connection request",
        advice="talk to the merchant, then send a new connect link",
        category="declined",
    )  # fmt: skip


def webhook_subscription_removed(
    *, session: Session, integration_id: uuid.UUID, topic: str
) -> Incident | None:
    integration = session.get(Integration, integration_id)
    if integration is None:
        return None
    return _raise(
        session, integration=integration, cause=IncidentCause.WEBHOOK_SUBSCRIPTION_REMOVED,
        title=f"The {topic} webhook subscription is gone",
        advice="changes arrive only with scheduled syncs; reconnect to subscribe again",
        category="webhook", error=topic,
    )  # fmt: skip


def count_drift(
    *, session: Session, integration: Integration, stream: str, hub: int, platform: int
) -> Incident:
    """After a full pass the hub's count of ``stream`` strays from the platform's own."""
    label = PLATFORM_LABELS.get(integration.platform, integration.platform)
    missing = platform - hub
    gap = f"{missing:,} missing" if missing > 0 else f"{-missing:,} more than {label} has"
    return _raise(
        session, integration=integration, cause=IncidentCause.COUNT_DRIFT,
        title=f"{stream}: the hub holds {hub:,} records, {label} counts {platform:,} ({gap})",
        advice="run a full resync of the stream; if the gap stays, check its logs for "
        "skipped records",
        error=f"{stream}: hub {hub}, platform {platform}", category="count_drift", stream=stream,
    )  # fmt: skip


def count_matches(*, session: Session, integration: Integration, stream: str) -> None:
    """A full pass of ``stream`` ended within the threshold: it no longer drifts."""
    incident = _open_incident(session, integration.id, IncidentCause.COUNT_DRIFT, lock=True)
    if incident is None or stream not in incident.streams:
        return
    left = [name for name in incident.streams if name != stream]
    if left:
        incident.streams = left
        session.add(incident)
    else:
        _resolve(session, incident, f"{stream} matches the platform's count again", integration)


def access_returned(*, session: Session, integration_id: uuid.UUID) -> None:
    """The integration is connected again: its access incidents are over."""
    integration = session.get(Integration, integration_id)
    for cause in (
        IncidentCause.ACCESS_LOST,
        IncidentCause.UNINSTALLED,
        IncidentCause.DECLINED,
        IncidentCause.CONNECT_LINK_EXPIRED_UNUSED,
    ):
        incident = _open_incident(session, integration_id, cause)
        if incident is not None:
            _resolve(session, incident, "connected again", integration)


def lwa_secret_expiring(*, session: Session, deadline: datetime, now: datetime) -> Incident:
    """The app's LWA client secret nears Amazon's 180-day deadline: every SP-API call of
    every Amazon integration fails after it. One incident, for the app (no integration)."""
    days = max((deadline - now).days, 0)
    when = deadline.strftime("%d %b %Y")
    title = (
        f"The client secret must be rotated by {when} ({_plural(days, 'day')} left)"
        if deadline > now
        else f"The client secret passed its 180 days on {when}: every Amazon integration fails"
    )
    return _raise(
        session, integration=None, cause=IncidentCause.LWA_SECRET_EXPIRING, title=title,
        advice="an admin rotates it in Solution Provider Portal, then enters it in Settings → "
        "Amazon app (or hub amazon rotate-secret; docs/amazon.md)",
        category="credentials",
    )  # fmt: skip


def lwa_secret_rotated(
    *, session: Session, resolution: str = "the client secret was rotated"
) -> None:
    """A secret far from its deadline is configured (or no integration uses it any more):
    the expiry incident is over."""
    for incident in session.exec(
        select(Incident).where(
            Incident.cause == IncidentCause.LWA_SECRET_EXPIRING.value,
            Incident.status == IncidentStatus.OPEN.value,
        )
    ).all():
        _resolve(session, incident, resolution)


def reauthorization_due(
    *, session: Session, integration: Integration, due: datetime, now: datetime
) -> Incident:
    """The seller's yearly authorization of the app ends at ``due``."""
    when = due.strftime("%d %b %Y")
    title = (
        f"The seller must re-authorize the app by {when}"
        if due > now
        else f"The seller's yearly authorization ended on {when}"
    )
    return _raise(
        session, integration=integration, cause=IncidentCause.AMAZON_REAUTHORIZATION_DUE,
        title=title,
        advice="the seller renews it in Seller Central (Apps and Services → Manage Your Apps), "
        "or send them a reconnect link",
        category="credentials",
    )  # fmt: skip


def reauthorized(*, session: Session, integration: Integration) -> None:
    """The seller authorized the app again: the year starts over."""
    incident = _open_incident(session, integration.id, IncidentCause.AMAZON_REAUTHORIZATION_DUE)
    if incident is not None:
        _resolve(session, incident, "the seller authorized the app again", integration)


def sweep_expired_links(*, session: Session, now: datetime | None = None) -> int:
    """Integrations still pending whose every connect link expired unused get an incident
    (once). Cheap: only pending integrations with an expired, unused link are read."""
    now = now or datetime.now(UTC)
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
    expired_link = (
        select(ConnectLink.id)
        .where(
            col(ConnectLink.integration_id) == col(Integration.id),
            col(ConnectLink.expires_at) <= now,
            col(ConnectLink.used_at).is_(None),
            col(ConnectLink.declined_at).is_(None),
            col(ConnectLink.revoked_at).is_(None),
        )
        .exists()
    )
    already = (
        select(Incident.id)
        .where(
            col(Incident.integration_id) == col(Integration.id),
            Incident.cause == IncidentCause.CONNECT_LINK_EXPIRED_UNUSED.value,
        )
        .exists()
    )
    rows = session.exec(
        select(Integration).where(
            Integration.status == IntegrationStatus.PENDING.value,
            expired_link,
            ~live_link,
            ~already,
        )
    ).all()
    for integration in rows:
        _raise(
            session, integration=integration, cause=IncidentCause.CONNECT_LINK_EXPIRED_UNUSED,
            title="The connect link expired before the merchant used it",
            advice="send the merchant a new connect link, or discard the integration",
            category="connect_link",
        )  # fmt: skip
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
            incident = _open_incident(session, integration.id, IncidentCause.REFRESH_TOKEN_EXPIRING)
            if incident is not None:
                _resolve(session, incident, "the token was refreshed", integration)
            continue
        at_risk += 1
        days = max(0, left.days)
        title = (
            "Shopify access has ended: the refresh token passed its 90 days unused"
            if left <= timedelta(0)
            else f"Shopify access ends in {_plural(days, 'day') if days else 'less than a day'}"
            " unless the token is refreshed"
        )
        current = _open_incident(session, integration.id, IncidentCause.REFRESH_TOKEN_EXPIRING)
        if current is not None and current.title == title:
            continue  # told already; the sweep runs every few seconds
        _raise(
            session, integration=integration, cause=IncidentCause.REFRESH_TOKEN_EXPIRING,
            title=title,
            advice="resume the integration or run a sync (it refreshes the token for another "
            "90 days); once ended, reconnect it from the shop's Shopify admin",
            category="refresh_token",
        )  # fmt: skip
    return at_risk


# --- what the screens read ---------------------------------------------------------------------


# Incidents of an app itself (no integration): what they concern, where to act, the platform.
APP_INCIDENTS: dict[str, tuple[str, str, str]] = {
    IncidentCause.LWA_SECRET_EXPIRING.value: ("Amazon app", routes.AMAZON_APP, "amazon"),
}


def _app_incident(incident: Incident) -> tuple[str, str, str]:
    return APP_INCIDENTS.get(incident.cause, ("The hub", routes.SETTINGS, ""))


def _subject(incident: Incident) -> str:
    return _app_incident(incident)[0]


def incident_row(incident: Incident, integration: Integration | None) -> dict[str, Any]:
    """One incident as the screens and the alert webhook read it; ``href`` is where to act
    (the integration's page, or the app's settings page for an incident of the app)."""
    if incident.integration_id is None:
        subject, href, platform = _app_incident(incident)
    else:
        subject = integration.display_name if integration else ""
        platform = integration.platform if integration else ""
        href = routes.integration_detail(str(incident.integration_id))
    return {
        "id": str(incident.id),
        "integration_id": str(incident.integration_id or ""),
        "integration": subject,
        "href": href,
        "platform": platform,
        "cause": incident.cause,
        "category": incident.category or "",
        "status": incident.status,
        "title": incident.title,
        "advice": incident.advice,
        "text": f"{incident.title} — {incident.advice}" if incident.advice else incident.title,
        "latest_error": incident.latest_error or "",
        "streams": list(incident.streams),
        "stream_count": len(incident.streams),
        "occurrences": incident.occurrences,
        "opened_at": incident.opened_at.isoformat(),
        "last_seen_at": incident.last_seen_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else "",
        "resolution": incident.resolution or "",
    }


def list_incidents(
    *,
    session: Session,
    status: str = IncidentStatus.OPEN.value,
    integration_id: uuid.UUID | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Incidents (open ones by default), latest seen first: the bell and the attention panel
    (all integrations) or an integration's page (one)."""
    statement = select(Incident, Integration).join(
        Integration, col(Integration.id) == col(Incident.integration_id), isouter=True
    )
    if status:
        statement = statement.where(Incident.status == status)
    if integration_id is not None:
        statement = statement.where(Incident.integration_id == integration_id)
    statement = statement.order_by(col(Incident.last_seen_at).desc(), col(Incident.id)).limit(limit)
    rows = session.exec(statement).all()
    return [incident_row(incident, integration) for incident, integration in rows]


def open_count(*, session: Session, integration_id: uuid.UUID | None = None) -> int:
    statement = (
        select(func.count())
        .select_from(Incident)
        .where(Incident.status == IncidentStatus.OPEN.value)
    )
    if integration_id is not None:
        statement = statement.where(Incident.integration_id == integration_id)
    return int(session.exec(statement).one())
