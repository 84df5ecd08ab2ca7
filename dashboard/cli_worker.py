"""`hub worker`: the sync engine without the web UI, so an operator adds sync capacity on
other hosts. It runs what every hub process runs in the background (docs/configuration.md,
"Several hosts"): liveness beats, claiming queued runs, crash recovery, webhook recovery, the
alert outbox and a bid for the scheduler lease, until SIGTERM or Ctrl-C stops it in order
(its running syncs are interrupted and resume from their checkpoints in another process)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from dashboard.settings import get_settings


async def _serve(concurrency: int | None) -> int:
    from dashboard.services import sync
    from dashboard.services.changefeed import get_feed
    from dashboard.services.lifespan import hub_lifespan

    if concurrency is not None:
        sync.set_engine(sync.SyncEngine(max_concurrency=concurrency))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with hub_lifespan(kind="worker"):
        engine = sync.get_engine()
        print(
            f"hub worker {engine.worker}: up to {engine.capacity} syncs at once, "
            f"woken over {get_feed().backend_name}",
            flush=True,
        )
        await stop.wait()
        print("hub worker stopping: running syncs resume from their checkpoints", flush=True)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.sqlalchemy_url.startswith("sqlite") and settings.sandbox_mounted:
        # Works on one host (same file), but the sandbox lives in the web process.
        print(
            "hub worker: SQLite and the embedded sandbox; fine for a try on this host, "
            "several hosts need PostgreSQL (docs/configuration.md#several-hosts)",
            file=sys.stderr,
        )
    return asyncio.run(_serve(args.concurrency))


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="run syncs without the web UI (add one per host for more sync capacity)",
    )
    worker.add_argument(
        "--concurrency", type=int, default=None,
        help="syncs at once in this process (default HUB_SYNC_MAX_CONCURRENCY)",
    )  # fmt: skip
    worker.set_defaults(func=cmd_worker)
