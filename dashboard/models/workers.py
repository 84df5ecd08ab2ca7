"""Which hub processes are alive: one row per process that runs syncs, beaten every few
seconds, so any other process (on any host) can tell within seconds that one has died."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from dashboard.models.columns import ts


class HubWorker(SQLModel, table=True):
    """A live (or recently dead) process running the sync engine: a web worker or a
    ``hub worker``. Removed at an orderly stop; a stale ``heartbeat_at`` means it died."""

    __tablename__ = "hub_workers"

    id: str = Field(primary_key=True, max_length=128)  # the worker id runs are owned by
    host: str = Field(max_length=128)
    kind: str = Field(max_length=16)  # "web" (a serving worker) or "worker" (`hub worker`)
    capacity: int = 0  # runs it may execute at once
    running: int = 0  # runs it executed at its last beat
    started_at: datetime = ts(nullable=False, default_now=True)
    heartbeat_at: datetime = ts(nullable=False, default_now=True)
