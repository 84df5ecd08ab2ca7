"""`hub sync` and `hub runs`: operators' view of the sync engine."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from dashboard.db import in_session, session_scope
from dashboard.services import runs as runs_service
from dashboard.services import scheduler, sync
from dashboard.services.sync_waits import wait_resumed

# Exit codes of `hub sync`: 1 when a run (or the retry that resumed it) did not read its
# stream to the end.
UNSUCCESSFUL = {"failed", "cancelled", "interrupted"}


def _outcome_line(summary: dict[str, Any]) -> str:
    line = (
        f"{summary['stream']:12} {summary['status']:11} read={summary['records_read']} "
        f"inserted={summary['inserted']} updated={summary['updated']} "
        f"deleted={summary['deleted']} skipped={summary['skipped']}"
    )
    return f"{line}  {summary['error']}" if summary["error"] else line


async def _sync(args: argparse.Namespace) -> int:
    engine = sync.get_engine()
    # Like every hub process at start-up: runs of dead processes become interrupted. Their
    # retries stay queued for a hub, unless they are among the streams asked for here.
    await engine.recover_interrupted(adopt=False)
    hub = await in_session(scheduler.lease_holder)
    run_here = args.wait or hub is None
    try:
        run_ids = await engine.request_sync(
            integration_id=args.integration, stream=args.stream,
            full_refresh=args.full_refresh, run_here=run_here,
        )  # fmt: skip
    except (sync.SyncRefused, ValueError) as refused:
        print(f"hub: {refused}", file=sys.stderr)
        return 2
    print("queued " + ", ".join(str(r) for r in run_ids), flush=True)
    if not run_here:
        await _tell_the_hub()
        print(
            f"the running hub ({hub}) starts them now (at most {sync.HANDOVER_EVERY:.0f} s); "
            "follow them with `hub runs list`, or use --wait"
        )
        return 0
    if not args.wait:
        print("no hub is running: running them here until done", flush=True)

    async def resumed(interrupted: uuid.UUID, retry: uuid.UUID) -> None:
        [summary] = await in_session(
            lambda s: runs_service.summaries_of(session=s, run_ids=[interrupted])
        )
        print(_outcome_line(summary), flush=True)
        print(f"{'':12} resumed by run {retry}; waiting for it", flush=True)

    # A run interrupted meanwhile (its process died) is followed to the retry that resumes it.
    final = await wait_resumed(engine, run_ids, on_resumed=resumed)
    summaries = await in_session(lambda s: runs_service.summaries_of(session=s, run_ids=final))
    for summary in summaries:
        print(_outcome_line(summary))
    return 1 if any(s["status"] in UNSUCCESSFUL for s in summaries) else 0


async def _tell_the_hub() -> None:
    """Wake the hub's processes now (the change feed) rather than at their next look."""
    from dashboard.services.changefeed import QUEUE, tell_the_hub

    await tell_the_hub(QUEUE)


def cmd_sync(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_sync(args))
    except KeyboardInterrupt:
        # The runs were stopped in order: interrupted, their retries queued for the hub.
        print("stopped: the interrupted runs resume from their checkpoints", file=sys.stderr)
        return 130


def cmd_runs_list(args: argparse.Namespace) -> int:
    try:
        integration_id = uuid.UUID(args.integration) if args.integration else None
    except ValueError:
        print(f"hub: {args.integration!r} is not an integration id", file=sys.stderr)
        return 2
    with session_scope() as session:
        rows: list[dict[str, Any]] = runs_service.list_runs(
            session=session, status=args.status or "", integration_id=integration_id,
            limit=args.limit,
        )  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['created_at'][:19]}  {row['integration'][:24]:24} {row['stream']:10} "
            f"{row['status']:11} {row['records_read']:>8} records  {row['error'][:60]}"
        )
    return 0


def register(sub: Any) -> None:
    sync_parser = sub.add_parser(
        "sync",
        help="sync an integration now",
        description="Queue a run per stream. With --wait (or when no hub is running) the "
        "runs execute here and the command prints each outcome, following a run that was "
        "interrupted to the retry that resumes it; it exits 1 when a run failed, was "
        "cancelled or interrupted (and not resumed), 2 when the sync is refused.",
    )
    sync_parser.add_argument("integration", help="integration id")
    sync_parser.add_argument("--stream", default=None, help="one stream (default: all enabled)")
    sync_parser.add_argument(
        "--full-refresh", action="store_true", help="start the stream over (keeps run history)"
    )
    sync_parser.add_argument(
        "--wait", action="store_true", help="wait for the runs to end and print their outcomes"
    )
    sync_parser.set_defaults(func=cmd_sync)

    runs = sub.add_parser("runs", help="sync runs").add_subparsers(dest="runs", required=True)
    listing = runs.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--json", action="store_true", help="full summaries as JSON")
    listing.add_argument("--status", default=None)
    listing.add_argument("--integration", default=None, help="one integration's runs")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_runs_list)
