"""One account, one integration: a shop or seller connected to one integration cannot be
connected to a second one (the callback refuses it with a page linking to the first), the
wizard warns before that and reuses its own pending integration, stale pending integrations
are labelled and discarded, and a run is retried once."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session, SQLModel, col, select
from starlette.applications import Starlette

from connectors.amazon.client import BUCKETS
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import (
    AuditLog,
    ConnectLink,
    Credential,
    Integration,
    Role,
    StreamConfig,
    SyncRun,
)
from dashboard.pages.runs import RunsState
from dashboard.services import connect, integration_settings, sync
from dashboard.services import integrations as integration_service
from dashboard.services import runs as runs_service
from dashboard.services.auth import create_session, create_user
from dashboard.services.integrations import (
    AccountTaken,
    create_connect_link,
    create_integration,
    mark_connected,
)
from dashboard.state.integrations import IntegrationsState
from dashboard.state.wizard import WizardState
from tests.conftest import reset_caches
from tests.sandbox_server import (
    apps,
    control_headers,
    form_fields,
    running_sandbox,
    shopify_consent,
)

HUB = "http://hub.test"
SHOP = "one-account.myshopify.com"
SELLER, OTHER_SELLER = "A6ONEACCOUNT00", "A7SECONDSELLER"
US = "ATVPDKIKX0DER"


# --- over HTTP against the sandbox -------------------------------------------------------------


@pytest.fixture
async def shopify_hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    _throttles.clear()
    callback = {"shopify": [f"{HUB}/api/oauth/shopify/callback"]}
    with running_sandbox(seed=3, time_scale=50, redirect_uris=callback) as (base, _app):
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "sandbox-shopify-client-id")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_SECRET", apps(base).shopify_client_secret)
        reset_caches()
        SQLModel.metadata.create_all(get_engine())
        httpx.post(
            f"{base}/_sandbox/shopify/shops", headers=control_headers(base),
            json={"shop": SHOP, "products": 5, "orders": 2, "customers": 1},
        ).raise_for_status()  # fmt: skip
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_api(Starlette())), base_url=HUB
        ) as client:
            yield {"client": client, "base": base}
        await asyncio.gather(*connect._background)
        await sync.get_engine().wait()
        sync.set_engine(None)


def shopify_link(name: str, *, integration_id: uuid.UUID | None = None) -> tuple[uuid.UUID, str]:
    """A connect link for a new integration of SHOP (or a reconnect link of an existing one)."""
    with session_scope() as s:
        if integration_id is None:
            integration_id = create_integration(
                session=s, platform="shopify", display_name=name, shop_domain=SHOP,
                streams={"products": 15},
            ).id  # fmt: skip
            purpose = "connect"
        else:
            purpose = "reconnect"
        _, token = create_connect_link(session=s, integration_id=integration_id, purpose=purpose)
        return integration_id, token


async def shopify_approve(hub: dict, token: str) -> httpx.Response:
    """The merchant opens the link, approves on the sandbox's consent page, lands on the hub."""
    start = await hub["client"].get(f"/api/oauth/shopify/start?link={token}")
    assert start.status_code == 302
    location = start.headers["location"]
    params = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
    async with httpx.AsyncClient() as browser:  # the page's form, as a browser posts it
        answer = await shopify_consent(browser, location.split("?")[0], params)
    return await hub["client"].get(answer.headers["location"].removeprefix(HUB))


