"""Sandbox Amazon reports: requested, processed on the sandbox's clock, downloaded through
pre-signed, expiring document URLs as gzipped TSV in the marketplace's charset (the Reports API
2021-06-30 contract)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.amazon.regions import MARKETPLACES
from connectors.sandbox.amazon.data import LISTING_HEADER, SellerData
from connectors.sandbox.core import SandboxState

DOCUMENT_URL_LIFETIME = 300.0  # pre-signed report URLs live five minutes
REPORT_QUEUE_SECONDS = 20.0
REPORT_BASE_SECONDS = 30.0
REPORT_ROWS_PER_SECOND = 20_000.0


@dataclass
class Report:
    report_id: str
    seller_id: str
    region: str
    report_type: str
    marketplace_ids: list[str]
    created: datetime
    created_at: float  # platform seconds
    rows: int
    outcome: str  # DONE, CANCELLED or FATAL once processed
    cancelled: bool = False
    document_id: str | None = None
    closed_listings: frozenset[int] = frozenset()  # the report is a snapshot of its time

    def status(self, now: float) -> str:
        if self.cancelled:
            return "CANCELLED"
        age = now - self.created_at
        if age < REPORT_QUEUE_SECONDS:
            return "IN_QUEUE"
        if age < REPORT_QUEUE_SECONDS + REPORT_BASE_SECONDS + self.rows / REPORT_ROWS_PER_SECOND:
            return "IN_PROGRESS"
        return self.outcome


class ReportDesk:
    """The reports half of the Amazon sandbox (``AmazonSandbox`` holds the fields)."""

    state: SandboxState
    sellers: dict[str, SellerData]
    reports: dict[str, Report]
    report_outcomes: dict[str, str]  # seller -> forced outcome
    signing_key: bytes

    def create_report(
        self, seller_id: str, region: str, report_type: str, marketplace_ids: list[str]
    ) -> Report:
        seller = self.sellers[seller_id]
        rows = sum(len(seller.listings_in(m)) for m in marketplace_ids)
        outcome = self.report_outcomes.get(seller_id) or ("DONE" if rows else "CANCELLED")
        report = Report(
            report_id=str(50_000_000 + len(self.reports)),
            seller_id=seller_id,
            region=region,
            report_type=report_type,
            marketplace_ids=marketplace_ids,
            created=self.state.clock.now(),
            created_at=self.state.clock.monotonic(),
            rows=rows,
            outcome=outcome,
            closed_listings=frozenset(seller.deleted_listings),
        )
        if outcome == "DONE":
            report.document_id = f"amzn1.spdoc.1.4.na.{uuid.uuid4()}"
        self.reports[report.report_id] = report
        return report

    def report_body(self, report: Report) -> dict[str, Any]:
        now = self.state.clock.monotonic()
        status = report.status(now)
        body: dict[str, Any] = {
            "reportId": report.report_id,
            "reportType": report.report_type,
            "marketplaceIds": report.marketplace_ids,
            "createdTime": _iso(report.created),
            "processingStatus": status,
        }
        if status != "IN_QUEUE":
            body["processingStartTime"] = _iso(
                report.created + timedelta(seconds=REPORT_QUEUE_SECONDS)
            )
        if status in ("DONE", "FATAL", "CANCELLED") and not report.cancelled:
            body["processingEndTime"] = _iso(
                report.created
                + timedelta(
                    seconds=REPORT_QUEUE_SECONDS
                    + REPORT_BASE_SECONDS
                    + report.rows / REPORT_ROWS_PER_SECOND
                )
            )
        if status == "DONE" and report.document_id:
            body["reportDocumentId"] = report.document_id
        return body

    def document_report(self, document_id: str) -> Report | None:
        for report in self.reports.values():
            if report.document_id == document_id:
                return report
        return None

    def sign_document(self, document_id: str) -> tuple[str, str]:
        expires = f"{self.state.clock.monotonic() + DOCUMENT_URL_LIFETIME:.3f}"
        message = f"{document_id}:{expires}".encode()
        return expires, hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()

    def check_document_signature(self, document_id: str, expires: str, signature: str) -> str:
        """'' when the pre-signed URL is valid, else the reason S3 would give."""
        message = f"{document_id}:{expires}".encode()
        wanted = hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(wanted, signature or ""):
            return "SignatureDoesNotMatch"
        try:
            deadline = float(expires)
        except ValueError:
            return "AuthorizationQueryParametersError"
        if deadline < self.state.clock.monotonic():
            return "Request has expired"
        return ""

    def report_charset(self, report: Report) -> tuple[str, str]:
        """(name in Content-Type, Python codec): Shift_JIS in JP, Cp1252 elsewhere."""
        if any(MARKETPLACES[m].country == "JP" for m in report.marketplace_ids):
            return "Shift_JIS", "shift_jis"
        return "Cp1252", "cp1252"

    def report_chunks(self, report: Report) -> Any:
        """The report's TSV, encoded and gzipped, as a stream of chunks (constant memory)."""
        seller = self.sellers[report.seller_id]
        _, codec = self.report_charset(report)
        compressor = _GzipStream()
        yield compressor.feed(("\t".join(LISTING_HEADER) + "\n").encode(codec))
        lines: list[str] = []
        position = {m: n for n, m in enumerate(seller.marketplaces)}
        for marketplace in report.marketplace_ids:
            every = range(position[marketplace], seller.listings, len(seller.marketplaces))
            for index in (i for i in every if i not in report.closed_listings):
                lines.append("\t".join(seller.listing_row(index)))
                if len(lines) >= 2000:
                    yield compressor.feed(("\n".join(lines) + "\n").encode(codec, "replace"))
                    lines = []
        if lines:
            yield compressor.feed(("\n".join(lines) + "\n").encode(codec, "replace"))
        yield compressor.finish()


class _GzipStream:
    def __init__(self) -> None:
        import zlib

        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip container

    def feed(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def finish(self) -> bytes:
        return self._compressor.flush()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")
