"""Reports API: create or reuse a report, wait for it, stream its document row by row.

Report documents are gzipped, tab-separated flat files in the charset their download says
(Cp1252 in NA/EU, Shift_JIS/windows-31j in JP, sometimes none): they are decompressed and
decoded incrementally, so a million-row listings report needs no more memory than a chunk.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.amazon.client import SpApiClient
from connectors.errors import PlatformError, TransientError
from connectors.ratelimit import report_preparing

log = logging.getLogger("connectors.amazon")
REPORTS = "/reports/2021-06-30"
TERMINAL = ("DONE", "CANCELLED", "FATAL")
# What a person calls the reports the hub requests.
REPORT_NAMES = {"GET_MERCHANT_LISTINGS_ALL_DATA": "the listings report"}
# Java-style names Amazon puts in Content-Type, mapped to Python codecs.
CHARSETS = {
    "cp1252": "cp1252",
    "windows-1252": "cp1252",
    "iso-8859-1": "latin-1",
    "shift_jis": "cp932",  # Amazon's Shift_JIS is Microsoft's superset in practice
    "windows-31j": "cp932",
    "ms932": "cp932",
    "utf-8": "utf-8",
}
FALLBACK_CHARSET = "latin-1"  # never fails; what python-amazon-sp-api falls back to


@dataclass(frozen=True)
class ReportPolling:
    initial: float = 5.0  # seconds before the first getReport
    maximum: float = 60.0
    deadline: float = 4 * 3600.0  # a report still queued after this fails the run


class ReportFailed(PlatformError):
    """Amazon gave up on the report (FATAL)."""


async def find_recent_report(
    client: SpApiClient, report_type: str, marketplace: str, since: datetime
) -> str | None:
    """A DONE report of this type and marketplace created after ``since``, to reuse."""
    body = await client.call(
        "getReports",
        "GET",
        f"{REPORTS}/reports",
        params={
            "reportTypes": [report_type],
            "processingStatuses": ["DONE"],
            "marketplaceIds": [marketplace],
            "createdSince": since.astimezone(UTC).isoformat(),
            "pageSize": 10,
        },
    )
    for report in body.get("reports") or []:
        if report.get("marketplaceIds") == [marketplace] and report.get("reportDocumentId"):
            return str(report["reportId"])
    return None


async def create_report(client: SpApiClient, report_type: str, marketplace: str) -> str:
    body = await client.call(
        "createReport",
        "POST",
        f"{REPORTS}/reports",
        json={"reportType": report_type, "marketplaceIds": [marketplace]},
    )
    report_id = body.get("reportId")
    if not report_id:
        raise PlatformError("createReport answered without a reportId")
    return str(report_id)


async def wait_for_report(
    client: SpApiClient, report_id: str, polling: ReportPolling
) -> dict[str, Any]:
    """getReport with growing pauses until DONE, CANCELLED or FATAL."""
    delay = polling.initial
    waited = 0.0
    while True:
        report = await client.call("getReport", "GET", f"{REPORTS}/reports/{report_id}")
        status = report.get("processingStatus")
        what = REPORT_NAMES.get(str(report.get("reportType")), "the report")
        if status in TERMINAL:
            await report_preparing(0, what=what, status=str(status))
            return report
        if waited >= polling.deadline:
            raise TransientError(
                f"report {report_id} still {status} after {waited / 60:.0f} minutes"
            )
        # A known wait, not a stall: the run shows it, and its stall clock runs from the
        # report's last change of status (IN_QUEUE -> IN_PROGRESS), not from the last page.
        await report_preparing(delay, what=what, status=str(status))
        await asyncio.sleep(delay)
        waited += delay
        delay = min(polling.maximum, delay * 1.5)


async def document_url(client: SpApiClient, document_id: str) -> tuple[str, bool]:
    body = await client.call("getReportDocument", "GET", f"{REPORTS}/documents/{document_id}")
    url = body.get("url")
    if not url:
        raise PlatformError("getReportDocument answered without a url")
    return str(url), body.get("compressionAlgorithm") == "GZIP"


def charset_of(content_type: str | None) -> str:
    for part in (content_type or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return CHARSETS.get(value.strip().strip('"').lower(), FALLBACK_CHARSET)
    return FALLBACK_CHARSET


async def stream_rows(
    client: SpApiClient, url: str, *, gzipped: bool, skip: int = 0
) -> AsyncIterator[dict[str, str]]:
    """Rows of a tab-separated document as dicts keyed by its header, in constant memory."""
    async with client.download(url) as response:
        if response.status_code != 200:
            raise TransientError(f"report download answered {response.status_code}")
        decoder = codecs.getincrementaldecoder(charset_of(response.headers.get("content-type")))(
            errors="replace"
        )
        inflater = zlib.decompressobj(wbits=47) if gzipped else None  # 47: gzip or zlib
        header: list[str] | None = None
        pending = ""
        seen = 0
        async for chunk in response.aiter_bytes():
            data = inflater.decompress(chunk) if inflater else chunk
            pending += decoder.decode(data)
            lines = pending.split("\n")
            pending = lines.pop()
            for line in lines:
                line = line.rstrip("\r")
                if header is None:
                    header = line.split("\t")
                    continue
                if not line:
                    continue
                seen += 1
                if seen > skip:
                    yield dict(zip(header, line.split("\t"), strict=False))
        tail = inflater.flush() if inflater else b""
        pending += decoder.decode(tail, final=True)
        if pending.strip() and header is not None:
            seen += 1
            if seen > skip:
                yield dict(zip(header, pending.rstrip("\r").split("\t"), strict=False))


def reuse_since(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
