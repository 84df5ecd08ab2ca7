"""The hub's Prometheus metrics, exposed at ``GET /metrics`` (``dashboard.api.metrics``).

Two kinds, as docs/monitoring.md lists them:
- **events**, counted where they happen: platform requests, throttling and token refreshes
  (``connectors.metrics``), records written and webhooks (here). With several workers
  (``hub serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before they start) each worker writes its
  own files and a scrape, whichever worker answers it, adds them all up.
- **state**, read from the database at scrape time by ``HubStateCollector`` with a few
  indexed queries: runs by status, failing and stalled streams, integrations by status
  (``needs_reauth``), the scheduler's lease holder and lag. The database is the same for
  every worker, so any worker can answer for all.
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.pool import Pool

from dashboard.data_dir import read_or_create_secret
from dashboard.models import (
    Incident,
    IncidentStatus,
    Integration,
    IntegrationStatus,
    RunStatus,
    SchedulerLease,
    StreamConfig,
    SyncRun,
    WebhookEvent,
    WebhookStatus,
)
from dashboard.settings import get_settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TOKEN_FILE_NAME = "metrics.token"  # noqa: S105  a file name
MULTIPROC_DIR_NAME = "metrics-multiproc"
RECENT_RUNS = timedelta(hours=24)  # hub_sync_runs counts runs created this recently
DURATION_WINDOW = timedelta(hours=1)  # hub_sync_run_duration_seconds: runs finished in it
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
# A stream is stalled when it has not finished a run for this many of its intervals, plus
# the grace (a long first backfill, a report Amazon takes its time over).
STALLED_INTERVALS = 3
STALLED_GRACE = timedelta(minutes=30)
_SYNCABLE = (
    IntegrationStatus.CONNECTED.value,
    IntegrationStatus.SYNCING.value,
    IntegrationStatus.ERROR.value,
)
_FINISHED = (
    RunStatus.SUCCEEDED.value,
    RunStatus.PARTIAL.value,
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.INTERRUPTED.value,
)

# --- events -------------------------------------------------------------------------------------

RECORDS_WRITTEN = Counter(
    "hub_records_written",
    "Records the hub wrote to its tables, by kind and operation (inserted, updated, deleted).",
    ["kind", "operation"],
)
WEBHOOKS_RECEIVED = Counter(
    "hub_webhooks_received", "Webhook requests that reached the hub.", ["platform"]
)
WEBHOOKS_VERIFIED = Counter(
    "hub_webhooks_verified", "Webhooks whose signature verified.", ["platform"]
)
WEBHOOKS_REJECTED = Counter(
    "hub_webhooks_rejected",
    "Webhooks refused: too_large, malformed, signature (not the app's HMAC), binding (signed, "
    "but the body does not match its headers or names no integration it may act on).",
    ["platform", "reason"],
)
DB_CONNECTIONS_IN_USE = Gauge(
    "hub_db_pool_connections_in_use",
    "Database connections checked out of the pools of the hub's processes.",
    multiprocess_mode="livesum",
)


def count_records(kind: str, *, inserted: int = 0, updated: int = 0, deleted: int = 0) -> None:
    for operation, count in (("inserted", inserted), ("updated", updated), ("deleted", deleted)):
        if count:
            RECORDS_WRITTEN.labels(kind, operation).inc(count)


def _checked_out(*_: Any) -> None:
    DB_CONNECTIONS_IN_USE.inc()


def _checked_in(*_: Any) -> None:
    DB_CONNECTIONS_IN_USE.dec()


# Every pool of the process (the engine is built in dashboard.db, lazily, per URL).
if not sa.event.contains(Pool, "checkout", _checked_out):
    sa.event.listen(Pool, "checkout", _checked_out)
    sa.event.listen(Pool, "checkin", _checked_in)


# --- state, read at scrape time ----------------------------------------------------------------


class HubStateCollector(Collector):
    """Reads what the database knows at scrape time; a database it cannot read is reported
    as ``hub_database_up 0`` rather than failing the scrape."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self._now = now

    def collect(self) -> Iterable[Metric]:
        from dashboard.db import get_engine

        up = GaugeMetricFamily("hub_database_up", "1 when the metrics could read the database.")
        try:
            engine = get_engine()
            with engine.connect() as connection:
                metrics = list(self._read(connection, self._now or datetime.now(UTC)))
        except Exception as error:  # a scrape must still answer, saying the database is down
            log.warning("metrics could not read the database: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics
        yield from _pool_metrics(engine)

    def _read(self, connection: sa.Connection, now: datetime) -> Iterator[Metric]:
        runs = SyncRun.__table__  # type: ignore[attr-defined]
        integrations = Integration.__table__  # type: ignore[attr-defined]
        streams = StreamConfig.__table__  # type: ignore[attr-defined]
        leases = SchedulerLease.__table__  # type: ignore[attr-defined]
        joined = runs.join(integrations, integrations.c.id == runs.c.integration_id)

        # Runs of the last 24 h by status, and every queued or running one (both indexed).
        counted: dict[tuple[str, str, str], float] = defaultdict(float)
        for where in (
            runs.c.created_at >= now - RECENT_RUNS,
            sa.and_(
                runs.c.status.in_((RunStatus.QUEUED.value, RunStatus.RUNNING.value)),
                runs.c.created_at < now - RECENT_RUNS,
            ),
        ):
            statement = (
                sa.select(integrations.c.platform, runs.c.stream, runs.c.status, sa.func.count())
                .select_from(joined)
                .where(where)
                .group_by(integrations.c.platform, runs.c.stream, runs.c.status)
            )
            for platform, stream, status, count in connection.execute(statement):
                counted[(platform, stream, status)] += count
        family = GaugeMetricFamily(
            "hub_sync_runs",
            "Sync runs created in the last 24 hours (and older ones still queued or running), "
            "by status.",
            labels=["platform", "stream", "status"],
        )
        for labels, count in sorted(counted.items()):
            family.add_metric(list(labels), count)
        yield family

        yield self._durations(connection, joined, runs, integrations, now)
        yield from self._streams(connection, runs, integrations, streams, now)

        by_status = GaugeMetricFamily(
            "hub_integrations",
            "Integrations by platform and status (needs_reauth: the merchant must reconnect).",
            labels=["platform", "status"],
        )
        statement = sa.select(
            integrations.c.platform, integrations.c.status, sa.func.count()
        ).group_by(integrations.c.platform, integrations.c.status)
        for platform, status, count in connection.execute(statement):
            by_status.add_metric([platform, status], count)
        yield by_status

        # Open incidents by platform and cause (the index on status serves the filter).
        incidents_table = Incident.__table__  # type: ignore[attr-defined]
        open_incidents = GaugeMetricFamily(
            "hub_open_incidents",
            "Open incidents by platform and cause (what the bell and the Overview show).",
            labels=["platform", "cause"],
        )
        statement = (
            sa.select(integrations.c.platform, incidents_table.c.cause, sa.func.count())
            .select_from(
                incidents_table.join(
                    integrations, integrations.c.id == incidents_table.c.integration_id
                )
            )
            .where(incidents_table.c.status == IncidentStatus.OPEN.value)
            .group_by(integrations.c.platform, incidents_table.c.cause)
        )
        for platform, cause, count in connection.execute(statement):
            open_incidents.add_metric([platform, cause], count)
        yield open_incidents

        lease = connection.execute(sa.select(leases.c.holder, leases.c.expires_at)).first()
        held = lease is not None and _aware(lease.expires_at) >= now
        held_family = GaugeMetricFamily(
            "hub_scheduler_lease_held", "1 while a live process holds the scheduler lease."
        )
        held_family.add_metric([], 1 if held else 0)
        yield held_family
        holder = GaugeMetricFamily(
            "hub_scheduler_lease_holder",
            "The process holding the scheduler lease (host:pid:...), value 1.",
            labels=["holder"],
        )
        if lease is not None and held:
            holder.add_metric([lease.holder], 1)
        yield holder

        # The scheduler's lag: how long the most overdue due stream has waited to be queued.
        statement = (
            sa.select(sa.func.min(streams.c.next_run_at))
            .select_from(streams.join(integrations, integrations.c.id == streams.c.integration_id))
            .where(
                streams.c.enabled.is_(True),
                streams.c.paused.is_(False),
                integrations.c.status.in_(_SYNCABLE),
            )
        )
        oldest_due = connection.execute(statement).scalar()
        lag = GaugeMetricFamily(
            "hub_scheduler_lag_seconds",
            "Seconds since the most overdue stream was due to run (0 when none is overdue).",
        )
        lag.add_metric(
            [], max(0.0, (now - _aware(oldest_due)).total_seconds()) if oldest_due else 0
        )
        yield lag
        yield from self._webhook_backlog(connection, now)

    def _webhook_backlog(self, connection: sa.Connection, now: datetime) -> Iterator[Metric]:
        """Webhook events stored and not applied yet (queued in a process, being applied, or
        waiting for a retry), read off the index on status: a count that keeps growing, or an
        oldest one far past the retries' 7.5 minutes, means the hub does not keep up."""
        events = WebhookEvent.__table__  # type: ignore[attr-defined]
        statement = (
            sa.select(events.c.platform, sa.func.count(), sa.func.min(events.c.received_at))
            .where(events.c.status == WebhookStatus.RECEIVED.value)
            .group_by(events.c.platform)
        )
        waiting = GaugeMetricFamily(
            "hub_webhook_events_unapplied",
            "Webhook events stored and not applied yet, by platform.",
            labels=["platform"],
        )
        oldest = GaugeMetricFamily(
            "hub_webhook_oldest_unapplied_seconds",
            "Seconds since the oldest webhook event not applied yet arrived (0 when none waits).",
        )
        first: datetime | None = None
        for platform, count, received in connection.execute(statement):
            waiting.add_metric([platform], count)
            first = _aware(received) if first is None else min(first, _aware(received))
        oldest.add_metric([], max(0.0, (now - first).total_seconds()) if first else 0)
        yield waiting
        yield oldest

    def _durations(
        self, connection: sa.Connection, joined: Any, runs: Any, integrations: Any, now: datetime
    ) -> Metric:
        # created_at narrows through its index; a run that took more than a day is left out.
        statement = (
            sa.select(integrations.c.platform, runs.c.stream, runs.c.started_at, runs.c.finished_at)
            .select_from(joined)
            .where(
                runs.c.created_at >= now - DURATION_WINDOW - RECENT_RUNS,
                runs.c.finished_at >= now - DURATION_WINDOW,
                runs.c.started_at.is_not(None),
                runs.c.status.in_(_FINISHED),
            )
        )
        observed: dict[tuple[str, str], list[float]] = defaultdict(list)
        for platform, stream, started, finished in connection.execute(statement):
            seconds = (_aware(finished) - _aware(started)).total_seconds()
            observed[(platform, stream)].append(max(0.0, seconds))
        family = GaugeHistogramMetricFamily(
            "hub_sync_run_duration_seconds",
            "Durations of the sync runs that finished in the last hour.",
            labels=["platform", "stream"],
        )
        for (platform, stream), durations in sorted(observed.items()):
            buckets = [
                (_le(bound), sum(1 for d in durations if d <= bound)) for bound in DURATION_BUCKETS
            ]
            buckets.append(("+Inf", len(durations)))
            family.add_metric([platform, stream], buckets, gsum_value=sum(durations))
        return family

    def _streams(
        self, connection: sa.Connection, runs: Any, integrations: Any, streams: Any, now: datetime
    ) -> Iterator[Metric]:
        """Failing: the stream's last finished run failed. Stalled: no run of it finished for
        ``STALLED_INTERVALS`` intervals plus ``STALLED_GRACE`` while it should run."""
        last_finished = (
            sa.select(runs.c.status)
            .where(
                runs.c.integration_id == streams.c.integration_id,
                runs.c.stream == streams.c.stream,
                runs.c.status.in_(_FINISHED),
            )
            .order_by(runs.c.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        statement = (
            sa.select(
                integrations.c.platform,
                streams.c.stream,
                streams.c.interval_minutes,
                streams.c.last_run_at,
                integrations.c.connected_at,
                last_finished,
            )
            .select_from(streams.join(integrations, integrations.c.id == streams.c.integration_id))
            .where(
                streams.c.enabled.is_(True),
                streams.c.paused.is_(False),
                integrations.c.status.in_(_SYNCABLE),
            )
        )
        failing: dict[tuple[str, str], int] = defaultdict(int)
        stalled: dict[tuple[str, str], int] = defaultdict(int)
        for platform, stream, interval, last_run, connected, last_status in connection.execute(
            statement
        ):
            key = (platform, stream)
            failing[key] += 0
            stalled[key] += 0
            if last_status == RunStatus.FAILED.value:
                failing[key] += 1
            since = last_run or connected
            allowed = timedelta(minutes=interval * STALLED_INTERVALS) + STALLED_GRACE
            if since is not None and now - _aware(since) > allowed:
                stalled[key] += 1
        for name, help_text, counts in (
            ("hub_sync_streams_failing", "Streams whose last finished run failed.", failing),
            (
                "hub_sync_streams_stalled",
                f"Streams that should run but finished no run for {STALLED_INTERVALS} of their "
                "intervals plus 30 minutes.",
                stalled,
            ),
        ):
            family = GaugeMetricFamily(name, help_text, labels=["platform", "stream"])
            for labels, count in sorted(counts.items()):
                family.add_metric(list(labels), count)
            yield family


def _pool_metrics(engine: sa.Engine) -> Iterator[Metric]:
    """This process's pool size (the connections in use come from every process's events)."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    if callable(size):
        family = GaugeMetricFamily(
            "hub_db_pool_size", "Connections a process's database pool keeps (its pool_size)."
        )
        family.add_metric([], float(size()))
        yield family


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _le(bound: float) -> str:
    return repr(float(bound))


# --- exposition ---------------------------------------------------------------------------------


def render() -> tuple[bytes, str]:
    """The scrape's body and content type: every worker's events and the database's state."""
    events = CollectorRegistry()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.MultiProcessCollector(events, path=directory)
    else:
        events = REGISTRY  # one process: its own counters, plus process_* and python_*
    state = CollectorRegistry()
    state.register(HubStateCollector())
    return generate_latest(events) + generate_latest(state), CONTENT_TYPE_LATEST


def metrics_token() -> str:
    """``HUB_METRICS_TOKEN``, or the token generated into the data dir (0600) on first use."""
    settings = get_settings()
    if settings.metrics_token:
        return settings.metrics_token
    return read_or_create_secret(settings.data_dir / TOKEN_FILE_NAME)


def token_matches(presented: str) -> bool:
    """Whether ``presented`` is the metrics token (which is generated first if need be, so
    that the operator finds it in the data dir after the first refused scrape)."""
    expected = metrics_token().encode()
    return bool(presented) and hmac.compare_digest(presented.encode(), expected)


def fresh_multiprocess_dir(data_dir: Path) -> Path:
    """An empty directory for this start's workers: files of an earlier start would add
    counts of processes long gone (prometheus-client's multiprocess mode)."""
    directory = data_dir / MULTIPROC_DIR_NAME
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    return directory


def process_exiting() -> None:
    """A worker stops: its live gauges (connections in use) stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())
