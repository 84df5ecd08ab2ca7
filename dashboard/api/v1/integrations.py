"""Integrations, connect links, syncs and runs: the same services as the dashboard's pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from connectors.errors import InvalidInput
from dashboard.api.v1.auth import require_integration, scoped
from dashboard.api.v1.errors import ERROR_RESPONSES, ApiError, ErrorBody
from dashboard.api.v1.routing import KeyRoute
from dashboard.db import in_session
from dashboard.models import Integration, SyncRun
from dashboard.services import health as health_service
from dashboard.services import runs as runs_service
from dashboard.services import sync
from dashboard.services.api_keys import ApiClient
from dashboard.services.audit import record_audit
from dashboard.services.connect_links import connect_link_url, create_connect_link
from dashboard.services.integrations import create_integration

router = APIRouter(route_class=KeyRoute, tags=["integrations"], responses=ERROR_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such integration or run"}
}


class StreamOut(BaseModel):
    stream: str
    enabled: bool
    health: str
    cause: str = Field(description="Why the stream is not healthy, as a code; empty if it is")
    cause_words: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    consecutive_failures: int
    active_run_id: uuid.UUID | None


class IntegrationOut(BaseModel):
    id: uuid.UUID
    platform: str
    display_name: str
    status: str
    status_detail: str | None
    health: str = Field(description="One word: connected, syncing, failing, needs_reauth, ...")
    failing_streams: int
    shop_domain: str | None
    region: str | None
    marketplaces: list[str]
    created_at: datetime
    connected_at: datetime | None
    last_sync_at: datetime | None
    streams: list[StreamOut] | None = Field(None, description="On reading one integration")


class IntegrationList(BaseModel):
    integrations: list[IntegrationOut]


class IntegrationCreate(BaseModel):
    platform: Literal["shopify", "amazon"]
    display_name: str = Field(min_length=1, max_length=200)
    shop_domain: str | None = Field(
        None,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*\.myshopify\.com$",
        description="Shopify: the shop's x.myshopify.com domain",
    )
    region: Literal["na", "eu", "fe"] | None = Field(None, description="Amazon: the region")
    marketplaces: list[str] = Field(default_factory=list, max_length=30)
    streams: dict[str, int] | None = Field(
        None, description="Stream -> interval in minutes; none: the platform's defaults"
    )


class ConnectLinkOut(BaseModel):
    url: str = Field(description="Send it to the merchant: they approve the access there")
    expires_at: datetime


class SyncRequest(BaseModel):
    stream: str | None = Field(None, max_length=64, description="None: every enabled stream")
    full_refresh: bool = False


class SyncQueued(BaseModel):
    run_ids: list[uuid.UUID]


class RunOut(BaseModel):
    id: uuid.UUID
    integration_id: uuid.UUID
    stream: str
    status: str
    trigger: str
    records_read: int
    inserted: int
    updated: int
    deleted: int
    skipped: int
    progress: int | None = Field(description="Percent, when the platform tells the total")
    error: str
    attempt: int
    full_refresh: bool
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class RunList(BaseModel):
    runs: list[RunOut]


def _integration_out(
    integration: Integration, health: dict[str, Any], streams: list[StreamOut] | None = None
) -> IntegrationOut:
    return IntegrationOut(
        id=integration.id,
        platform=integration.platform,
        display_name=integration.display_name,
        status=integration.status,
        status_detail=integration.status_detail,
        health=str(health.get("health") or integration.status),
        failing_streams=int(health.get("failing_streams") or 0),
        shop_domain=integration.shop_domain,
        region=integration.region,
        marketplaces=list(integration.marketplaces or []),
        created_at=integration.created_at,
        connected_at=integration.connected_at,
        last_sync_at=integration.last_sync_at,
        streams=streams,
    )


def _when(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _run_out(summary: dict[str, Any]) -> RunOut:
    return RunOut(
        id=summary["id"],
        integration_id=summary["integration_id"],
        stream=summary["stream"],
        status=summary["status"],
        trigger=summary["trigger"],
        records_read=summary["records_read"],
        inserted=summary["inserted"],
        updated=summary["updated"],
        deleted=summary["deleted"],
        skipped=summary["skipped"],
        progress=summary["progress"] if summary["has_progress"] else None,
        error=summary["error"],
        attempt=summary["attempt"],
        full_refresh=summary["full_refresh"],
        created_at=_when(summary["created_at"]),
        started_at=_when(summary["started_at"]),
        finished_at=_when(summary["finished_at"]),
    )


def _get(session: Session, integration_id: uuid.UUID) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise ApiError(404, "not_found", "no such integration")
    return integration


@router.get("/integrations", summary="Integrations with their health")
async def list_integrations(
    client: Annotated[ApiClient, Depends(scoped("integrations:read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> IntegrationList:
    def read(session: Session) -> IntegrationList:
        statement = select(Integration).order_by(col(Integration.created_at), col(Integration.id))
        if client.integration_ids:
            allowed = [uuid.UUID(i) for i in client.integration_ids]
            statement = statement.where(col(Integration.id).in_(allowed))
        integrations = list(session.exec(statement.offset(offset).limit(limit)).all())
        health = health_service.integration_health(
            session=session, ids=[i.id for i in integrations]
        )
        return IntegrationList(
            integrations=[_integration_out(i, health.get(str(i.id), {})) for i in integrations]
        )

    return await in_session(read)


@router.get(
    "/integrations/{integration_id}",
    summary="One integration, its streams' health",
    responses=NOT_FOUND,
)
async def read_integration(
    integration_id: uuid.UUID,
    client: Annotated[ApiClient, Depends(scoped("integrations:read"))],
) -> IntegrationOut:
    require_integration(client, integration_id)

    def read(session: Session) -> IntegrationOut:
        integration = _get(session, integration_id)
        health = health_service.integration_health(session=session, ids=[integration_id])
        streams = [
            StreamOut(
                stream=row["stream"],
                enabled=row["enabled"],
                health=row["health"],
                cause=row["cause"],
                cause_words=row["cause_words"],
                last_success_at=_when(row["last_success_at"]),
                last_failure_at=_when(row["last_failure_at"]),
                consecutive_failures=row["consecutive_failures"],
                active_run_id=uuid.UUID(row["run_id"]) if row["run_id"] else None,
            )
            for row in health_service.stream_health(session=session, integration_id=integration_id)
        ]
        return _integration_out(integration, health.get(str(integration_id), {}), streams)

    return await in_session(read)


@router.post(
    "/integrations",
    status_code=201,
    summary="Create a pending integration",
    responses={400: {"model": ErrorBody, "description": "Details to fix"}},
)
async def create(
    body: IntegrationCreate,
    client: Annotated[ApiClient, Depends(scoped("integrations:write"))],
) -> IntegrationOut:
    if client.integration_ids:
        raise ApiError(
            403, "integration_not_allowed", "a key limited to some integrations cannot create one"
        )

    def write(session: Session) -> IntegrationOut:
        try:
            integration = create_integration(
                session=session,
                platform=body.platform,
                display_name=body.display_name,
                shop_domain=body.shop_domain,
                region=body.region,
                marketplaces=body.marketplaces,
                streams=body.streams,
            )
        except InvalidInput as error:
            raise ApiError(400, "invalid_integration", str(error)) from None
        record_audit(
            session=session,
            actor=client.actor,
            action="api.integration.create",
            target=str(integration.id),
        )
        return _integration_out(integration, {})

    return await in_session(write)


@router.post(
    "/integrations/{integration_id}/connect-links",
    status_code=201,
    summary="A link for the merchant to connect (or reconnect) the account",
    responses=NOT_FOUND,
)
async def new_connect_link(
    integration_id: uuid.UUID,
    client: Annotated[ApiClient, Depends(scoped("integrations:write"))],
) -> ConnectLinkOut:
    require_integration(client, integration_id)

    def write(session: Session) -> ConnectLinkOut:
        integration = _get(session, integration_id)
        purpose = "connect" if integration.connected_at is None else "reconnect"
        link, token = create_connect_link(
            session=session, integration_id=integration.id, purpose=purpose
        )
        record_audit(
            session=session,
            actor=client.actor,
            action="api.connect_link.create",
            target=str(integration.id),
        )
        return ConnectLinkOut(url=connect_link_url(token), expires_at=link.expires_at)

    return await in_session(write)


@router.post(
    "/integrations/{integration_id}/syncs",
    status_code=202,
    summary="Sync a stream (or every enabled one) now",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "The integration cannot sync now"},
    },
)
async def request_sync(
    integration_id: uuid.UUID,
    body: SyncRequest,
    client: Annotated[ApiClient, Depends(scoped("syncs:write"))],
) -> SyncQueued:
    require_integration(client, integration_id)
    await in_session(lambda session: _get(session, integration_id))
    try:
        run_ids = await sync.request_sync(
            integration_id=integration_id, stream=body.stream, full_refresh=body.full_refresh
        )
    except (sync.SyncRefused, ValueError) as refused:
        raise ApiError(409, "sync_refused", str(refused)) from None

    def audit(session: Session) -> None:
        record_audit(
            session=session,
            actor=client.actor,
            action="api.sync.request",
            target=str(integration_id),
            context={"stream": body.stream or "all", "runs": [str(r) for r in run_ids]},
        )

    await in_session(audit)
    return SyncQueued(run_ids=run_ids)


@router.get(
    "/integrations/{integration_id}/runs",
    summary="Runs of an integration, newest first",
    responses=NOT_FOUND,
)
async def list_runs(
    integration_id: uuid.UUID,
    client: Annotated[ApiClient, Depends(scoped("integrations:read"))],
    status: Annotated[str, Query(max_length=16)] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunList:
    require_integration(client, integration_id)

    def read(session: Session) -> RunList:
        _get(session, integration_id)
        summaries = runs_service.list_runs(
            session=session,
            status=status,
            integration_id=integration_id,
            limit=limit,
            offset=offset,
        )
        return RunList(runs=[_run_out(summary) for summary in summaries])

    return await in_session(read)


@router.get("/runs/{run_id}", summary="One run", responses=NOT_FOUND)
async def read_run(
    run_id: uuid.UUID,
    client: Annotated[ApiClient, Depends(scoped("integrations:read"))],
) -> RunOut:
    def read(session: Session) -> RunOut:
        run = session.get(SyncRun, run_id)
        if run is None or not client.may_reach(run.integration_id):
            raise ApiError(404, "not_found", "no such run")
        [summary] = runs_service.summaries_of(session=session, run_ids=[run_id])
        return _run_out(summary)

    return await in_session(read)
