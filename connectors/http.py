"""The one place platform HTTP clients are built and retried.

Every platform call goes through ``build_client``: tests and the embedded sandbox pass a
transport (respx, ``httpx.ASGITransport``) instead of patching internals.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from connectors import metrics
from connectors.errors import TransientError

USER_AGENT = "ConnectorHub/0.1 (+https://github.com/connector-hub/connector-hub)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

log = logging.getLogger(__name__)
request_log = logging.getLogger("hub.platform")  # one line per platform request
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


# --- one log line and the metrics of every platform request -----------------------------------

# SP-API operations by method and path (the ``operationId``s of Amazon's models), for the
# metrics' ``operation`` label; ids in paths must not become label values.
_AMAZON_OPERATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), operation)
    for method, pattern, operation in (
        ("GET", r"/orders/v0/orders/[^/]+/orderItems$", "getOrderItems"),
        ("GET", r"/orders/v0/orders/[^/]+$", "getOrder"),
        ("GET", r"/orders/v0/orders$", "getOrders"),
        ("GET", r"/orders/2026-01-01/orders$", "searchOrders"),
        ("POST", r"/reports/2021-06-30/reports$", "createReport"),
        ("GET", r"/reports/2021-06-30/reports$", "getReports"),
        ("GET", r"/reports/2021-06-30/reports/[^/]+$", "getReport"),
        ("GET", r"/reports/2021-06-30/documents/[^/]+$", "getReportDocument"),
        ("GET", r"/fba/inventory/v1/summaries$", "getInventorySummaries"),
        ("GET", r"/sellers/v1/marketplaceParticipations$", "getMarketplaceParticipations"),
        ("GET", r"/listings/2021-08-01/items/[^/]+/[^/]+$", "getListingsItem"),
        ("GET", r"/listings/2021-08-01/items/[^/]+$", "searchListingsItems"),
    )
)
_GRAPHQL_NAME = re.compile(rb"\b(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]{0,63})")
_SENT_AT = "hub_sent_at"  # request extension: when the request hook saw it leave


def platform_operation(request: httpx.Request) -> tuple[str, str]:
    """(platform, operation) of a request, from its URL (and a GraphQL document's name):
    the same for the real platforms and the sandbox, whose paths follow theirs."""
    path, host, method = request.url.path, request.url.host, request.method
    if "/admin/api/" in path and path.endswith("/graphql.json"):
        name = _GRAPHQL_NAME.search(request.content) if method == "POST" else None
        return "shopify", name.group(1).decode() if name else "graphql"
    if "/admin/oauth/" in path:
        return "shopify", "accessToken"
    if "/_bulk/" in path or host == "storage.googleapis.com":
        return "shopify", "bulkResult"
    if path.endswith("/auth/o2/token"):
        return "amazon", "lwaToken"
    for operation_method, pattern, operation in _AMAZON_OPERATIONS:
        if method == operation_method and pattern.search(path):
            return "amazon", operation
    if "/documents/" in path or host.endswith(".amazonaws.com"):
        return "amazon", "reportDocumentDownload"
    if "sellingpartnerapi" in host or "/sp/" in path or "/sp-sandbox/" in path:
        return "amazon", "other"
    return "other", "other"


async def _stamp_request(request: httpx.Request) -> None:
    request.extensions[_SENT_AT] = time.perf_counter()


async def _observe_response(response: httpx.Response) -> None:
    """Count, time and log one answered platform request (a retry is another request)."""
    request = response.request
    started = request.extensions.get(_SENT_AT)
    seconds = time.perf_counter() - started if isinstance(started, float) else 0.0
    platform, operation = platform_operation(request)
    status = response.status_code
    metrics.PLATFORM_REQUESTS.labels(platform, operation, str(status)).inc()
    metrics.PLATFORM_REQUEST_SECONDS.labels(platform, operation).observe(seconds)
    if status == 429:
        metrics.PLATFORM_THROTTLED.labels(platform, operation).inc()
    elif platform == "shopify" and operation not in ("accessToken", "bulkResult"):
        await _observe_shopify_cost(response, operation)
    request_log.info(
        "%s %s%s %s %.0fms",
        request.method,
        request.url.host,
        request.url.path,  # never the query: pre-signed URLs carry credentials there
        status,
        seconds * 1000,
        extra={
            "platform": platform,
            "operation": operation,
            "method": request.method,
            "host": request.url.host,
            "path": request.url.path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        },
    )


async def _observe_shopify_cost(response: httpx.Response, operation: str) -> None:
    """Cost points and bucket state from a GraphQL answer's ``extensions.cost``."""
    await response.aread()  # the client reads it anyway: a GraphQL answer is never streamed
    try:
        body: Any = json.loads(response.content)
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    errors = body.get("errors")
    if isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in errors
    ):
        metrics.PLATFORM_THROTTLED.labels("shopify", operation).inc()
    cost = (body.get("extensions") or {}).get("cost")
    if not isinstance(cost, dict):
        return
    actual = cost.get("actualQueryCost")
    if isinstance(actual, int | float) and actual > 0:
        metrics.SHOPIFY_COST_POINTS.labels(operation).inc(actual)
    status = cost.get("throttleStatus")
    if isinstance(status, dict):
        if isinstance(status.get("restoreRate"), int | float):
            metrics.SHOPIFY_RESTORE_RATE.set(status["restoreRate"])
        if isinstance(status.get("currentlyAvailable"), int | float):
            metrics.SHOPIFY_POINTS_AVAILABLE.set(status["currentlyAvailable"])


# Passed to every platform client (``build_client``, the token endpoints' client).
EVENT_HOOKS: dict[str, list[Callable[..., Any]]] = {
    "request": [_stamp_request],
    "response": [_observe_response],
}


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
        event_hooks=EVENT_HOOKS,
    )


def is_transient_status(status: int) -> bool:
    return status >= 500 or status in (408,)


def raise_for_transient(response: httpx.Response) -> None:
    """Turn a 5xx/408 into TransientError so the retry policy sees one exception type."""
    if is_transient_status(response.status_code):
        raise TransientError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}"
        )


def _retry_logger(attempts: int) -> Callable[[RetryCallState], None]:
    """Log a failed attempt before the wait, numbered as the give-up line counts them.

    ``attempt_number`` is the attempt that just failed: the line once read "retrying
    (attempt 5)" after the fifth failure, while the sixth was the retry, so logs and errors
    disagreed by one."""

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "attempt %s of %s failed (%s: %s); retrying in %.1f s (attempt %s of %s)",
            state.attempt_number,
            attempts,
            type(error).__name__,
            error,
            delay,
            state.attempt_number + 1,
            attempts,
        )

    return log_retry


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 6,
    max_wait: float = 30.0,
    initial_wait: float = 0.5,
    max_elapsed: float = 300.0,
) -> T:
    """Run ``call`` again on TransientError and httpx network errors, exponential + jitter.

    The last error is re-raised as is when the attempts run out (or ``max_elapsed`` seconds
    passed), after a line saying how many attempts were made.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception_type((TransientError, httpx.TransportError)),
        wait=wait_exponential_jitter(multiplier=initial_wait, max=max_wait, jitter=initial_wait),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_elapsed),
        before_sleep=_retry_logger(attempts),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except (TransientError, httpx.TransportError) as error:
        made = int(retrying.statistics.get("attempt_number", 1))
        if made > 1:
            log.warning("gave up after %s attempts: %s: %s", made, type(error).__name__, error)
        raise
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
