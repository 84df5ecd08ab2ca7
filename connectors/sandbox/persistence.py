"""The sandbox's state file: what a real platform remembers across its own restarts.

Installed grants, webhook subscriptions, app configuration and the shops and sellers created
(by their parameters: their data is generated from the seed) are written to one JSON file
when they change, and read back on start. Codes, faults, rate-limit buckets, bulk operations,
reports and data changes are not (docs/sandbox.md, "Restarts").

The file holds grants, never record data: a few hundred bytes per installed shop or seller
(2.4 KB for the demo). Up to ``INLINE_LIMIT`` it is written where the change happens (about
half a millisecond); a larger one is written off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("sandbox.state")

FORMAT = 1  # version of the file's layout
INLINE_LIMIT = 16 * 1024  # bytes a write may take on the event loop itself


class StateFile:
    """One JSON file, replaced atomically (temp file + ``os.replace``), mode 0600: it holds
    the sandbox's tokens. Never logs its content."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # Grants change on the event loop, webhook subscriptions in the GraphQL worker
        # thread, and large writes run in the executor: snapshots are numbered under one
        # lock, and a write never replaces a newer snapshot with an older one.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._taken = 0  # snapshots taken
        self._written = 0  # the newest snapshot on disk
        self._writing: set[asyncio.Future[None]] = set()  # writes handed to the executor

    def load(self) -> dict[str, Any] | None:
        """The saved state; None when there is no file yet, or (with a warning) when it cannot
        be read: the sandbox then starts empty, and a corrupt file is kept beside it."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning(
                "sandbox state file %s cannot be read (%s); starting with no installed apps",
                self.path, error.strerror or type(error).__name__,
            )  # fmt: skip
            return None
        try:
            saved = json.loads(raw)  # bytes: a decoding error is a ValueError too
            if not isinstance(saved, dict) or saved.get("format") != FORMAT:
                raise ValueError("not a sandbox state file of this version")
        except ValueError as error:
            self.set_aside(str(error).split(":", 1)[0])
            return None
        return saved

    def set_aside(self, reason: str) -> None:
        """Warn that the file is unusable and move it to ``*.corrupt`` (kept for a look; the
        next write starts a fresh file)."""
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, aside)
            kept = f"; kept as {aside}"
        except OSError:
            kept = ""
        log.warning(
            "sandbox state file %s is unusable (%s); starting with no installed apps%s",
            self.path, reason, kept,
        )  # fmt: skip

    def save(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Write ``snapshot()``; the newest snapshot always ends up on disk. A failed write is
        logged, never raised: the platform keeps serving."""
        with self._lock:
            self._taken += 1
            number = self._taken
            text = json.dumps({"format": FORMAT, **snapshot()}, indent=1)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (GraphQL resolvers) or no loop at all
            loop = None
        if loop is not None and len(text) > INLINE_LIMIT:
            future = loop.run_in_executor(None, self._write_newest, number, text)
            self._writing.add(future)
            future.add_done_callback(self._writing.discard)
        else:
            self._write_newest(number, text)

    async def flush(self) -> None:
        """Wait for the writes handed to the executor (on shutdown)."""
        await asyncio.gather(*self._writing)

    def _write_newest(self, number: int, text: str) -> None:
        with self._write_lock:
            if number < self._written:
                return  # a newer snapshot is on disk already
            try:
                self._write(text)
                self._written = number
            except OSError as error:
                log.warning(
                    "sandbox state file %s could not be written (%s); grants made now are "
                    "forgotten at the next restart",
                    self.path, error.strerror or type(error).__name__,
                )  # fmt: skip

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600, before any token is written into it. No fsync: a
        # crashed process cannot tear a replaced file, and a file torn by a power cut loads
        # as corrupt (a warning and an empty start), which a sandbox can afford.
        handle, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


# --- the platform clock across restarts ----------------------------------------------------


def clock_anchor(now: datetime, time_scale: float) -> dict[str, Any]:
    """Where the platform clock stood at a real moment, to continue it after a restart."""
    return {"now": now.isoformat(), "real": time.time(), "time_scale": time_scale}


def resumed_now(anchor: dict[str, Any]) -> datetime:
    """The platform time now, had the platform kept running at its time scale while stopped,
    as a real platform's clock does: expiries saved as platform times then keep their
    meaning, and no timestamp the sandbox writes goes back behind one it wrote before."""
    stopped = max(0.0, time.time() - float(anchor["real"]))  # a wall clock set back: 0
    return datetime.fromisoformat(anchor["now"]) + timedelta(
        seconds=stopped * float(anchor["time_scale"])
    )
