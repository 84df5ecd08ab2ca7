"""What the benches tell about single integrations' runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from dashboard.models import SyncRun


def describe(runs: list[SyncRun], origin: datetime) -> str:
    """Each run: queued, started and finished, in seconds after ``origin``."""

    def at(moment: datetime | None) -> str:
        return "-" if moment is None else f"{(moment - origin).total_seconds():.2f}"

    return "; ".join(
        f"{run.stream} queued {at(run.created_at)} ran {at(run.started_at)}-{at(run.finished_at)}"
        for run in sorted(runs, key=lambda run: run.started_at or origin)
    )


def last_stream_waits(per_integration: Iterable[list[SyncRun]]) -> list[float]:
    """Per integration, seconds from the end of its first run to the start of its last:
    how long its last stream waited for a slot (with 3 streams and at most 2 of one
    integration at once, the third always waits for one of the others)."""
    waits = []
    for runs in per_integration:
        started = sorted(
            ((r.started_at, r) for r in runs if r.started_at is not None), key=lambda p: p[0]
        )
        ends = [r.finished_at for _, r in started[:-1] if r.finished_at is not None]
        if ends and min(ends) <= started[-1][0]:
            waits.append((started[-1][0] - min(ends)).total_seconds())
    return waits
