"""The backend's log as an operator reads it: with ``HUB_LOG_FORMAT=json`` one JSON object per
line on standard output, each with the id of the request or the sync run it belongs to, one
line per platform request (method, host, path without the query, status, duration,
platform), and no secret."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from starlette.applications import Starlette

from dashboard.api import build_api
from dashboard.logging_setup import configure_logging
from tests.test_shopify_sync import connect, engine_for

ROOT = Path(__file__).resolve().parent.parent
SECRET = "shpat_do-not-log-this-token"

BACKEND = f"""
import asyncio, logging, httpx
from dashboard.logging_setup import configure_from_settings, log_context
from dashboard.settings import load_settings
from connectors.http import build_client

configure_from_settings(load_settings())  # what hub_lifespan does in every worker

async def main() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={{}}))
    with log_context(run_id="run-1", integration_id="integration-1"):
        async with build_client(transport=transport) as client:
            await client.get("https://sellingpartnerapi-na.amazon.com/fba/inventory/v1/summaries",
                             params={{"nextToken": "{SECRET}", "granularityType": "Marketplace"}})
        logging.getLogger("hub.sync").info('{{"message": "run started", "stream": "inventory"}}')
    logging.getLogger("dashboard.example").debug("a debug line")

asyncio.run(main())
"""


def run_backend(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
        "HUB_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", BACKEND], env=environment, cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip


def test_json_format_prints_one_object_per_line_on_stdout(tmp_path: Path) -> None:
    result = run_backend(tmp_path, HUB_LOG_FORMAT="json", HUB_LOG_LEVEL="info")
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # each line is JSON
    request = next(line for line in lines if line["logger"] == "hub.platform")
    assert request["platform"] == "amazon" and request["operation"] == "getInventorySummaries"
    assert request["method"] == "GET" and request["status"] == 200
    assert request["host"] == "sellingpartnerapi-na.amazon.com"
    assert request["path"] == "/fba/inventory/v1/summaries"
    assert isinstance(request["duration_ms"], float)
    assert request["run_id"] == "run-1" and request["integration_id"] == "integration-1"
    sync = next(line for line in lines if line["logger"] == "hub.sync")
    assert sync["message"] == "run started" and sync["stream"] == "inventory"  # merged
    assert sync["run_id"] == "run-1"
    assert not [line for line in lines if line["logger"] == "httpx"]  # ours replaces it
    assert not any(line["level"] == "debug" for line in lines)  # HUB_LOG_LEVEL=info
    assert SECRET not in result.stdout + result.stderr


def test_text_format_and_debug_level(tmp_path: Path) -> None:
    result = run_backend(tmp_path, HUB_LOG_LEVEL="DEBUG")
    assert "{" not in result.stdout.splitlines()[0]  # text by default
    assert "DEBUG dashboard.example: a debug line" in result.stdout
    request = next(line for line in result.stdout.splitlines() if "hub.platform" in line)
    assert "GET sellingpartnerapi-na.amazon.com/fba/inventory/v1/summaries 200" in request
    assert "run_id=run-1" in request
    assert SECRET not in result.stdout + result.stderr


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(log_format="json", level="INFO", stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_request_s_lines_carry_its_request_id(hub_db: object, json_log: io.StringIO):
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        response = await client.post(
            "/api/webhooks/shopify",
            content=b"{}",
            headers={"X-Shopify-Topic": "products/update", "X-Shopify-Webhook-Id": "w1",
                     "X-Shopify-Hmac-Sha256": "forged", "X-Request-ID": "proxy-id-1"},
        )  # fmt: skip
        assert response.status_code == 401
        assert response.headers["x-request-id"] == "proxy-id-1"
        hostile = await client.get("/api/health", headers={"X-Request-ID": "a b\nforged"})
        generated = hostile.headers["x-request-id"]
        assert uuid.UUID(generated)  # a made-up id is replaced, not logged
        again = (await client.get("/api/health")).headers["x-request-id"]
        assert again != generated and uuid.UUID(again)
    refused = next(line for line in lines_of(json_log) if "bad signature" in line["message"])
    assert refused["request_id"] == "proxy-id-1"
    assert refused["level"] == "warning"


async def test_every_line_of_a_sync_run_carries_its_run_and_integration(
    hub_db: object, session: Session, json_log: io.StringIO
) -> None:
    from tests.sandbox_server import running_sandbox

    with running_sandbox(seed=3, time_scale=50) as (base, _app):
        integration_id = connect(session, base, products=12, orders=0, customers=0, locations=1)
        engine = engine_for(base)
        [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
        await engine.wait()
    lines = lines_of(json_log)
    of_the_run = [line for line in lines if line["logger"] in ("hub.sync", "hub.platform")]
    requests = [line for line in of_the_run if line["logger"] == "hub.platform"]
    assert requests and any(line.get("operation") == "Products" for line in requests)
    assert {line["message"] for line in of_the_run} >= {"run started", "run succeeded"}
    for line in of_the_run:
        assert line["run_id"] == str(run_id), line
        assert line["integration_id"] == str(integration_id), line


def test_forked_workers_make_request_ids_of_their_own() -> None:
    """Granian forks its workers from one process: each must draw its own prefix, or two
    workers would give different requests the same id."""
    from dashboard.logging_setup import _new_request_id

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only writes its id
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    ours = _new_request_id()
    assert len(theirs) == len(ours) == 32
    assert theirs[:12] != ours[:12]
