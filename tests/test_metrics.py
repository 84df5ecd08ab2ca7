"""``GET /metrics`` as an operator's Prometheus sees it: refused without the token, and after
a sandbox sync the counters with the platform, operation, kind and status labels that
docs/monitoring.md and deploy/prometheus/rules.yml use. Also the multiprocess mode (two
workers, one scrape) and the rules file checked by promtool."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session
from starlette.applications import Starlette

from connectors.auth import TokenEndpoint, refresh_token
from connectors.errors import AuthRevoked
from connectors.http import build_client
from connectors.ratelimit import TokenBucket
from dashboard.api import build_api
from dashboard.db import session_scope
from dashboard.models import IntegrationStatus, SchedulerLease
from dashboard.services.integrations import set_integration_status
from dashboard.services.metrics import TOKEN_FILE_NAME
from dashboard.settings import get_settings
from tests.sandbox_server import running_sandbox
from tests.test_shopify_sync import connect, engine_for

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/prometheus/rules.yml"
RULES_TESTS = ROOT / "deploy/prometheus/rules_test.yml"
DASHBOARD = ROOT / "docs/grafana-dashboard.json"
TOKEN = "metrics-token-for-tests"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples carrying ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


@pytest.fixture
async def hub(hub_db: object, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("HUB_METRICS_TOKEN", TOKEN)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from tests.conftest import reset_caches

    reset_caches()
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


async def scrape(hub: httpx.AsyncClient) -> Samples:
    response = await hub.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_a_scrape_without_the_token_is_refused(hub: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await hub.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert "hub_" not in response.text
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_without_a_configured_token_one_is_generated_private(
    hub_env: Path, hub_db: object
) -> None:
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        assert (await client.get("/metrics")).status_code == 401
        token_file = hub_env / TOKEN_FILE_NAME
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert "hub_database_up 1.0" in response.text


@pytest.fixture
def sandbox() -> Iterator[str]:
    from connectors.shopify.client import _throttles

    _throttles.clear()
    with running_sandbox(seed=7, time_scale=50) as (base, _app):
        yield base
    _throttles.clear()


async def test_a_sandbox_sync_shows_in_the_scrape(
    hub: httpx.AsyncClient, session: Session, sandbox: str
) -> None:
    before = await scrape(hub)
    integration_id = connect(session, sandbox, products=40, orders=0, customers=0, locations=1)
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    after = await scrape(hub)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "hub_sync_runs", platform="shopify", stream="products",
                 status="succeeded") == 1  # fmt: skip
    assert grew("hub_records_written_total", kind="product", operation="inserted") == 40
    assert grew("hub_records_written_total", kind="variant", operation="inserted") > 0
    requests = grew(
        "hub_platform_requests_total", platform="shopify", operation="Products", status="200"
    )
    assert requests >= 1
    assert grew("hub_platform_request_duration_seconds_count", platform="shopify",
                operation="Products") == requests  # fmt: skip
    assert grew("hub_shopify_cost_points_used_total", operation="Products") > 0
    assert value(after, "hub_shopify_restore_rate_points_per_second") > 0
    assert value(after, "hub_sync_run_duration_seconds_gcount", platform="shopify",
                 stream="products") == 1  # fmt: skip
    assert value(after, "hub_integrations", platform="shopify", status="connected") == 1
    assert value(after, "hub_sync_streams_failing", platform="shopify", stream="products") == 0
    assert value(after, "hub_scheduler_lease_held") == 0  # no scheduler in this test
    assert value(after, "hub_database_up") == 1


async def test_state_metrics_say_what_needs_doing(hub: httpx.AsyncClient, session: Session) -> None:
    """needs_reauth, a stalled stream and the lease holder come from the database."""
    from dashboard.services.integrations import create_integration, mark_connected

    integration = create_integration(
        session=session, platform="shopify", display_name="Shop", shop_domain="m.myshopify.com"
    )
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    samples = await scrape(hub)
    assert value(samples, "hub_integrations", platform="shopify", status="connected") == 1
    assert value(samples, "hub_sync_streams_stalled") == 0

    set_integration_status(
        session=session, integration_id=integration.id, status=IntegrationStatus.NEEDS_REAUTH
    )
    now = datetime.now(UTC)
    session.add(
        SchedulerLease(
            name="scheduler", holder="host:42:abc", expires_at=now + timedelta(seconds=30)
        )
    )
    session.commit()
    samples = await scrape(hub)
    assert value(samples, "hub_integrations", platform="shopify", status="needs_reauth") == 1
    assert value(samples, "hub_scheduler_lease_held") == 1
    assert value(samples, "hub_scheduler_lease_holder", holder="host:42:abc") == 1

    with session_scope() as s:  # connected again, but nothing ran for days: stalled
        set_integration_status(
            session=s, integration_id=integration.id, status=IntegrationStatus.CONNECTED
        )
        from sqlmodel import select

        from dashboard.models import Integration

        row = s.exec(select(Integration).where(Integration.id == integration.id)).one()
        row.connected_at = now - timedelta(days=3)
        s.add(row)
        lease = s.get(SchedulerLease, "scheduler")
        assert lease is not None
        lease.expires_at = now - timedelta(minutes=1)
        s.add(lease)
    samples = await scrape(hub)
    assert value(samples, "hub_sync_streams_stalled", platform="shopify") >= 1
    assert value(samples, "hub_scheduler_lease_held") == 0

    from dashboard.services import incidents

    with session_scope() as s:  # the merchant removed the app: one open incident
        incidents.uninstalled(session=s, integration_id=integration.id)
    samples = await scrape(hub)
    assert value(samples, "hub_open_incidents", platform="shopify", cause="uninstalled") == 1
    with session_scope() as s:  # access returns: resolved, no longer counted
        incidents.access_returned(session=s, integration_id=integration.id)
    samples = await scrape(hub)
    assert value(samples, "hub_open_incidents", platform="shopify", cause="uninstalled") == 0


async def test_throttling_and_token_refreshes_are_counted(hub: httpx.AsyncClient) -> None:
    before = await scrape(hub)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/o2/token"):
            return httpx.Response(400, json={"error": "invalid_grant"})
        return httpx.Response(429, json={"errors": [{"code": "QuotaExceeded"}]})

    transport = httpx.MockTransport(answer)
    async with build_client(base_url="https://sellingpartnerapi-na.amazon.com",
                            transport=transport) as client:  # fmt: skip
        response = await client.get("/orders/v0/orders/111-2222222-3333333/orderItems")
        assert response.status_code == 429
    endpoint = TokenEndpoint("Login with Amazon", "https://api.amazon.com/auth/o2/token", "id",
                             "secret", transport=transport)  # fmt: skip
    with pytest.raises(AuthRevoked):
        await refresh_token(endpoint, "a-refresh-token")
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    bucket = TokenBucket(1.0, 1, clock=lambda: clock[0], sleep=sleep)
    await bucket.acquire()
    assert await bucket.acquire() == pytest.approx(1.0)

    after = await scrape(hub)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("hub_platform_throttled_total", platform="amazon", operation="getOrderItems") == 1
    assert grew("hub_platform_requests_total", platform="amazon", operation="getOrderItems",
                status="429") == 1  # fmt: skip
    assert grew("hub_token_refreshes_total", endpoint="Login with Amazon", outcome="revoked") == 1
    assert grew("hub_platform_requests_total", platform="amazon", operation="lwaToken",
                status="400") == 1  # fmt: skip
    assert grew("hub_throttle_waits_total", platform="amazon") == 1
    assert grew("hub_throttle_wait_seconds_total", platform="amazon") == pytest.approx(1.0)


def _signed(body: bytes) -> str:
    secret = str(get_settings().shopify_client_secret).encode()  # derived per hub
    digest = hmac.new(secret, body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def test_webhooks_received_verified_and_rejected(hub: httpx.AsyncClient) -> None:
    from dashboard.services import shopify_webhooks

    before = await scrape(hub)
    body = json.dumps({"id": 1, "title": "x"}).encode()
    headers = {"X-Shopify-Topic": "products/update", "X-Shopify-Shop-Domain": "none.myshopify.com"}

    def delivery(signature: str) -> dict[str, str]:
        return {**headers, "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Hmac-Sha256": signature}  # fmt: skip

    forged = await hub.post("/api/webhooks/shopify", content=body, headers=delivery("AAAA"))
    assert forged.status_code == 401
    genuine = await hub.post("/api/webhooks/shopify", content=body, headers=delivery(_signed(body)))
    assert genuine.status_code == 200
    import asyncio

    await asyncio.gather(*shopify_webhooks._tasks)  # applied: no integration for that shop
    after = await scrape(hub)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("hub_webhooks_received_total", platform="shopify") == 2
    assert grew("hub_webhooks_verified_total", platform="shopify") == 1
    assert grew("hub_webhooks_rejected_total", platform="shopify", reason="signature") == 1
    assert grew("hub_webhooks_rejected_total", platform="shopify", reason="binding") == 1


async def test_webhook_events_not_applied_yet_show_how_far_behind(
    hub: httpx.AsyncClient,
) -> None:
    """What ``HubWebhooksBehind`` watches: stored events not applied, and the oldest's age."""
    import sqlalchemy as sa

    from dashboard.models import WebhookEvent
    from dashboard.services import shopify_webhooks

    samples = await scrape(hub)
    assert value(samples, "hub_webhook_events_unapplied") == 0
    assert value(samples, "hub_webhook_oldest_unapplied_seconds") == 0
    stored = [
        await shopify_webhooks.persist(
            webhook_id=str(uuid.uuid4()), topic="products/update", shop="late.myshopify.com",
            body=b'{"id": 1}',
        )
        for _ in range(3)
    ]  # fmt: skip
    with session_scope() as s:  # one arrived 20 minutes ago, and nobody applied it
        s.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id == stored[0])  # type: ignore[arg-type]
            .values(received_at=datetime.now(UTC) - timedelta(minutes=20))
        )
    samples = await scrape(hub)
    assert value(samples, "hub_webhook_events_unapplied", platform="shopify") == 3
    assert 1195 <= value(samples, "hub_webhook_oldest_unapplied_seconds") <= 1260
    for event_id in stored:  # applied (ignored: that shop has no integration)
        assert event_id is not None
        await shopify_webhooks.process(event_id)
    samples = await scrape(hub)
    assert value(samples, "hub_webhook_events_unapplied") == 0
    assert value(samples, "hub_webhook_oldest_unapplied_seconds") == 0


