"""Input that helps (issue 15): the wizard takes a shop as a handle, a domain or an admin URL
and shows the shop it names, still refuses hostile input through the one gate, bounds the
intervals (an empty one is an error, not a silent 15) and shows each error once, next to its
field."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import select

from connectors.errors import InvalidInput
from connectors.shopify.domains import shop_domain_from_input
from dashboard.db import session_scope
from dashboard.models import Integration, Role, StreamConfig
from dashboard.services.auth import create_session, create_user
from dashboard.services.integrations import shop_from_input
from dashboard.state.wizard import WizardState


@pytest.mark.parametrize(
    "typed",
    [
        "acme-outdoor",
        "  Acme-Outdoor ",
        "acme-outdoor.myshopify.com",
        "https://acme-outdoor.myshopify.com",
        "https://acme-outdoor.myshopify.com/admin",
        "https://acme-outdoor.myshopify.com/admin/products?selectedView=all",
        "acme-outdoor.myshopify.com/admin",
        "https://admin.shopify.com/store/acme-outdoor",
        "https://admin.shopify.com/store/acme-outdoor/products/123",
        "admin.shopify.com/store/acme-outdoor",
    ],
)
def test_a_handle_domain_or_admin_url_names_the_shop(typed: str) -> None:
    assert shop_from_input(typed) == "acme-outdoor.myshopify.com"


@pytest.mark.parametrize(
    "typed",
    [
        "https://acme.myshopify.com.evil.com/admin",
        "https://evil.com/acme.myshopify.com",
        "https://user:pass@acme.myshopify.com/admin",
        "https://acme.myshopify.com:8443/admin",
        "https://admin.shopify.com/store/../../evil",
        "https://admin.shopify.com/settings",
        "https://admin.shopify.com.evil.com/store/acme",
        "javascript:alert(1)//acme.myshopify.com",
        "ftp://acme.myshopify.com/admin",
        "acme outdoor",
        "-acme",
        "127.0.0.1",
        "acme.myshopify.com\n.evil.com",
    ],
)
def test_hostile_input_is_still_refused_by_the_one_gate(typed: str) -> None:
    with pytest.raises(InvalidInput, match="is not a Shopify shop domain"):
        shop_from_input(typed)


def test_only_the_known_shapes_are_rewritten() -> None:
    """Anything else comes back as typed, for validate_shop_domain to judge."""
    assert shop_domain_from_input("https://evil.com/x") == "https://evil.com/x"
    assert shop_domain_from_input("a.b.c") == "a.b.c"


def wizard(role: Role = Role.MANAGER) -> Any:
    with session_scope() as s:
        user, _ = create_user(session=s, email=f"{uuid.uuid4().hex[:8]}@example.com", role=role)
        token = create_session(session=s, user=user)
    state = WizardState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def test_the_wizard_shows_the_normalised_shop_as_it_is_typed(hub_db: sa.Engine) -> None:
    form = wizard()
    await WizardState.reset_wizard.fn(form)
    await WizardState.choose_platform.fn(form, "shopify")
    await WizardState.set_shop_domain.fn(form, "https://admin.shopify.com/store/acme-outdoor")
    assert (form.shop_normalized, form.shop_error) == ("acme-outdoor.myshopify.com", "")
    await WizardState.set_shop_domain.fn(form, "https://acme.myshopify.com.evil.com/admin")
    assert form.shop_normalized == ""
    assert "is not a Shopify shop domain" in form.shop_error
    await WizardState.set_shop_domain.fn(form, "acme-outdoor")
    await WizardState.set_name.fn(form, "Acme Outdoor")
    await WizardState.go_to.fn(form, 3)
    assert form.step == 3
    await WizardState.create_link.fn(form)
    with session_scope() as s:
        assert s.exec(select(Integration)).one().shop_domain == "acme-outdoor.myshopify.com"


async def test_each_error_is_shown_once_next_to_its_field(hub_db: sa.Engine) -> None:
    form = wizard()
    await WizardState.reset_wizard.fn(form)
    await WizardState.choose_platform.fn(form, "shopify")
    await WizardState.set_name.fn(form, "n" * 500)
    assert form.name_error == "Keep the name to 120 characters; this one has 500."
    await WizardState.go_to.fn(form, 3)
    assert form.step == 2 and form.error == ""  # the message is by the field, not in a callout
    assert form.shop_error == "Enter the shop's domain, for example my-store.myshopify.com."

    await WizardState.set_name.fn(form, "Acme")
    await WizardState.set_shop_domain.fn(form, "acme")
    await WizardState.go_to.fn(form, 3)
    assert form.step == 3 and form.name_error == form.shop_error == ""

    await WizardState.set_interval.fn(form, "orders", "")
    assert form.interval_errors == {"orders": "Enter how often to sync, in minutes."}
    await WizardState.set_interval.fn(form, "products", "100000000")
    assert form.interval_errors["products"] == (
        "The interval must be at most 7 days (10,080 minutes)."
    )
    # No toast beside the field's message, and nothing is created with a silent 15.
    assert await WizardState.create_link.fn(form) is None
    assert await WizardState.connect_now.fn(form) is None
    assert form.error == "" and form.link_url == ""
    with session_scope() as s:
        assert s.exec(select(Integration)).all() == []

    await WizardState.set_interval.fn(form, "orders", "5")
    await WizardState.set_interval.fn(form, "products", "10080")
    assert form.interval_errors == {}
    await WizardState.create_link.fn(form)
    assert form.step == 4
    with session_scope() as s:
        intervals = {c.stream: c.interval_minutes for c in s.exec(select(StreamConfig)).all()}
        assert intervals["orders"] == 5 and intervals["products"] == 10080


async def test_a_turned_off_stream_needs_no_interval(hub_db: sa.Engine) -> None:
    form = wizard()
    await WizardState.reset_wizard.fn(form)
    await WizardState.choose_platform.fn(form, "shopify")
    await WizardState.set_name.fn(form, "Acme")
    await WizardState.set_shop_domain.fn(form, "acme.myshopify.com")
    await WizardState.go_to.fn(form, 3)
    await WizardState.set_interval.fn(form, "customers", "")
    await WizardState.toggle_stream.fn(form, "customers")
    assert form.interval_errors == {}
    await WizardState.create_link.fn(form)
    assert form.step == 4
    with session_scope() as s:
        streams = {c.stream for c in s.exec(select(StreamConfig)).all()}
        assert streams == {"products", "inventory", "orders"}
