"""Background services that live as long as the backend process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from dashboard.db import in_session
from dashboard.logging_setup import configure_from_settings
from dashboard.services import metrics
from dashboard.services.alerts import alert_delivery_lifespan
from dashboard.services.change_webhooks import change_webhook_lifespan
from dashboard.services.changefeed import changefeed_lifespan
from dashboard.services.platform_clients import platform_clients_lifespan
from dashboard.services.scheduler import scheduler_lifespan
from dashboard.services.shopify_webhooks import webhook_lifespan
from dashboard.services.sync import engine_lifespan
from dashboard.settings import get_settings


@contextlib.asynccontextmanager
async def hub_lifespan(*, kind: str = "web") -> AsyncIterator[None]:
    """The change feed that connects this process to the others (first in, last out), the
    sync engine (crash recovery included) in every process, the recovery of webhook
    events inside it (applying one may queue a sync), and the scheduler innermost, so that at
    shutdown scheduling stops first, then webhook events are handed back, then the running
    syncs are interrupted. Alerts raised by any of them go out through the alert outbox, whose
    delivery starts first and stops last; outermost, the rate limits shared through Redis
    (REDIS_URL) and the platform clients, closed after everything that uses them. Logging
    is set up before any of them logs.

    Before any of them: a process whose encryption keys differ from the database's under
    the same id (another host's generated key) refuses to start (KeyMismatchError).
    ``kind`` says what the process is in ``hub_workers``: a web worker or a ``hub worker``."""
    from dashboard.services.vault import ensure_keys_match, get_vault

    configure_from_settings(get_settings())
    vault = get_vault()
    await in_session(lambda session: ensure_keys_match(session=session, vault=vault))
    await asyncio.to_thread(metrics.metrics_token)  # in the data dir for the operator, at once
    try:
        async with (
            platform_clients_lifespan(get_settings()),
            changefeed_lifespan(),
            alert_delivery_lifespan(),
            change_webhook_lifespan(),
            engine_lifespan(kind=kind),
            webhook_lifespan(),
            scheduler_lifespan(),
        ):
            _freeze_startup_objects()
            yield
    finally:
        metrics.process_exiting()


_frozen = False


def _freeze_startup_objects() -> None:
    """Move what start-up built (the app, its modules, its states' classes: most of the
    heap) out of the collector's sight: a full collection then walks only what was made
    since, instead of pausing every request for the whole heap. Once per process (tests
    start many lifespans in one)."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
