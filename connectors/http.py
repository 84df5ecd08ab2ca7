"""The one place platform HTTP clients are built and retried.

Every platform call goes through ``build_client``: tests and the embedded sandbox pass a
transport (respx, ``httpx.ASGITransport``) instead of patching internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from connectors.errors import TransientError

USER_AGENT = "ConnectorHub/0.1 (+https://github.com/connector-hub/connector-hub)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

log = logging.getLogger(__name__)
T = TypeVar("T")
# Query parameters whose values grant access: a report document's pre-signed URL
# (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token), OAuth codes and the like.
_SECRET_PARAM = re.compile(r"sig|credential|token|secret|code|key|password|hmac", re.IGNORECASE)


def redact_url(url: httpx.URL | str) -> str:
    """``url`` with the values of access-granting query parameters replaced, for logs."""
    parsed = httpx.URL(str(url))
    if not parsed.query:
        return str(parsed)
    params = [
        (name, "REDACTED" if _SECRET_PARAM.search(name) else value)
        for name, value in parsed.params.multi_items()
    ]
    return str(parsed.copy_with(params=params))


class _RedactRequestLines(logging.Filter):
    """httpx logs every request line with its full URL at INFO; keep secrets out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


# On the logger itself (not a handler), so it applies whatever handlers the host adds.
logging.getLogger("httpx").addFilter(_RedactRequestLines())


def build_client(
    *,
    base_url: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient naming the hub in its User-Agent, pooled, with the given transport;
    ``auth`` is a platform's token flow (``connectors.auth.TokenFlow``)."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    merged.update(headers or {})
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        auth=auth,
        headers=merged,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
    )


def is_transient_status(status: int) -> bool:
    return status >= 500 or status in (408,)


def raise_for_transient(response: httpx.Response) -> None:
    """Turn a 5xx/408 into TransientError so the retry policy sees one exception type."""
    if is_transient_status(response.status_code):
        raise TransientError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}"
        )


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "retrying after transient error (attempt %s): %s: %s",
        state.attempt_number,
        type(error).__name__,
        error,
    )


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 6,
    max_wait: float = 30.0,
    initial_wait: float = 0.5,
    max_elapsed: float = 300.0,
) -> T:
    """Run ``call`` again on TransientError and httpx network errors, exponential + jitter.

    The last error is re-raised as is when the attempts run out.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception_type((TransientError, httpx.TransportError)),
        wait=wait_exponential_jitter(multiplier=initial_wait, max=max_wait, jitter=initial_wait),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_elapsed),
        before_sleep=_log_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
