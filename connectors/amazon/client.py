"""SP-API client: one per (seller, region), token buckets per operation, typed errors.

Before every call the client takes a token from the operation's bucket, seeded with the
documented usage plan and corrected by ``x-amzn-RateLimit-Limit``: a backlog runs at the
limit instead of into 429s. A 429 still happens when another app or process shares the
seller's quota; then the bucket is emptied and slowed, and the call waits its turn again.
No SigV4: Amazon dropped it in 2023; the LWA token in ``x-amz-access-token`` is all.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.errors import (
    AuthError,
    AuthRevoked,
    MalformedResponse,
    PlatformError,
    RateLimited,
)
from connectors.http import CLIENTS, ClientPool, build_client, raise_for_transient, with_retries
from connectors.ratelimit import (
    LimitStore,
    OperationBucket,
    TokenBucket,
    report_quota,
    report_throttled,
    report_wait,
    shared_store,
)

log = logging.getLogger("connectors.amazon")

# Default (rate per second, burst) of each operation the hub calls, from the usage-plan
# tables of Amazon's models; tests/test_amazon_client.py checks them against the models.
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "searchOrders": (0.0056, 20),
    "getOrder": (0.5, 30),
    "getOrders": (0.0167, 20),
    "getOrderItems": (0.5, 30),
    "createReport": (0.0167, 15),
    "getReport": (2.0, 15),
    "getReports": (0.0222, 10),
    "getReportDocument": (0.0167, 15),
    "getInventorySummaries": (2.0, 2),
    "searchListingsItems": (5.0, 5),
    "getListingsItem": (5.0, 10),
    "getMarketplaceParticipations": (0.016, 15),
}
EXPIRED_DETAILS = "The access token you provided has expired."
TOKEN_HEADER = "x-amz-access-token"  # noqa: S105  the header's name, not a secret
MAX_THROTTLED = 6  # 429s in a row on one call before giving up with RateLimited
SLOWDOWN = 0.8  # a 429 means the real rate is lower than we believed


@dataclass
class BucketRegistry:
    """The buckets of every seller, region and operation: in this process, or in the shared
    ``store`` (``None``: the one the host set with ``connectors.ratelimit.use_store``, if any)
    so that every process calling a seller takes from the same buckets."""

    buckets: dict[tuple[str, str, str], OperationBucket] = field(default_factory=dict)
    throttled: int = 0
    waited: float = 0.0
    store: LimitStore | None = None

    def get(self, seller: str, region: str, operation: str) -> OperationBucket:
        key = (seller, region, operation)
        bucket = self.buckets.get(key)
        if bucket is None:
            rate, burst = USAGE_PLANS.get(operation, (1.0, 1))
            store = self.store or shared_store()
            bucket = self.buckets[key] = (
                store.operation_bucket(seller, region, operation, rate, burst)
                if store is not None
                else TokenBucket(rate, burst)
            )
        return bucket


BUCKETS = BucketRegistry()


class SpApiClient:
    def __init__(
        self,
        *,
        seller_id: str,
        region: str,
        base_url: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        buckets: BucketRegistry = BUCKETS,
        clients: ClientPool = CLIENTS,
    ) -> None:
        self.seller_id = seller_id
        self.region = region
        self.base_url = base_url
        self._buckets = buckets
        # ``auth`` adds x-amz-access-token, with each request: the token flow refreshes it
        # ahead of expiry and once more when Amazon calls it expired (``token_expired``).
        # The clients (connections, TLS) are the seller's in this process, shared.
        self._auth = auth
        account = ("amazon", seller_id, region, base_url, transport)
        shared = clients.client(
            account, lambda: build_client(base_url=base_url, transport=transport)
        )
        downloads = clients.client(
            (*account, "downloads"),
            lambda: build_client(transport=transport, timeout=httpx.Timeout(120, connect=10)),
        )
        self._own = shared is None or downloads is None
        self._http = shared or build_client(base_url=base_url, transport=transport)
        self._downloads = downloads or build_client(
            transport=transport, timeout=httpx.Timeout(120, connect=10)
        )

    async def aclose(self) -> None:
        """Close the clients unless they are the seller's shared ones (the pool closes those)."""
        if self._own:
            await self._http.aclose()
            await self._downloads.aclose()

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Send one SP-API operation and return its JSON body (``{}`` when empty)."""
        bucket = self._buckets.get(self.seller_id, self.region, operation)
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        throttled = 0
        while True:
            wait = await bucket.expected_wait()
            if wait > 0:
                await report_wait(wait, f"SP-API {operation} allows {bucket.rate:.4g} calls/s")
            waited, take = await bucket.take()
            self._buckets.waited += waited

            async def send() -> tuple[httpx.Response, dict[str, Any]]:
                response = await self._http.request(
                    method, path, params=query, json=json, auth=self._auth
                )
                raise_for_transient(response)
                # A truncated 2xx body is retried like a 5xx: the next answer is usually whole.
                body = _json(response, operation) if response.is_success else {}
                return response, body

            try:
                response, body = await with_retries(send, attempts=5, max_elapsed=120)
            finally:
                await asyncio.shield(bucket.answered(take))
            status = response.status_code
            if status == 429:
                throttled += 1
                self._buckets.throttled += 1
                await bucket.refused(SLOWDOWN)
                log.warning("SP-API %s throttled (429), slowing to %.4f/s", operation, bucket.rate)
                await report_throttled(f"SP-API {operation} answered 429 (throttled)")
                if throttled >= MAX_THROTTLED:
                    raise RateLimited(f"{operation} stayed throttled after {throttled} attempts")
                continue
            limit = response.headers.get("x-amzn-RateLimit-Limit")
            if limit:
                try:
                    rate = float(limit)
                except ValueError:
                    log.debug("unreadable x-amzn-RateLimit-Limit %r", limit)
                else:
                    await bucket.told_rate(rate)
            if response.is_success:
                said = "x-amzn-RateLimit-Limit" if limit else "usage plan"
                report_quota(f"SP-API {operation} allows {bucket.rate:.4g} calls/s ({said})")
            if status in (401, 403):
                details = _error_details(response)
                if "revoked" in details:
                    raise AuthRevoked(f"{operation}: {details}")
                if details:
                    raise AuthError(f"{operation} refused ({status}): {details}")
                raise AuthError(f"{operation} refused ({status}): the app lacks the role for it")
            if status >= 400:
                errors = _safe_errors(response)
                first = (errors or [{}])[0]
                raise PlatformError(
                    f"{operation} failed ({status} {first.get('code')}): {first.get('message')}",
                    status=status,
                    details=errors,
                )
            return body

    def download(self, url: str) -> Any:
        """Stream a report document from its pre-signed URL (no SP-API token: S3 signs it)."""
        return self._downloads.stream("GET", url)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)  # arrays go comma-separated (collectionFormat csv)
    return str(value)


def _json(response: httpx.Response, operation: str) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise MalformedResponse(f"{operation} answered with a malformed body") from None
    if not isinstance(body, dict):
        raise MalformedResponse(f"{operation} answered with {type(body).__name__}, not an object")
    return body


def _safe_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The models' error list, or [] when the body is not one."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_details(response: httpx.Response) -> str:
    return " ".join(str(e.get("details") or "") for e in _safe_errors(response)).strip()


def token_expired(response: httpx.Response) -> bool:
    """Amazon's answer to an access token past its hour: 403 with these details."""
    return response.status_code == 403 and EXPIRED_DETAILS in _error_details(response)
