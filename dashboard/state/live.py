"""Live updates: one background event per open page re-reads its rows about once a second.

The page starts its watcher on mount and stops it on unmount; the loop holds the state lock
only to swap the rows in, never while the database is read. Reflex binds an event handler to
the class that defines it, so each live page declares its own two small handlers
(``watch`` and ``stop_watching``) and a ``watching`` flag, and they all run this one loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import reflex as rx

POLL_SECONDS = 1.0


class LivePage(Protocol):
    watching: bool

    async def fetch(self) -> Any: ...

    def apply(self, data: Any) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *args: Any) -> Any: ...


async def live_loop(state: LivePage) -> None:
    """Body of a page's background ``watch`` event."""
    async with state:
        if state.watching:
            return  # already watching in another task of this tab
        state.watching = True
    while True:
        data = await state.fetch()
        async with state:
            if not state.watching:
                return
            state.apply(data)
        await asyncio.sleep(POLL_SECONDS)


def live_region(*children: rx.Component, watch: Any, stop: Any) -> rx.Component:
    """Wrap a page's live part: watching while it is on screen."""
    return rx.box(*children, on_mount=watch, on_unmount=stop, width="100%")
