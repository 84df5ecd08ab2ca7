"""`hub sync` and `hub runs`: operators' view of the sync engine."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from dashboard.db import in_session, session_scope
from dashboard.services import runs as runs_service
from dashboard.services import sync


def cmd_sync(args: argparse.Namespace) -> int:
    async def main() -> int:
        engine = sync.get_engine()
        try:
            run_ids = await engine.request_sync(
                integration_id=args.integration, stream=args.stream,
                full_refresh=args.full_refresh,
            )  # fmt: skip
        except (sync.SyncRefused, ValueError) as refused:
            print(f"hub: {refused}", file=sys.stderr)
            return 2
        print("queued " + ", ".join(str(r) for r in run_ids))
        if not args.wait:
            # Without --wait this process would exit and interrupt the runs: run them anyway,
            # the scheduler's process would otherwise pick them up only after they go stale.
            print("running in this process until done (use the dashboard to watch)")
        await engine.wait(run_ids)
        summaries = await in_session(
            lambda s: [
                r
                for r in runs_service.list_runs(session=s, limit=500)
                if r["id"] in {str(i) for i in run_ids}
            ]
        )
        failed = False
        for summary in summaries:
            print(
                f"{summary['stream']:12} {summary['status']:10} read={summary['records_read']} "
                f"inserted={summary['inserted']} updated={summary['updated']} "
                f"skipped={summary['skipped']} {summary['error']}"
            )
            failed |= summary["status"] in {"failed", "cancelled", "interrupted"}
        return 1 if failed else 0

    return asyncio.run(main())


def cmd_runs_list(args: argparse.Namespace) -> int:
    with session_scope() as session:
        rows: list[dict[str, Any]] = runs_service.list_runs(
            session=session, status=args.status or "", limit=args.limit
        )
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
    sync_parser = sub.add_parser("sync", help="sync an integration now")
    sync_parser.add_argument("integration", help="integration id")
    sync_parser.add_argument("--stream", default=None, help="one stream (default: all enabled)")
    sync_parser.add_argument(
        "--full-refresh", action="store_true", help="start the stream over (keeps run history)"
    )
    sync_parser.add_argument("--wait", action="store_true", help="wait and print the result")
    sync_parser.set_defaults(func=cmd_sync)

    runs = sub.add_parser("runs", help="sync runs").add_subparsers(dest="runs", required=True)
    listing = runs.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--status", default=None)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_runs_list)
