"""The Records page: whose each record is, a product's SKUs, one record in full, and the
filtered list as a streamed CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session
from starlette.applications import Starlette

from dashboard.api import build_api, records_export
from dashboard.api.records_export import RECORDS_CSV
from dashboard.db import session_scope
from dashboard.models import Integration, Product, Role, Variant
from dashboard.services import records_view
from dashboard.services.auth import create_session, create_user

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def add_integration(session: Session, name: str) -> Integration:
    integration = Integration(platform="shopify", display_name=name,
                              shop_domain=f"{name.lower()}.myshopify.com")  # fmt: skip
    session.add(integration)
    session.flush()
    return integration


def add_product(
    session: Session, integration: Integration, number: int, *, skus: int = 0, **fields: Any
) -> Product:
    product = Product(
        integration_id=integration.id, external_id=f"gid://shopify/Product/{number}",
        title=f"Product {number}", raw={"id": number, "title": f"Product {number}"},
        synced_at=NOW - timedelta(seconds=number), **fields,
    )  # fmt: skip
    session.add(product)
    for n in range(skus):
        session.add(Variant(
            integration_id=integration.id, external_id=f"gid://shopify/ProductVariant/{number}{n}",
            product_external_id=product.external_id, sku=f"SKU-{number}-{n}", raw={},
        ))  # fmt: skip
    session.flush()
    return product


def test_rows_of_several_integrations_name_theirs_and_products_show_variant_skus(
    session: Session,
) -> None:
    acme, globex = add_integration(session, "Acme"), add_integration(session, "Globex")
    add_product(session, acme, 1, skus=2)
    add_product(session, globex, 2, skus=5)
    add_product(session, acme, 3, sku="OWN-3")  # no variants: the product's own SKU (Amazon)
    rows, total = records_view.browse(session=session, kind="product")
    assert total == 3
    by_title = {row["c0"]: row for row in rows}
    assert by_title["Product 1"]["integration"] == "Acme"
    assert by_title["Product 2"]["integration"] == "Globex"
    assert by_title["Product 1"]["c1"] == "SKU-1-0, SKU-1-1"
    assert by_title["Product 2"]["c1"] == "5 variants"
    assert by_title["Product 3"]["c1"] == "OWN-3"
    # A deleted variant is not the product's any more.
    session.execute(sa.update(Variant).where(Variant.sku == "SKU-1-1").values(deleted_at=NOW))
    rows, _ = records_view.browse(session=session, kind="product", integration_id=str(acme.id))
    assert [row["c1"] for row in rows] == ["SKU-1-0", "OWN-3"]


def test_a_records_detail_has_its_fields_and_raw_json(session: Session) -> None:
    acme = add_integration(session, "Acme")
    product = add_product(session, acme, 7, skus=2, vendor="Outdoor Co")
    detail = records_view.record_detail(session=session, kind="product", record_id=str(product.id))
    assert detail["title"] == "Product 7" and detail["integration"] == "Acme"
    fields = {field["label"]: field["value"] for field in detail["fields"]}
    assert fields["Vendor"] == "Outdoor Co"
    assert fields["Variant SKUs"] == "SKU-7-0, SKU-7-1"
    assert '"title": "Product 7"' in detail["raw"]
    assert "raw" not in {field["label"].lower() for field in detail["fields"]}
    gone = str(uuid.uuid4())
    assert records_view.record_detail(session=session, kind="product", record_id=gone) == {}


@pytest.fixture
def export_client(hub_db: sa.Engine) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    return httpx.AsyncClient(transport=transport, base_url="http://hub.test")


def _signed_in(session: Session, role: Role = Role.VIEWER) -> dict[str, str]:
    user, _ = create_user(session=session, email=f"{uuid.uuid4().hex[:8]}@example.com", role=role)
    return {"hub_session": create_session(session=session, user=user)}


async def test_export_streams_what_the_filter_lists_in_batches(
    export_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_export, "EXPORT_BATCH", 7)  # many batches, one ending exactly
    with session_scope() as session:
        acme, globex = add_integration(session, "Acme"), add_integration(session, "Globex")
        for number in range(1, 36):
            add_product(session, (acme, globex)[number % 2], number, skus=number % 3)
        # Rows stored in the same instant still come out once each, in the page's order.
        for number in range(40, 45):
            add_product(session, acme, number, skus=1)
            session.execute(sa.update(Product).where(Product.title == f"Product {number}")
                            .values(synced_at=NOW))  # fmt: skip
        add_product(session, acme, 50, vendor="=HYPERLINK(\"http://x\")")
        cookies = _signed_in(session)
        acme_id = str(acme.id)

    async with export_client as client:
        response = await client.get(RECORDS_CSV, params={"kind": "product", "integration": acme_id},
                                    cookies=cookies)  # fmt: skip
        searched = await client.get(RECORDS_CSV, params={"kind": "product", "search": "product 1"},
                                    cookies=cookies)  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header, *lines = list(csv.reader(io.StringIO(response.text)))
    assert header == ["External id", "Integration", "Title", "SKU", "Status", "Vendor",
                      "Synced at"]  # fmt: skip
    with session_scope() as session:
        shown, total = records_view.browse(session=session, kind="product",
                                           integration_id=acme_id, limit=1000)  # fmt: skip
    # Exactly the rows the page lists, in its order, every page of them.
    assert [line[0] for line in lines] == [row["external_id"] for row in shown]
    assert len(lines) == total == 17 + 5 + 1
    assert {line[1] for line in lines} == {"Acme"}
    product_8 = next(line for line in lines if line[2] == "Product 8")
    assert product_8[3] == "SKU-8-0 SKU-8-1"  # every SKU of its variants
    formula = next(line for line in lines if line[2] == "Product 50")
    assert formula[5].startswith("'=")  # never run by a spreadsheet

    _, *found = list(csv.reader(io.StringIO(searched.text)))
    assert sorted(line[2] for line in found) == sorted(
        f"Product {n}" for n in (1, *range(10, 20))
    )


async def test_export_is_refused_without_a_session(export_client: httpx.AsyncClient) -> None:
    with session_scope() as session:
        add_product(session, add_integration(session, "Acme"), 1)
    async with export_client as client:
        anonymous = await client.get(RECORDS_CSV, params={"kind": "product"})
        forged = await client.get(RECORDS_CSV, params={"kind": "product"},
                                  cookies={"hub_session": "not-a-session"})  # fmt: skip
    for response in (anonymous, forged):
        assert response.status_code == 401
        assert "Product 1" not in response.text


async def test_export_refuses_what_the_page_cannot_ask_for(
    export_client: httpx.AsyncClient,
) -> None:
    with session_scope() as session:
        cookies = _signed_in(session)
    async with export_client as client:
        kind = await client.get(RECORDS_CSV, params={"kind": "users"}, cookies=cookies)
        integration = await client.get(RECORDS_CSV, params={"integration": "1 OR 1=1"},
                                       cookies=cookies)  # fmt: skip
    assert (kind.status_code, integration.status_code) == (400, 400)
