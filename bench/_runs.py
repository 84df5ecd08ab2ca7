"""What the scale bench tells about the runs it made: throughput, fairness, queue waits."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterable
from datetime import datetime

from _stats import percentile
from sqlmodel import select

from dashboard.db import session_scope
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


def report(wall: float, queued: float, run_count: int, *, in_flight: int) -> None:
    """Records/s, runs/s, fairness and queue waits, from the runs table; ``in_flight``: how
    many runs the processes run at once."""
    with session_scope() as session:
        runs = session.exec(select(SyncRun)).all()
    statuses = {run.status for run in runs}
    total = sum(run.records_read for run in runs)
    per_integration: dict[uuid.UUID, list[SyncRun]] = {}
    for run_row in runs:
        per_integration.setdefault(run_row.integration_id, []).append(run_row)
    started_rates: list[tuple[datetime, float, list[SyncRun]]] = []
    for integration_runs in per_integration.values():
        start = min(r.started_at for r in integration_runs if r.started_at)
        end = max(r.finished_at for r in integration_runs if r.finished_at)
        seconds = max((end - start).total_seconds(), 1e-3)
        rate = sum(r.records_read for r in integration_runs) / seconds
        started_rates.append((start, rate, integration_runs))
    started_rates.sort(key=lambda entry: entry[0])
    rates = [rate for _, rate, _ in started_rates]
    waits = [(r.started_at - r.created_at).total_seconds() for r in runs if r.started_at]
    print(
        f"syncs: {run_count} runs ({', '.join(sorted(statuses))}), {total} records in "
        f"{wall:.1f} s = {total / wall:,.0f} records/s, {len(runs) / wall:,.1f} runs/s "
        f"(all queued after {queued:.1f} s)"
    )
    print(
        f"fairness: per-integration throughput min/max = {min(rates) / max(rates):.2f} "
        f"(min {min(rates):,.0f}, median {statistics.median(rates):,.0f}, "
        f"max {max(rates):,.0f} records/s); queue wait median {statistics.median(waits):.1f} s, "
        f"p99 {percentile(waits, 0.99):.1f} s, max {max(waits):.1f} s"
    )
    # min/max is set by the two most extreme of thousands of integrations (the first runs,
    # started before the processes fill up, are the fastest); p5/p95 shows the bulk.
    print(
        f"fairness p5/p95 = {percentile(rates, 0.05) / percentile(rates, 0.95):.2f}; "
        f"machine load average {' / '.join(f'{load:.1f}' for load in os.getloadavg())}"
    )
    # Where the extremes sit: integrations in the order they started, in tenths (the first
    # and last tenths run while the processes fill up and drain).
    tenth = max(1, len(rates) // 10)
    medians = [statistics.median(rates[i : i + tenth]) for i in range(0, len(rates), tenth)]
    print("median throughput by start, in tenths: " + " / ".join(f"{m:,.0f}" for m in medians))
    # The same min/max without the integrations that start while the processes fill up and
    # drain (as many as run at once, at each end): the spread of the steady state, beside
    # the load's own ramps (the min/max above stays the figure of record).
    steady = rates[in_flight:-in_flight]
    if steady:
        print(
            f"fairness without the first and last {in_flight} integrations to start: "
            f"min/max = {min(steady) / max(steady):.2f}"
        )
    waits_for_slot = last_stream_waits(per_integration.values())
    if waits_for_slot:
        print(
            f"an integration's last stream started after its first run ended: median "
            f"{statistics.median(waits_for_slot):.2f} s, p95 "
            f"{percentile(waits_for_slot, 0.95):.2f} s"
        )
    first_start = started_rates[0][0]
    for label, (_, rate, extreme_runs) in (
        ("slowest", min(started_rates, key=lambda entry: entry[1])),
        ("fastest", max(started_rates, key=lambda entry: entry[1])),
    ):
        runs_told = describe(extreme_runs, first_start)
        print(f"{label} integration ({rate:,.0f} records/s), its runs: {runs_told}")
    by_worker: dict[str, int] = {}
    for run_row in runs:
        by_worker[run_row.worker or "-"] = by_worker.get(run_row.worker or "-", 0) + 1
    if len(by_worker) > 1:
        shares = ", ".join(f"{count}" for _, count in sorted(by_worker.items()))
        print(f"runs per process: {shares}")
