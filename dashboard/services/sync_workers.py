"""Which process runs a run: worker ids that let any process on the same host prove that
another one has ended (crash recovery, webhook recovery), and liveness beats in
``hub_workers`` that tell any process on any host within seconds."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from dashboard.models import HubWorker
from dashboard.settings import get_settings

# A process beats every WORKER_BEAT_EVERY seconds; one silent for WORKER_DEAD_AFTER is dead:
# its runs are resumed elsewhere (the sweep looks every few seconds) well within 30 s.
WORKER_BEAT_EVERY = 5.0
WORKER_DEAD_AFTER = timedelta(seconds=15)
WORKERS: sa.Table = HubWorker.__table__  # type: ignore[attr-defined]

# --- which process runs a run ------------------------------------------------------------------
#
# A worker id is ``host:pid:start:scope``: ``start`` is the process's start time (clock ticks
# since boot) and ``scope`` names the kernel boot and pid namespace. Together they let any
# process on the same host and namespace prove that a run's process has ended, even when its
# pid was reused, without waiting for the heartbeat to go stale. Elsewhere only the heartbeat
# tells.


def _process_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from /proc; None when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parens
    return fields[0], fields[19]


@functools.cache
def _pid_scope() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{boot}/{namespace}").hex[:10]


def worker_host() -> str:
    """This host's name in worker ids: HUB_WORKER_HOST, else the hostname."""
    return get_settings().worker_host or socket.gethostname()


def worker_id() -> str:
    host, pid = worker_host(), os.getpid()
    stat, scope = _process_stat(pid), _pid_scope()
    if stat is None or not scope:
        return f"{host}:{pid}"
    return f"{host}:{pid}:{stat[1]}:{scope}"


def process_gone(worker: str | None) -> bool:
    """True only when ``worker`` is provably a process of this host that has ended."""
    parts = (worker or "").rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    host, pid, started, scope = parts
    if host != worker_host() or not scope or scope != _pid_scope():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    stat = _process_stat(int(pid))
    if stat is None:
        return False
    state, ticks = stat
    return ticks != started or state in ("Z", "X")  # pid reused, or killed and not yet reaped


# --- liveness ----------------------------------------------------------------------------------


def beat(session: Session, *, worker: str, kind: str, capacity: int, running: int) -> None:
    """Record that ``worker`` is alive (insert its row on the first beat)."""
    now = datetime.now(UTC)
    updated = session.execute(
        sa.update(WORKERS)
        .where(WORKERS.c.id == worker)
        .values(heartbeat_at=now, capacity=capacity, running=running)
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        session.add(
            HubWorker(
                id=worker, host=worker.split(":", 1)[0], kind=kind, capacity=capacity,
                running=running, started_at=now, heartbeat_at=now,
            )
        )  # fmt: skip


def forget(session: Session, worker: str) -> None:
    """An orderly stop: the process no longer counts as a worker."""
    session.execute(sa.delete(WORKERS).where(WORKERS.c.id == worker))


def silent_workers(session: Session, workers: Collection[str | None]) -> set[str]:
    """Those of ``workers`` that beat once and then fell silent for ``WORKER_DEAD_AFTER``:
    dead, on whichever host. A worker that never beat (``hub sync``) is not among them."""
    return _by_last_beat(session, workers, alive=False)


def beating_workers(session: Session, workers: Collection[str | None]) -> set[str]:
    """Those of ``workers`` that beat within ``WORKER_DEAD_AFTER``: alive, on any host."""
    return _by_last_beat(session, workers, alive=True)


def _by_last_beat(session: Session, workers: Collection[str | None], *, alive: bool) -> set[str]:
    names = {worker for worker in workers if worker}
    if not names:
        return set()
    cutoff = datetime.now(UTC) - WORKER_DEAD_AFTER
    beat_at = col(HubWorker.heartbeat_at)
    recent = beat_at >= cutoff if alive else beat_at < cutoff
    return set(session.exec(select(HubWorker.id).where(col(HubWorker.id).in_(names), recent)).all())


def live_workers(session: Session) -> list[HubWorker]:
    """The processes that beat within ``WORKER_DEAD_AFTER``, oldest first."""
    cutoff = datetime.now(UTC) - WORKER_DEAD_AFTER
    return list(
        session.exec(
            select(HubWorker)
            .where(col(HubWorker.heartbeat_at) >= cutoff)
            .order_by(col(HubWorker.started_at))
        ).all()
    )


def prune_dead_workers(session: Session, *, older_than: timedelta = timedelta(hours=1)) -> None:
    """Rows of processes dead for long: nothing refers to them any more."""
    cutoff = datetime.now(UTC) - older_than
    session.execute(sa.delete(WORKERS).where(WORKERS.c.heartbeat_at < cutoff))