WORKER = """
import asyncio, httpx, sys
from connectors.http import build_client

async def main(count: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    async with build_client(base_url="https://sellingpartnerapi-eu.amazon.com",
                            transport=transport) as client:
        for _ in range(count):
            await client.get("/fba/inventory/v1/summaries")

asyncio.run(main(int(sys.argv[1])))
"""


async def test_one_scrape_adds_up_every_worker(
    hub: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes (as granian workers) count requests; a scrape of a third sees both."""
    from dashboard.services.metrics import fresh_multiprocess_dir

    directory = fresh_multiprocess_dir(tmp_path)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(n)], env=env, cwd=ROOT) for n in (3, 4)
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    samples = await scrape(hub)
    assert value(samples, "hub_platform_requests_total", platform="amazon",
                 operation="getInventorySummaries", status="200") == 7  # fmt: skip
    assert value(samples, "hub_database_up") == 1  # the state part is still there
    assert len({p.name for p in directory.glob("counter_*.db")}) == 2


# --- the rules file and the dashboard ------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool missing: `make test` installs Debian's prometheus package (apt)")
    return found


def test_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_their_unit_tests_say() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULES_TESTS)], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


async def test_rules_and_dashboard_use_metrics_the_hub_exposes(
    hub: httpx.AsyncClient, session: Session, sandbox: str
) -> None:
    """A renamed metric must not leave an alert or a panel reading nothing."""
    integration_id = connect(session, sandbox, products=5, orders=0, customers=0, locations=1)
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    response = await hub.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    exposed = {name for name, _ in parse(response.text)}
    for family in text_string_to_metric_families(response.text):  # also those with no sample
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    documented = (ROOT / "docs/monitoring.md").read_text()
    rules = RULES.read_text()
    panels = json.dumps([t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"]
                         for t in p.get("targets", [])])  # fmt: skip
    for source, text in (("rules.yml", rules), ("grafana-dashboard.json", panels)):
        used = set(re.findall(r"\bhub_[a-z_]+", text))
        assert used, source
        missing = {
            name for name in used
            if name not in exposed and not any(n.startswith(name + "_") for n in exposed)
            and not name.endswith(("_bucket", "_count", "_sum"))
        }  # fmt: skip
        assert missing == set(), source
    suffixes = re.compile(r"_(total|created|bucket|count|sum|gcount|gsum)$")
    documented_names = {suffixes.sub("", n) for n in re.findall(r"`(hub_[a-z_]+)", documented)}
    undocumented = {
        suffixes.sub("", name) for name in exposed if name.startswith("hub_")
    } - documented_names
    assert undocumented == set()
