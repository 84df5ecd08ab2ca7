"""What a running run hears and measures besides its batches: rate-limit waits and throttles
from its connector (``_RunObserver``), its progress rate, its heartbeat
(``beat_while_reading``) and whether it counts as stalled."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from connectors.errors import RateLimited
from dashboard.db import in_write_session
from dashboard.models import EventLevel
from dashboard.services.run_log import add_event
from dashboard.services.sync_progress import (
    RunLost,
    _duration,
    _heartbeat,
    _mark_stalled,
    _mark_waiting,
    _RunContext,
    note_report_status,
    report_stall_reason,
)


class ThrottledOut(RateLimited):
    """The run's requests were throttled attempt after attempt: it fails as documented."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


# A wait shorter than this is not worth a write: the run's row shows waits the UI can see.
WAIT_SHOWN_AFTER = 1.0
# A wait this long (or one after a throttle) also goes into the run's log.
WAIT_LOGGED_AFTER = 30.0
RATE_WINDOW = 30.0  # seconds: the rate a run shows is over this last stretch
HEARTBEAT_EVERY = 10.0

log = logging.getLogger("hub.sync")


class _RunObserver:
    """Hears a run's rate-limit waits and throttles from its connector (``connectors.
    ratelimit.observe``): shows the wait on the run, counts throttled attempts, and stops the
    read once they exceed the documented attempts (``RETRY_DELAYS`` + 1)."""

    def __init__(
        self, *, worker: str, retry_delays: tuple[float, ...], context: _RunContext
    ) -> None:
        self._worker = worker
        self._retry_delays = retry_delays
        self._context = context
        self._after_throttle = False

    async def waiting(self, *, seconds: float, reason: str) -> None:
        context = self._context
        context.waiting_until_mono = time.monotonic() + seconds
        if seconds < WAIT_SHOWN_AFTER and not self._after_throttle:
            return
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        note = None
        if self._after_throttle or seconds >= WAIT_LOGGED_AFTER:
            note = f"waiting for the rate limit: next call at {until:%H:%M:%S} UTC ({reason})"
        self._after_throttle = False
        await in_write_session(
            partial(
                _mark_waiting, run_id=context.run_id, worker=self._worker, until=until,
                reason=reason, note=note,
            )
        )  # fmt: skip

    async def preparing(self, *, seconds: float, what: str, status: str) -> None:
        """The platform prepares a report: the run shows it as waiting (when the hub last
        asked, when it asks next) and logs each change of status; its stall clock runs from
        the report's last change (``report_stall_reason``), and from when it is ready."""
        context, now, mono = self._context, datetime.now(UTC), time.monotonic()
        changed = note_report_status(context, what=what, status=status, now_mono=mono)
        if seconds <= 0:  # ready (or given up): what follows is the read's own progress
            context.report_status, context.progress_mono = None, mono
        if seconds <= 0 and not changed:
            return
        await in_write_session(
            partial(
                _mark_waiting, run_id=context.run_id, worker=self._worker,
                until=now + timedelta(seconds=max(seconds, 0)), waiting_for="report",
                reason=f"Amazon is preparing {what} ({status})", checked_at=now,
                note=f"{what[:1].upper()}{what[1:]} is {status} on Amazon" if changed else None,
            )
        )  # fmt: skip

    def quota(self, *, words: str) -> None:
        self._context.quota = words  # the next page's log line says it

    async def throttled(self, *, reason: str, retry_after: float | None) -> None:
        context = self._context
        context.throttled += 1
        self._after_throttle = True
        allowed = len(self._retry_delays) + 1
        await in_write_session(
            partial(
                add_event, run_id=context.run_id, level=EventLevel.WARNING,
                message=f"{reason}: throttled attempt {context.throttled} of {allowed}",
            )
        )  # fmt: skip
        if context.throttled >= allowed:
            raise ThrottledOut(
                f"{reason}, {context.throttled} times in a row", attempts=context.throttled
            )


def _note_progress(context: _RunContext, records: int) -> float | None:
    """A page arrived: the run moves (no stall, no throttle streak); returns the rate over
    the last ``RATE_WINDOW`` seconds."""
    now = time.monotonic()
    context.progress_mono = now
    context.throttled = 0
    context.stalled = False
    context.waiting_until_mono = 0.0
    context.report_status = None
    context.records_read += records
    context.pages += 1
    context.samples.append((now, context.records_read))
    context.samples = [(t, n) for t, n in context.samples if now - t <= RATE_WINDOW]
    first_time, first_count = context.samples[0]
    if len(context.samples) == 1:  # the first page of the window: since the previous page
        first_time, first_count = context.previous_sample
    context.previous_sample = (now, context.records_read)
    span = now - first_time
    return (context.records_read - first_count) / span if span > 0 else None


def _stall_reason(context: _RunContext) -> str | None:
    """Why the run counts as stalled now, or None: no page for longer than the stall limit,
    and no known rate-limit wait that explains it."""
    now = time.monotonic()
    if context.stalled or now < context.waiting_until_mono:
        return None
    if context.report_status is not None:  # the platform prepares a report: its own clock
        return report_stall_reason(context, now_mono=now)
    quiet = now - max(context.progress_mono, context.waiting_until_mono)
    if quiet <= context.stall_seconds:
        return None
    since = datetime.now(UTC) - timedelta(seconds=now - context.progress_mono)
    last = f"page {context.pages}" if context.pages else "the start"
    return (
        f"no progress for {_duration(quiet)} (limit {_duration(context.stall_seconds)}); "
        f"the last progress was {last} at {since:%H:%M:%S} UTC, and no rate-limit wait "
        "explains it"
    )


async def beat_while_reading(
    context: _RunContext, reader: asyncio.Task[Any], *, worker: str
) -> None:
    """The run's heartbeat while ``reader`` reads (batches beat too, but a report being
    prepared can take minutes between batches), naming a stall when progress stops. When
    crash recovery declared the run dead (the beat is refused), it cancels the reader."""
    # Often enough to name a stall within a third of its limit.
    every = min(HEARTBEAT_EVERY, max(context.stall_seconds / 3, 0.05))
    while True:
        await asyncio.sleep(every)
        try:
            owned = await in_write_session(
                partial(_heartbeat, run_id=context.run_id, worker=worker)
            )
            if owned and (reason := _stall_reason(context)) is not None:
                context.stalled = True
                await in_write_session(
                    partial(_mark_stalled, context=context, worker=worker, reason=reason)
                )
        except RunLost:
            owned = False
        except Exception:  # the next beat or batch tries again
            log.warning("heartbeat of run %s failed", context.run_id, exc_info=True)
            continue
        if not owned:
            context.lost = True
            reader.cancel()
            return