async def test_a_shop_connected_elsewhere_is_refused_with_a_link_to_it(shopify_hub: dict) -> None:
    first_id, token = shopify_link("Outdoor")
    assert (await shopify_approve(shopify_hub, token)).status_code == 200

    second_id, token = shopify_link("Outdoor again")
    refused = await shopify_approve(shopify_hub, token)

    assert refused.status_code == 409
    assert "Already connected" in refused.text
    assert f"{SHOP} is already connected" in refused.text and "Outdoor" in refused.text
    assert f"href='{HUB}/integrations/{first_id}'" in refused.text
    with session_scope() as s:
        second = s.get(Integration, second_id)
        assert second.status == "pending" and second.account_key is None
        # No token was asked for: the check comes before the code exchange.
        assert not s.exec(select(Credential).where(Credential.integration_id == second_id)).all()
        link = s.exec(select(ConnectLink).where(ConnectLink.integration_id == second_id)).one()
        assert link.used_at is None
        audit = s.exec(
            select(AuditLog).where(AuditLog.action == "integration.connect_refused")
        ).one()
        assert audit.target == str(second_id) and audit.context["connected_to"] == str(first_id)

    # Reconnecting the integration that holds the shop stays allowed.
    _, again = shopify_link("", integration_id=first_id)
    reconnected = await shopify_approve(shopify_hub, again)
    assert reconnected.status_code == 200 and "Connected" in reconnected.text
    with session_scope() as s:
        assert s.get(Integration, first_id).account_key == f"shopify:{SHOP}"


async def test_a_disconnected_integration_gives_its_shop_up(shopify_hub: dict) -> None:
    first_id, token = shopify_link("Outdoor")
    assert (await shopify_approve(shopify_hub, token)).status_code == 200
    with session_scope() as s:
        manager, _ = create_user(session=s, email="m@example.com", role=Role.MANAGER)
        integration_settings.disconnect_integration(
            session=s, integration_id=first_id, actor=manager
        )
    second_id, token = shopify_link("Outdoor, new")
    connected = await shopify_approve(shopify_hub, token)
    assert connected.status_code == 200 and "Connected" in connected.text
    with session_scope() as s:
        assert s.get(Integration, second_id).account_key == f"shopify:{SHOP}"


@pytest.fixture
async def amazon_hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    BUCKETS.buckets.clear()
    callback = {"amazon": [f"{HUB}/api/oauth/amazon/callback"]}
    with running_sandbox(seed=9, time_scale=50, redirect_uris=callback) as (base, _app):
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_AMAZON_BASE_URL", f"{base}/amazon")
        monkeypatch.setenv("HUB_AMAZON_APP_ID", apps(base).amazon_app_id)
        monkeypatch.setenv("HUB_AMAZON_CLIENT_ID", apps(base).amazon_client_id)
        monkeypatch.setenv("HUB_AMAZON_CLIENT_SECRET", apps(base).amazon_client_secret)
        reset_caches()
        SQLModel.metadata.create_all(get_engine())
        for seller in (SELLER, OTHER_SELLER):
            httpx.post(
                f"{base}/_sandbox/amazon/sellers", headers=control_headers(base),
                json={"selling_partner_id": seller, "marketplaces": [US], "orders": 3,
                      "listings": 2, "fba_items": 1},
            ).raise_for_status()  # fmt: skip
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_api(Starlette())), base_url=HUB
        ) as client:
            yield {"client": client, "base": base}
        await asyncio.gather(*connect._background)
        await sync.get_engine().wait()
        sync.set_engine(None)
    BUCKETS.buckets.clear()


def amazon_link(name: str) -> tuple[uuid.UUID, str]:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="amazon", display_name=name, region="na", marketplaces=[US],
            streams={"orders": 10},
        )  # fmt: skip
        _, token = create_connect_link(session=s, integration_id=integration.id)
        return integration.id, token


async def amazon_consent(hub: dict, token: str, seller: str) -> httpx.Response:
    start = await hub["client"].get(f"/api/oauth/amazon/start?link={token}")
    assert start.status_code == 302
    location = start.headers["location"]
    async with httpx.AsyncClient() as browser:  # the page's form, as a browser posts it
        page = await browser.get(location)
        answer = await browser.post(
            location,
            data={**form_fields(page.text), "decision": "approve", "selling_partner_id": seller},
        )
    return await hub["client"].get(answer.headers["location"].removeprefix(HUB))


