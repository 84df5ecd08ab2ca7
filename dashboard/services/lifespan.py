"""Background services that live as long as the backend process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def hub_lifespan() -> AsyncIterator[None]:
    """Start the sync engine and scheduler when present; stop them on shutdown."""
    try:
        from dashboard.services.scheduler import scheduler_lifespan
    except ModuleNotFoundError as error:
        if error.name != "dashboard.services.scheduler":
            raise
        log.info("sync scheduler not installed; serving without scheduled syncs")
        yield
        return
    async with scheduler_lifespan():
        yield
