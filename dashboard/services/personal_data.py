"""Buyers' personal data kept with an order: sealed by the vault, opened only for the roles
allowed to read it.

Amazon's Orders v2026-01-01 returns a buyer's name and email and the delivery address in
``buyer`` and ``recipient`` when the app holds the restricted roles and asks for them
(``HUB_AMAZON_BUYER_DATA=encrypted``). The connector takes them out of ``raw``
(``UnifiedRecord.protected``); here they become one AES-GCM ciphertext per order, bound to its
integration and order id, so a ciphertext copied onto another row does not open.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlmodel import Session, col, select

from dashboard.models import Order, Role
from dashboard.services.vault import Vault, get_vault

# Who may read it decrypted on the record view: the people who run integrations, not viewers.
READERS = frozenset({Role.ADMIN.value, Role.MANAGER.value})
# Columns of the orders table that hold it.
COLUMNS = ("personal_key_id", "personal_data")


def _associated_data(integration_id: uuid.UUID | str, external_id: str) -> str:
    return f"hub-order-personal-data/v1|{integration_id}|{external_id}"


def seal(
    protected: dict[str, Any] | None, *, integration_id: uuid.UUID, external_id: str
) -> dict[str, str | None]:
    """The order's personal-data columns: the ciphertext of ``protected``, or None for both
    when there is none (an order synced with the setting off keeps nothing)."""
    if not protected:
        return dict.fromkeys(COLUMNS)
    key_id, ciphertext = get_vault().encrypt(
        json.dumps(protected, sort_keys=True, ensure_ascii=False),
        associated_data=_associated_data(integration_id, external_id),
    )
    return {"personal_key_id": key_id, "personal_data": ciphertext}


def may_read(role: str | None) -> bool:
    return role in READERS


def open_sealed(
    *, key_id: str | None, ciphertext: str | None, integration_id: uuid.UUID | str, external_id: str
) -> dict[str, Any] | None:
    """The personal data of one order, or None when it holds none. Raises VaultError when
    its key is missing or the ciphertext is not this order's."""
    if not key_id or not ciphertext:
        return None
    text = get_vault().decrypt(
        key_id, ciphertext, associated_data=_associated_data(integration_id, external_id)
    )
    data = json.loads(text)
    return data if isinstance(data, dict) else None


def summary_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    """What the record view shows: (label, value), in reading order."""
    buyer = data.get("buyer") or {}
    address = (data.get("recipient") or {}).get("deliveryAddress") or {}
    street = ", ".join(
        str(address[k]) for k in ("addressLine1", "addressLine2", "addressLine3") if address.get(k)
    )
    place = " ".join(
        str(address[k]) for k in ("postalCode", "city", "stateOrRegion") if address.get(k)
    )
    lines = [
        ("Buyer", buyer.get("buyerName")),
        ("Buyer email", buyer.get("buyerEmail")),
        ("Company", buyer.get("buyerCompanyName")),
        ("Ship to", address.get("name")),
        ("Address", ", ".join(p for p in (street, place, address.get("countryCode")) if p)),
        ("Phone", address.get("phone")),
    ]
    return [(label, str(value)) for label, value in lines if value]


def reseal_orders(*, session: Session, vault: Vault, batch_size: int = 200) -> int:
    """Seal again under the newest key every order's data sealed under an older one; returns
    how many. Commits each batch (the same data, so a sync meanwhile loses nothing)."""
    resealed = 0
    while True:
        rows = session.exec(
            select(Order)
            .where(
                col(Order.personal_data).is_not(None),
                col(Order.personal_key_id) != vault.current_key_id,
            )
            .limit(batch_size)
        ).all()
        if not rows:
            return resealed
        for row in rows:
            assert row.personal_key_id is not None and row.personal_data is not None
            where = _associated_data(row.integration_id, row.external_id)
            text = vault.decrypt(row.personal_key_id, row.personal_data, associated_data=where)
            row.personal_key_id, row.personal_data = vault.encrypt(text, associated_data=where)
            session.add(row)
        session.commit()
        resealed += len(rows)