async def test_a_second_integration_on_the_same_seller_is_refused(amazon_hub: dict) -> None:
    first_id, token = amazon_link("Seller NA")
    assert (await amazon_consent(amazon_hub, token, SELLER)).status_code == 200

    second_id, token = amazon_link("Seller NA again")
    refused = await amazon_consent(amazon_hub, token, SELLER)
    assert refused.status_code == 409
    assert f"Amazon seller {SELLER} (NA) is already connected" in refused.text
    assert "Seller NA" in refused.text and f"{HUB}/integrations/{first_id}" in refused.text

    # Another seller connects through an integration of its own.
    _, token = amazon_link("Other seller")
    assert (await amazon_consent(amazon_hub, token, OTHER_SELLER)).status_code == 200
    with session_scope() as s:
        second = s.get(Integration, second_id)
        assert second.status == "pending" and second.selling_partner_id is None
        assert not s.exec(select(Credential).where(Credential.integration_id == second_id)).all()
        holders = s.exec(select(Integration).where(col(Integration.account_key).is_not(None))).all()
        assert sorted(i.account_key for i in holders) == [
            f"amazon:na:{SELLER}",
            f"amazon:na:{OTHER_SELLER}",
        ]


# --- the race, on SQLite and PostgreSQL --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    name = "hub_db" if request.param == "sqlite" else "pg_hub_db"
    yield request.getfixturevalue(name)


def two_pending_on_one_shop() -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope() as s:
        ids = tuple(
            create_integration(
                session=s, platform="shopify", display_name=name, shop_domain=SHOP
            ).id
            for name in ("First", "Second")
        )
    return ids[0], ids[1]


