"""Admin API versions the sandbox serves, by Shopify's published versioning rules
(https://shopify.dev/docs/api/usage/versioning):

- a stable version is released each quarter (YYYY-01, -04, -07, -10) and supported for 12
  months, so four stable versions are supported at a time; the newest is the one whose
  schema the sandbox runs (``API_VERSION``);
- the next quarter's version is the release candidate, and ``unstable`` is served too; both
  are unsupported (``ApiVersion.supported`` is false);
- a request for an older, no longer accessible version falls forward: the oldest supported
  stable version answers it. Every response says which version answered in its
  ``X-Shopify-API-Version`` header.

The sandbox holds one schema (2026-10's, Shopify's published file), so every version it
serves answers with that schema; what differs is the version it reports.
"""

from __future__ import annotations

import re

from connectors.sandbox.shopify.graphql_api import API_VERSION

SUPPORTED_COUNT = 4  # 12 months of support, one release a quarter
_HANDLE = re.compile(r"(?P<year>\d{4})-(?P<month>01|04|07|10)")


def _shift(handle: str, quarters: int) -> str:
    year, month = int(handle[:4]), int(handle[5:])
    index = year * 4 + (month - 1) // 3 + quarters
    return f"{index // 4:04d}-{(index % 4) * 3 + 1:02d}"


SUPPORTED = tuple(_shift(API_VERSION, -k) for k in reversed(range(SUPPORTED_COUNT)))
RELEASE_CANDIDATE = _shift(API_VERSION, 1)
UNSTABLE = "unstable"


def answering_version(requested: str) -> str | None:
    """The version that answers a request for ``requested``; None when Shopify has no such
    version (not a quarterly ``YYYY-MM`` handle, or newer than the release candidate)."""
    if requested in SUPPORTED or requested in (RELEASE_CANDIDATE, UNSTABLE):
        return requested
    if _HANDLE.fullmatch(requested) is None or requested > RELEASE_CANDIDATE:
        return None
    return SUPPORTED[0]  # an older, inaccessible version falls forward


def public_versions() -> list[dict[str, object]]:
    """``publicApiVersions``: the supported stable versions, the release candidate, unstable
    (display names are the handles: the sandbox does not guess Shopify's wording)."""
    handles = [*SUPPORTED, RELEASE_CANDIDATE, UNSTABLE]
    return [{"handle": h, "displayName": h, "supported": h in SUPPORTED} for h in handles]
