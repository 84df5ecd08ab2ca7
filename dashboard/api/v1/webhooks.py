"""Change webhooks of an integration: register a URL per record kind, list, remove."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from dashboard.api.v1.auth import require_integration, scoped
from dashboard.api.v1.errors import ERROR_RESPONSES, ApiError, ErrorBody
from dashboard.api.v1.records import KINDS
from dashboard.api.v1.routing import KeyRoute
from dashboard.db import in_session
from dashboard.models import ChangeWebhook
from dashboard.services import change_webhooks
from dashboard.services.api_keys import ApiClient

router = APIRouter(route_class=KeyRoute, tags=["webhooks"], responses=ERROR_RESPONSES)
URL_KIND = {kind: url_kind for url_kind, kind in KINDS.items()}
RecordKindName = Literal[
    "products", "variants", "inventory_levels", "orders", "order_lines", "customers"
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such integration or webhook"}
}


class WebhookCreate(BaseModel):
    kind: RecordKindName
    url: str = Field(min_length=8, max_length=1000, description="https://... receiving POSTs")


class WebhookOut(BaseModel):
    id: uuid.UUID
    integration_id: uuid.UUID
    kind: str
    url: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Verifies X-Hub-Signature-256; shown only now")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


def _out(webhook: ChangeWebhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        integration_id=webhook.integration_id,
        kind=URL_KIND[webhook.kind],
        url=webhook.url,
        created_at=webhook.created_at,
    )


@router.post(
    "/integrations/{integration_id}/webhooks",
    status_code=201,
    summary="Be told when records of a kind change",
    responses={**NOT_FOUND, 400: {"model": ErrorBody, "description": "Bad URL"}},
)
async def register(
    integration_id: uuid.UUID,
    body: WebhookCreate,
    client: Annotated[ApiClient, Depends(scoped("records:read"))],
) -> WebhookCreated:
    require_integration(client, integration_id)

    def write(session: Session) -> WebhookCreated:
        try:
            webhook, secret = change_webhooks.register_webhook(
                session=session,
                integration_id=integration_id,
                kind=KINDS[body.kind],
                url=body.url,
                actor=client.actor,
            )
        except LookupError:
            raise ApiError(404, "not_found", "no such integration") from None
        except change_webhooks.WebhookInvalid as error:
            raise ApiError(400, "invalid_webhook", str(error)) from None
        return WebhookCreated(**_out(webhook).model_dump(), secret=secret)

    return await in_session(write)


@router.get("/integrations/{integration_id}/webhooks", summary="Registered change webhooks")
async def list_webhooks(
    integration_id: uuid.UUID,
    client: Annotated[ApiClient, Depends(scoped("records:read"))],
) -> WebhookList:
    require_integration(client, integration_id)
    rows = await in_session(
        lambda s: change_webhooks.list_webhooks(session=s, integration_id=integration_id)
    )
    return WebhookList(webhooks=[_out(row) for row in rows])


@router.delete(
    "/integrations/{integration_id}/webhooks/{webhook_id}",
    status_code=204,
    summary="Stop a change webhook",
    responses=NOT_FOUND,
)
async def delete(
    integration_id: uuid.UUID,
    webhook_id: uuid.UUID,
    client: Annotated[ApiClient, Depends(scoped("records:read"))],
) -> Response:
    require_integration(client, integration_id)

    def write(session: Session) -> None:
        try:
            change_webhooks.delete_webhook(
                session=session,
                webhook_id=webhook_id,
                actor=client.actor,
                integration_id=integration_id,
            )
        except LookupError:
            raise ApiError(404, "not_found", "no such webhook") from None

    await in_session(write)
    return Response(status_code=204)
