"""Background services that live as long as the backend process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dashboard.services.scheduler import scheduler_lifespan
from dashboard.services.sync import engine_lifespan


@contextlib.asynccontextmanager
async def hub_lifespan() -> AsyncIterator[None]:
    """The sync engine (crash recovery included) in every process; the scheduler inside it,
    so that at shutdown scheduling stops before the running syncs are interrupted."""
    async with engine_lifespan(), scheduler_lifespan():
        yield
