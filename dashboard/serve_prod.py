"""The process `hub serve` starts: Reflex's production server (`reflex run --env prod ...`,
arguments passed through), with Granian told to respawn a worker that dies.

Granian's default ends the whole server when one worker exits unexpectedly (a `kill -9`, an
out-of-memory kill): every other worker is shut down and the hub stops answering. Its
``respawn_failed_workers`` option starts a new worker instead, but Reflex builds the Granian
server itself and passes no such option; so it is made Granian's default here, in this
process only, before Reflex builds the server. A worker crashing again within Granian's
5.5 s crash-loop window still stops the server, as it should.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

RESPAWN_INTERVAL = 1.0  # seconds between starting the new worker and reaping the dead one


def respawn_failed_workers_by_default() -> None:
    from granian.server.common import AbstractServer

    original = AbstractServer.__init__
    if getattr(original, "_hub_respawns", False):
        return

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("respawn_failed_workers", True)
        kwargs.setdefault("respawn_interval", RESPAWN_INTERVAL)
        original(self, *args, **kwargs)

    init._hub_respawns = True  # type: ignore[attr-defined]
    AbstractServer.__init__ = init  # type: ignore[method-assign]


def main() -> int:
    respawn_failed_workers_by_default()
    from reflex.reflex import cli

    sys.argv = ["reflex", *sys.argv[1:]]
    return int(cli() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
