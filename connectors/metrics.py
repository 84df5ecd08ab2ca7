"""Prometheus counters of the platform layer: requests, latency, throttling, token refreshes.

They are events, counted where they happen (``connectors.http``'s event hooks, the rate
limiters, the token flow). ``connectors`` imports nothing from ``dashboard``, so they live
here; the hub's ``/metrics`` route (``dashboard.services.metrics``) exposes them with the
rest. Under ``PROMETHEUS_MULTIPROC_DIR`` (set by ``hub serve``) every worker writes its own
files and one scrape adds them up.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PLATFORM_REQUESTS = Counter(
    "hub_platform_requests",
    "Requests the hub sent to a platform, by answer status.",
    ["platform", "operation", "status"],
)
PLATFORM_REQUEST_SECONDS = Histogram(
    "hub_platform_request_duration_seconds",
    "Time from sending a platform request to its answer's headers.",
    ["platform", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PLATFORM_THROTTLED = Counter(
    "hub_platform_throttled",
    "Answers refusing a request for its rate: SP-API 429s, Shopify THROTTLED errors.",
    ["platform", "operation"],
)
THROTTLE_WAITS = Counter(
    "hub_throttle_waits",
    "Times a request waited for the hub's own rate limiter before it was sent.",
    ["platform"],
)
THROTTLE_WAIT_SECONDS = Counter(
    "hub_throttle_wait_seconds",
    "Seconds requests waited for the hub's own rate limiter.",
    ["platform"],
)
SHOPIFY_COST_POINTS = Counter(
    "hub_shopify_cost_points_used",
    "Shopify GraphQL cost points charged (actualQueryCost), by query.",
    ["operation"],
)
SHOPIFY_RESTORE_RATE = Gauge(
    "hub_shopify_restore_rate_points_per_second",
    "Restore rate of a shop's cost bucket, as Shopify's last answer reported it.",
    multiprocess_mode="mostrecent",
)
SHOPIFY_POINTS_AVAILABLE = Gauge(
    "hub_shopify_cost_points_available",
    "Points left in a shop's cost bucket, as Shopify's last answer reported it.",
    multiprocess_mode="mostrecent",
)
TOKEN_REFRESHES = Counter(
    "hub_token_refreshes",
    "Access-token refreshes by token endpoint and outcome (ok, revoked, failed).",
    ["endpoint", "outcome"],
)


def record_throttle_wait(platform: str, seconds: float) -> None:
    """A request waited ``seconds`` for the hub's limiter (nothing is counted for 0)."""
    if seconds > 0:
        THROTTLE_WAITS.labels(platform).inc()
        THROTTLE_WAIT_SECONDS.labels(platform).inc(seconds)
