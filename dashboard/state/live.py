"""Live updates: one background event per open page re-reads its rows about once a second.

The page starts the watcher on mount and stops it on unmount; the watcher holds the state
lock only to swap the rows in, never while the database is read.
"""

from __future__ import annotations

import asyncio

import reflex as rx

from dashboard.state.auth import AuthState

POLL_SECONDS = 1.0


class LiveState(AuthState):
    """Base for pages with live data: subclasses implement ``fetch`` and ``apply``."""

    watching: bool = False

    async def fetch(self) -> object:  # runs outside the state lock
        raise NotImplementedError  # pragma: no cover - every live page overrides it

    def apply(self, data: object) -> None:
        raise NotImplementedError  # pragma: no cover - every live page overrides it

    @rx.event
    def stop_watching(self):
        self.watching = False

    @rx.event(background=True)
    async def watch(self):
        async with self:
            if self.watching:
                return
            self.watching = True
        while True:
            async with self:
                if not self.watching:
                    return
                snapshot = self  # read inputs (filters) under the lock
            data = await snapshot.fetch()
            async with self:
                if not self.watching:
                    return
                self.apply(data)
            await asyncio.sleep(POLL_SECONDS)


def live_region(*children: rx.Component, state: type[LiveState]) -> rx.Component:
    """Wrap a page's live part: watching while it is on screen."""
    return rx.box(*children, on_mount=state.watch, on_unmount=state.stop_watching, width="100%")