async def test_two_racing_callbacks_cannot_both_connect_a_shop(
    any_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both callbacks pass the check before either writes: the unique account_key lets one
    commit; the other is refused, naming the winner, and keeps no token."""
    first, second = two_pending_on_one_shop()
    with session_scope() as s:  # what each callback stored before its last transaction
        for integration_id in (first, second):
            s.add(Credential(integration_id=integration_id, kind="access_token",
                             ciphertext="x", key_id="k"))  # fmt: skip
    both_checked = threading.Barrier(2, timeout=10)
    check = integration_service.refuse_account_taken
    calls = iter(range(1_000))

    def check_then_wait(**kwargs: Any) -> str | None:
        key = check(**kwargs)
        if next(calls) < 2:  # the two callbacks' checks; the loser's re-check goes on
            both_checked.wait()
        return key

    monkeypatch.setattr(integration_service, "refuse_account_taken", check_then_wait)

    async def finish(integration_id: uuid.UUID) -> object:
        try:
            return await connect.finish_connection(
                lambda s: mark_connected(session=s, integration_id=integration_id).display_name,
                integration_id=integration_id,
                shop_domain=SHOP,
            )
        except AccountTaken as taken:
            return taken

    results = await asyncio.gather(finish(first), finish(second))
    monkeypatch.setattr(integration_service, "refuse_account_taken", check)

    winners = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, AccountTaken)]
    assert len(winners) == 1 and len(refused) == 1, results
    with session_scope() as s:
        holder = s.exec(select(Integration).where(Integration.account_key == f"shopify:{SHOP}"))
        (winner,) = holder.all()
        assert refused[0].holder_id == winner.id and winner.display_name == winners[0]
        loser = first if winner.id == second else second
        assert s.get(Integration, loser).status == "pending"
        assert not s.exec(select(Credential).where(Credential.integration_id == loser)).all()


def test_the_database_refuses_a_second_holder(any_db: sa.Engine) -> None:
    first, second = two_pending_on_one_shop()
    with session_scope() as s:
        mark_connected(session=s, integration_id=first)
    with pytest.raises(sa.exc.IntegrityError), session_scope() as s:
        s.get(Integration, second).account_key = f"shopify:{SHOP}"
        s.flush()
    taken = pytest.raises(AccountTaken, match=r"already connected to the integration .First")
    with taken, session_scope() as s:
        mark_connected(session=s, integration_id=second)


# --- the wizard, driven as the browser's events would -----------------------------------------


def signed_in(state: Any, role: Role = Role.MANAGER) -> Any:
    with session_scope() as s:
        user, _ = create_user(session=s, email=f"{uuid.uuid4().hex[:8]}@example.com", role=role)
        token = create_session(session=s, user=user)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def wizard_to_streams(wizard: WizardState, name: str, shop: str = SHOP) -> None:
    await WizardState.choose_platform.fn(wizard, "shopify")
    await WizardState.set_name.fn(wizard, name)
    await WizardState.set_shop_domain.fn(wizard, shop)
    await WizardState.go_to.fn(wizard, 3)
    assert wizard.step == 3


async def test_connect_now_again_after_back_reuses_the_pending_integration(
    hub_db: sa.Engine,
) -> None:
    wizard = signed_in(WizardState(_reflex_internal_init=True))
    await WizardState.reset_wizard.fn(wizard)
    await wizard_to_streams(wizard, "Outdoor")
    await WizardState.connect_now.fn(wizard)
    first = wizard.created_id

    await WizardState.go_to.fn(wizard, 2)  # Back, a new name, fewer streams, Connect now again
    await WizardState.set_name.fn(wizard, "Outdoor US")
    await WizardState.go_to.fn(wizard, 3)
    await WizardState.toggle_stream.fn(wizard, "customers")
    await WizardState.connect_now.fn(wizard)

    assert wizard.created_id == first and wizard.error == ""
    with session_scope() as s:
        (integration,) = s.exec(select(Integration)).all()
        assert integration.display_name == "Outdoor US" and integration.status == "pending"
        streams = s.exec(select(StreamConfig.stream).where(
            StreamConfig.integration_id == integration.id)).all()  # fmt: skip
        assert sorted(streams) == ["inventory", "orders", "products"]

    # A connect link from the same run is for that integration too; a new run starts afresh.
    await WizardState.create_link.fn(wizard)
    await WizardState.reset_wizard.fn(wizard)
    await wizard_to_streams(wizard, "Another", shop="another-shop.myshopify.com")
    await WizardState.connect_now.fn(wizard)
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == 2
        (link,) = s.exec(select(ConnectLink)).all()
        assert str(link.integration_id) == first


async def test_the_wizard_warns_when_the_shop_is_connected_and_links_to_it(
    hub_db: sa.Engine,
) -> None:
    with session_scope() as s:
        holder = create_integration(
            session=s, platform="shopify", display_name="Outdoor", shop_domain=SHOP
        )
        mark_connected(session=s, integration_id=holder.id)
    wizard = signed_in(WizardState(_reflex_internal_init=True))
    await WizardState.reset_wizard.fn(wizard)
    await wizard_to_streams(wizard, "Outdoor twice", shop=SHOP.upper())

    assert wizard.connected_id == str(holder.id) and wizard.connected_name == "Outdoor"
    # The page shows that as the warning with a link to /integrations/<id>, and the buttons
    # are disabled; a Connect now sent anyway creates nothing.
    await WizardState.connect_now.fn(wizard)
    assert "already connected to the integration \u201cOutdoor\u201d" in wizard.error
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == 1

    await WizardState.go_to.fn(wizard, 2)  # another shop: no warning
    await WizardState.set_shop_domain.fn(wizard, "fresh-shop.myshopify.com")
    await WizardState.go_to.fn(wizard, 3)
    assert wizard.connected_id == ""


# --- stale pending integrations ---------------------------------------------------------------


async def test_stale_pending_integrations_are_labelled_and_discarded_by_a_manager(
    hub_db: sa.Engine,
) -> None:
    old = datetime.now(UTC) - timedelta(days=3, hours=1)
    with session_scope() as s:
        made = {
            name: create_integration(
                session=s,
                platform="shopify",
                display_name=name,
                shop_domain=f"{name.lower()}.myshopify.com",
            )
            for name in ("Abandoned", "Waiting", "Fresh", "Connected")
        }
        for name in ("Abandoned", "Waiting", "Connected"):
            made[name].created_at = old
        create_connect_link(session=s, integration_id=made["Waiting"].id)  # merchant may answer
        mark_connected(session=s, integration_id=made["Connected"].id)
        ids = {name: integration.id for name, integration in made.items()}

    page = signed_in(IntegrationsState(_reflex_internal_init=True))
    await IntegrationsState.load_integrations.fn(page)
    labels = {row["name"]: row["never_connected"] for row in page.rows}
    assert labels == {
        "Abandoned": "Never connected \u00b7 3 days",
        "Waiting": "",
        "Fresh": "",
        "Connected": "",
    }
    assert page.stale_count == 1
    page.dirty_vars.clear()
    page.apply(await page.fetch())
    assert page.dirty_vars == set()  # the labels cost nothing on a quiet tick

    viewer = signed_in(IntegrationsState(_reflex_internal_init=True), Role.VIEWER)
    await IntegrationsState.discard_stale_pending.fn(viewer)
    with session_scope() as s:
        assert s.get(Integration, ids["Abandoned"]) is not None

    toast = await IntegrationsState.discard_stale_pending.fn(page)
    assert "Discarded 1 pending integration" in str(toast)
    assert page.stale_count == 0 and "Abandoned" not in {row["name"] for row in page.rows}
    with session_scope() as s:
        assert s.get(Integration, ids["Abandoned"]) is None
        assert not s.exec(
            select(StreamConfig).where(StreamConfig.integration_id == ids["Abandoned"])
        ).all()
        (audit,) = s.exec(
            select(AuditLog).where(AuditLog.action == "integration.discard_stale")
        ).all()
        assert audit.context["names"] == ["Abandoned"]
    assert "No stale pending" in str(await IntegrationsState.discard_stale_pending.fn(page))


# --- retry once --------------------------------------------------------------------------------


def failed_run() -> uuid.UUID:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Acme", shop_domain=SHOP,
            streams={"orders": 5},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        run = SyncRun(integration_id=integration.id, stream="orders", status="failed",
                      error="Shopify answered 503")  # fmt: skip
        s.add(run)
        s.flush()
        return run.id


@pytest.fixture
def engine_starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[uuid.UUID]]:
    """The runs the engine was asked to start (not run: this is about what gets queued)."""
    started: list[uuid.UUID] = []
    monkeypatch.setattr(sync.SyncEngine, "start", lambda self, run_id: started.append(run_id))
    sync.set_engine(None)
    yield started
    sync.set_engine(None)


async def test_retry_four_times_queues_one_run(
    hub_db: sa.Engine, engine_starts: list[uuid.UUID]
) -> None:
    run_id = failed_run()
    runs_page = signed_in(RunsState(_reflex_internal_init=True))
    toasts = [str(await RunsState.retry_run.fn(runs_page, str(run_id))) for _ in range(4)]

    assert "Retry queued." in toasts[0]
    assert all("retried already" in toast for toast in toasts[1:]), toasts
    with session_scope() as s:
        retries = s.exec(select(SyncRun).where(SyncRun.trigger == "retry")).all()
        assert len(retries) == 1 and engine_starts == [retries[0].id]
    # The row says so: a retried run names its retry and offers no Retry any more.
    (row,) = [r for r in runs_page.rows if r["id"] == str(run_id)]
    assert row["resumed_by"] == str(retries[0].id)
    assert "retry" not in row["actions"]


async def test_concurrent_retries_queue_one_run(
    any_db: sa.Engine, engine_starts: list[uuid.UUID]
) -> None:
    run_id = failed_run()
    results = await asyncio.gather(
        *[sync.retry_run(run_id=run_id) for _ in range(4)], return_exceptions=True
    )
    queued = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if isinstance(r, sync.SyncRefused)]
    assert len(set(queued)) == 1 and len(queued) + len(refused) == 4, results
    with session_scope() as s:
        assert len(s.exec(select(SyncRun).where(SyncRun.trigger == "retry")).all()) == 1
        assert s.get(SyncRun, run_id).resumed_by == queued[0]
    with session_scope() as s:
        assert runs_service.list_runs(session=s)[-1]["resumed_by"] == str(queued[0])
