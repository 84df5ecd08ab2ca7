"""Which process runs a run: worker ids that let any process on the same host prove that
another one has ended (crash recovery, webhook recovery)."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from pathlib import Path

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


def worker_id() -> str:
    host, pid = socket.gethostname(), os.getpid()
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
    if host != socket.gethostname() or not scope or scope != _pid_scope():
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
