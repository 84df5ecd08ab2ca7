"""Benchmark: the hub's Shopify sync beside the tools a team would pick instead, on one sandbox.

Contenders, each against a fresh shop of the same size (so none shares another's buckets) in
one standalone sandbox (``hub sandbox serve``) at time scale 1, because the peers pace
themselves on real time (tap-shopify polls a bulk operation every 60 real seconds; Airbyte
sleeps on real time too), so every contender meets Shopify's documented rates as they are:

- the hub's Shopify sync (what ``bench/shopify_sync.py`` does, in a child process), with its
  defaults (``hub``) and with every backfill a bulk operation (``hub-bulk``);
- Airbyte's ``airbyte-source-shopify`` and Singer's ``tap-shopify``, unmodified from PyPI in
  their own venvs under ``.tools/peers/`` (``make peers`` installs them and runs this). Their
  ``https://{shop}.myshopify.com`` requests reach the sandbox through a local TLS proxy with a
  throwaway CA (``bench/_tls_proxy.py``); products, orders and customers are selected (the
  tap three ways: every field at its default page, every field at ``--tap-page-size``, and
  only the fields it always reads);
- Amazon: the hub vs python-amazon-sp-api's ``@throttle_retry()`` loop, by running
  ``bench/amazon_sync.py`` (its own sandbox at its own time scale: searchOrders' documented
  0.0056 requests/s would take hours at 1x).

Prints per contender: records per stream vs the sandbox's truth, wall time, records/s, share
of the GraphQL cost-rate bound and of REST's request bound, THROTTLED answers and 429s (the
sandbox's per-shop usage), peak RSS (``os.wait4`` on the child) and whether it is complete.

    python bench/peers.py [--products 1500 --orders 1500 --customers 500 --plan standard]
                          [--only hub,hub-bulk,airbyte,tap,tap-paged,tap-ids,amazon]
                          [--tap-page-size 100] [--timeout 2400] [--keep DIR]

docs/benchmarks.md says how the peers reach the sandbox and what the runs found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

from _tls_proxy import TlsProxy, tls_proxy  # noqa: E402

from tests.sandbox_server import (  # noqa: E402
    adopt,
    control_headers,
    control_token,
    sandbox_process,
    shopify_install,
)

PEERS = ROOT / ".tools" / "peers"
AIRBYTE = PEERS / "airbyte" / "bin" / "source-shopify"
TAP = PEERS / "tap-shopify" / "bin" / "tap-shopify"
STREAMS = ("products", "orders", "customers")
# The sandbox's records are updated from 2025-01-01 on (connectors/sandbox/shopify/data.py);
# one date window from there covers them all, as it would for a young shop.
START_DATE = "2025-01-01"
WINDOW_DAYS = 1000
FIGURES = "FIGURES "  # the line the hub's child process hands its figures on


@dataclass
class Result:
    name: str
    shop: str
    records: dict[str, int] = field(default_factory=dict)
    truth: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_mib: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    exit_code: int = 0
    cause: str = ""  # why it is incomplete, in the peer's own words
    note: str = ""

    @property
    def complete(self) -> bool:
        return self.exit_code == 0 and all(
            self.records.get(s) == self.truth.get(s) for s in STREAMS
        )


def run_child(
    argv: list[str], env: dict[str, str], cwd: Path, stem: str, timeout: float
) -> tuple[int, float, float]:
    """Run ``argv`` with stdout/stderr in ``cwd/stem.{out,err}``; returns its exit code, wall
    seconds and peak RSS in MiB (``os.wait4``: the child's own high-water mark)."""
    with open(cwd / f"{stem}.out", "wb") as out, open(cwd / f"{stem}.err", "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        watchdog = threading.Timer(timeout, child.kill)  # a bounded run, whatever the peer does
        watchdog.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        watchdog.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return child.returncode, seconds, usage.ru_maxrss / 1024


def shop_figures(base: str, shop: str) -> tuple[dict[str, int], dict[str, float]]:
    """The sandbox's truth (record counts per stream) and usage for ``shop``."""
    headers = control_headers(base)
    truth = httpx.get(f"{base}/_sandbox/shopify/shops/{shop}/truth", headers=headers).json()
    usage = httpx.get(f"{base}/_sandbox/shopify/shops/{shop}/usage", headers=headers).json()
    return {s: int(truth["streams"][s]["count"]) for s in STREAMS}, usage


def new_shop(base: str, shop: str, sizes: dict[str, Any]) -> str:
    """A fresh shop with the app installed; returns its access token."""
    from shopify_sync import SCOPES

    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": shop, **sizes},
        timeout=120,
    ).raise_for_status()
    return shopify_install(base, shop, scopes=SCOPES)


def peer_env(proxy: TlsProxy) -> dict[str, str]:
    """The peer's environment: this one without the hub's settings, through the proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {**env, **proxy.environment(), "PYTHONUNBUFFERED": "1"}


def messages(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a peer's stdout (Airbyte and Singer messages)."""
    found = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
    return found


# --- contenders -------------------------------------------------------------------------------


def run_hub(base: str, sizes: dict[str, Any], work: Path, timeout: float,
            bulk_threshold: int | None = None) -> Result:  # fmt: skip
    """The hub's sync; ``bulk_threshold`` overrides HUB_SHOPIFY_BULK_THRESHOLD (10,000
    records a stream: a smaller backfill reads pages)."""
    bulk = bulk_threshold is not None
    result = Result("hub" + (f" bulk threshold {bulk_threshold}" if bulk else ""),
                    f"peers-hub{'-bulk' if bulk else ''}.myshopify.com")  # fmt: skip
    argv = [sys.executable, __file__, "--hub-child", "--base", base,
            "--control-token", control_token(base), "--shop", result.shop,
            "--sizes", json.dumps(sizes)]  # fmt: skip
    if bulk:
        argv += ["--bulk-threshold", str(bulk_threshold)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result.exit_code, result.seconds, result.peak_mib = run_child(
        argv, env, work, "hub", timeout
    )
    for line in (work / "hub.out").read_text().splitlines():
        if line.startswith(FIGURES):
            figures = json.loads(line.removeprefix(FIGURES))
            result.records = figures["records"]
            result.cause = "; ".join(figures["errors"])
            result.note = (
                f"the hub reads every stream of the integration: "
                f"{sum(figures['every'].values()):,} records in all ({figures['every']}: "
                "variants, inventory levels and order lines are records of their own)"
            )
    if not result.records:
        result.cause = (work / "hub.err").read_text()[-600:]
    result.truth, result.usage = shop_figures(base, result.shop)
    return result


def hub_child(args: argparse.Namespace) -> int:
    """The hub's sync of ``args.shop`` in this (child) process, on a fresh SQLite database."""
    import sqlalchemy as sa
    from shopify_sync import connect, isolated_hub, sync
    from sqlmodel import select

    from dashboard import db
    from dashboard.models import Customer, Order, Product

    adopt(args.base, args.control_token)
    with tempfile.TemporaryDirectory(prefix="hub-peers-") as tmp:
        isolated_hub(Path(tmp))
        integration_id = connect(args.base, json.loads(args.sizes), args.shop)
        threshold = args.bulk_threshold
        extra = {} if threshold is None else {"shopify_bulk_threshold": threshold}
        runs = asyncio.run(sync(args.base, integration_id, **extra))
        every = {run.stream: run.records_read for run in runs}
        with db.session_scope() as session:
            records = {
                name: session.exec(
                    select(sa.func.count()).select_from(table).where(table.deleted_at.is_(None))  # type: ignore[union-attr]
                ).one()
                for name, table in (("products", Product), ("orders", Order),
                                    ("customers", Customer))
            }  # fmt: skip
        db.reset_engines()
    errors = [f"{run.stream}: {run.status}: {run.error}" for run in runs if run.error]
    print(FIGURES + json.dumps({"records": records, "errors": errors, "every": every}), flush=True)
    return 0 if all(run.status == "succeeded" for run in runs) else 1


def run_airbyte(base: str, proxy: TlsProxy, sizes: dict[str, Any], work: Path,
                timeout: float) -> Result:  # fmt: skip
    result = Result("Airbyte source-shopify 4.3.0", "peers-airbyte.myshopify.com")
    token = new_shop(base, result.shop, sizes)
    config = {
        "shop": result.shop.removesuffix(".myshopify.com"),
        "credentials": {"auth_method": "api_password", "api_password": token},
        "start_date": START_DATE,
        "bulk_window_in_days": WINDOW_DAYS,
    }
    (work / "airbyte-config.json").write_text(json.dumps(config))
    env = peer_env(proxy)
    cfg = ["--config", str(work / "airbyte-config.json")]
    code, _, _ = run_child([str(AIRBYTE), "discover", *cfg], env, work, "airbyte-discover", 300)
    catalog = next(
        (m["catalog"] for m in messages(work / "airbyte-discover.out") if m["type"] == "CATALOG"),
        None,
    )
    if code or catalog is None:
        result.exit_code = code or 1
        result.cause = "discover failed: " + airbyte_cause(work / "airbyte-discover.out")
        result.truth, result.usage = shop_figures(base, result.shop)
        return result
    selected = []
    for stream in catalog["streams"]:
        if stream["name"] in STREAMS:
            full = "full_refresh" in stream["supported_sync_modes"]
            selected.append({
                "stream": stream,
                "sync_mode": "full_refresh" if full else "incremental",
                "destination_sync_mode": "overwrite" if full else "append",
                "cursor_field": stream.get("default_cursor_field", []),
            })  # fmt: skip
    (work / "airbyte-catalog.json").write_text(json.dumps({"streams": selected}))
    argv = [str(AIRBYTE), "read", *cfg, "--catalog", str(work / "airbyte-catalog.json")]
    result.exit_code, result.seconds, result.peak_mib = run_child(
        argv, env, work, "airbyte", timeout
    )
    found = messages(work / "airbyte.out")
    counts = Counter(m["record"]["stream"] for m in found if m.get("type") == "RECORD")
    result.records = {s: counts.get(s, 0) for s in STREAMS}
    result.cause = airbyte_cause(work / "airbyte.out")
    result.truth, result.usage = shop_figures(base, result.shop)
    return result


def airbyte_cause(out: Path) -> str:
    """The last error an Airbyte source reported: a TRACE error, else an ERROR log."""
    for message in reversed(messages(out)):
        if message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
            error = message["trace"]["error"]
            return f"{error.get('message')} | {error.get('internal_message')}"[:600]
        if message.get("type") == "LOG" and message["log"]["level"] in ("ERROR", "FATAL"):
            return str(message["log"]["message"])[:600]
    return ""


def run_tap(base: str, proxy: TlsProxy, sizes: dict[str, Any], work: Path, timeout: float,
            page_size: int | None = None, every_field: bool = True) -> Result:  # fmt: skip
    """tap-shopify with the three streams selected and, with ``every_field``, every field of
    them (else only those it always reads: ids and cursors); ``page_size`` sets its
    ``results_per_page`` (None: its default, 250)."""
    label = "tap-shopify 3.13.0" + (f" page {page_size}" if page_size else "")
    label += "" if every_field else " ids only"
    name = f"tap{page_size or ''}{'' if every_field else '-ids'}"
    result = Result(label, f"peers-{name}.myshopify.com")
    token = new_shop(base, result.shop, sizes)
    config: dict[str, Any] = {
        "shop": result.shop.removesuffix(".myshopify.com"),
        "access_token": token,
        "start_date": f"{START_DATE}T00:00:00Z",
        "date_window_size": WINDOW_DAYS,
    }
    if page_size:
        config["results_per_page"] = page_size
    (work / f"{name}-config.json").write_text(json.dumps(config))
    env = peer_env(proxy)
    cfg = ["--config", str(work / f"{name}-config.json")]
    code, _, _ = run_child([str(TAP), *cfg, "--discover"], env, work, f"{name}-discover", 300)
    if code:
        result.exit_code = code
        result.cause = "discover failed: " + tap_cause(work / f"{name}-discover.err")
        result.truth, result.usage = shop_figures(base, result.shop)
        return result
    catalog = json.loads((work / f"{name}-discover.out").read_text())
    catalog["streams"] = [s for s in catalog["streams"] if s["tap_stream_id"] in STREAMS]
    for stream in catalog["streams"]:  # the stream and every field it can give, as Airbyte's
        for entry in stream["metadata"]:  # catalog has them (a Singer tap reads only those)
            if entry["breadcrumb"] == [] or (
                every_field and entry["metadata"].get("inclusion") != "unsupported"
            ):
                entry["metadata"]["selected"] = True
    (work / f"{name}-catalog.json").write_text(json.dumps(catalog))
    argv = [str(TAP), *cfg, "--catalog", str(work / f"{name}-catalog.json")]
    result.exit_code, result.seconds, result.peak_mib = run_child(
        argv, env, work, name, timeout
    )
    found = messages(work / f"{name}.out")
    counts = Counter(m["stream"] for m in found if m.get("type") == "RECORD")
    result.records = {s: counts.get(s, 0) for s in STREAMS}
    result.cause = tap_cause(work / f"{name}.err") if result.exit_code else ""
    if "MAX_COST_EXCEEDED" in result.cause:
        result.cause += TAP_PAGE_TOO_COSTLY
    if "permitsSkuSharing" in result.cause:
        result.cause += SANDBOX_ONE_SCHEMA
    result.truth, result.usage = shop_figures(base, result.shop)
    return result


TAP_PAGE_TOO_COSTLY = (
    " || tap-shopify bug: its GraphQL pages ask for results_per_page nodes, 250 by default "
    "(tap_shopify/streams/base.py:23 RESULTS_PER_PAGE), whatever the selected fields cost; "
    "every customers field selected (tap_shopify/streams/customers.py: six nested objects a "
    "customer, addresses(first: 250) at line 54) makes a page cost 2 + 250 x 7 = 1,752 "
    "points, over Shopify's 1,000-point single-query maximum, and call_api retries the same "
    "query (MAX_RETRIES = 5, base.py:31) before the tap exits. The customers page passes with "
    "results_per_page <= 142."
)


SANDBOX_ONE_SCHEMA = (
    " || sandbox limitation, not fixed: it serves 2026-10's schema for every version. "
    "tap-shopify pins 2025-07, which Shopify answers as 2026-01 (the oldest supported), whose "
    "FulfillmentService still has permitsSkuSharing (removed as of 2026-04, Shopify changelog "
    "'Removing permitsSkuSharing field from fulfillment service'); the tap's orders bulk "
    "query (tap_shopify/streams/orders.py) selects it, so the sandbox refuses the query."
)


def tap_cause(err: Path) -> str:
    """The tap's last CRITICAL (or ERROR) log lines: Singer taps log to stderr."""
    lines = err.read_text(errors="replace").splitlines()
    bad = [line for line in lines if line.startswith(("CRITICAL", "ERROR"))]
    return " | ".join(bad[-3:])[-600:] if bad else "\n".join(lines[-5:])[-600:]


# --- output -----------------------------------------------------------------------------------


def report(result: Result) -> None:
    seconds = result.seconds or float("nan")
    total = sum(result.records.get(s, 0) for s in STREAMS)
    usage = result.usage
    graphql_bound = usage["maximum"] + usage["restore_rate"] * seconds
    rest_bound = usage["rest_bucket"] + usage["rest_rate"] * seconds
    print(f"--- {result.name} ({result.shop})")
    for stream in STREAMS:
        got, truth = result.records.get(stream, 0), result.truth[stream]
        print(f"  {stream:<10} {got:>7,} of {truth:>7,}{'' if got == truth else '  MISSING'}")
    print(
        f"  {total:,} records in {seconds:,.1f} s = {total / seconds:,.1f} records/s; "
        f"peak RSS {result.peak_mib:,.0f} MiB; exit {result.exit_code}"
    )
    print(
        f"  GraphQL: {usage['graphql_requests']:,} requests, {usage['points']:,.0f} points = "
        f"{usage['points'] / graphql_bound:.1%} of the cost-rate bound ({usage['maximum']:,.0f} "
        f"+ {usage['restore_rate']:,.0f}/s x T), {usage['throttled']} THROTTLED"
    )
    rest = usage["rest_requests"]
    print(
        f"  REST:    {rest:,} requests = {rest / rest_bound:.1%} of the request bound "
        f"({usage['rest_bucket']:,.0f} + {usage['rest_rate']:g}/s x T), "
        f"{usage['rest_throttled']} x 429"
    )
    if result.note:
        print(f"  {result.note}")
    print(f"  complete: {'yes' if result.complete else 'NO'}")
    if result.cause and not result.complete:
        print(f"  cause: {result.cause}")


def summary(results: list[Result]) -> None:
    print("--- side by side (time scale 1: the sandbox and every contender on real time)")
    print(f"{'contender':<36} {'records':>8} {'s':>7} {'rec/s':>7} {'cost bound':>10} "
          f"{'REST bound':>10} {'THROTTLED':>9} {'429':>4} {'RSS MiB':>7} complete")  # fmt: skip
    for r in results:
        u, s = r.usage, r.seconds or float("nan")
        total = sum(r.records.get(x, 0) for x in STREAMS)
        print(
            f"{r.name:<36} {total:>8,} {s:>7,.1f} {total / s:>7,.1f} "
            f"{u['points'] / (u['maximum'] + u['restore_rate'] * s):>10.1%} "
            f"{u['rest_requests'] / (u['rest_bucket'] + u['rest_rate'] * s):>10.1%} "
            f"{u['throttled']:>9} {u['rest_throttled']:>4} {r.peak_mib:>7,.0f} "
            f"{'yes' if r.complete else 'NO'}"
        )


def run_amazon(args: argparse.Namespace, work: Path) -> None:
    argv = [sys.executable, str(ROOT / "bench" / "amazon_sync.py"), "--orders",
            str(args.amazon_orders), "--listings", "1000", "--fba-items", "0"]  # fmt: skip
    code, seconds, peak = run_child(argv, dict(os.environ), work, "amazon", args.timeout)
    print("--- Amazon: hub vs python-amazon-sp-api (bench/amazon_sync.py, its own sandbox at "
          "its time scale 500: searchOrders' 0.0056 requests/s would take hours at 1x)")
    for line in (work / "amazon.out").read_text().splitlines():
        print(f"  {line}")
    if code:
        print(f"  exit {code}: {(work / 'amazon.err').read_text()[-600:]}")
    print(f"  ({seconds:,.0f} s in all; peak RSS of that process {peak:,.0f} MiB)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1500)
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--plan", default="standard")
    parser.add_argument("--only", default="hub,hub-bulk,airbyte,tap,tap-paged,tap-ids,amazon")
    parser.add_argument(
        "--tap-page-size", type=int, default=100,
        help="tap-paged: tap-shopify's results_per_page (its 250 default exceeds Shopify's "
        "single-query cost maximum with every customers field selected)",
    )  # fmt: skip
    parser.add_argument("--amazon-orders", type=int, default=6000)
    parser.add_argument("--timeout", type=float, default=2400, help="seconds per contender")
    parser.add_argument("--keep", help="keep the contenders' output in this directory")
    for hidden in ("--base", "--control-token", "--shop", "--sizes"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--bulk-threshold", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hub-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.hub_child:
        return hub_child(args)
    only = set(args.only.split(","))
    missing = [p for p, name in ((AIRBYTE, "airbyte"), (TAP, "tap")) if not p.exists()
               and any(o.startswith(name) for o in only)]  # fmt: skip
    if missing:
        print(f"peers not installed ({', '.join(map(str, missing))}): run `make peers`")
        return 0
    sizes = {"products": args.products, "orders": args.orders, "customers": args.customers,
             "plan": args.plan}  # fmt: skip
    print(f"shop: {args.products:,} products, {args.orders:,} orders, {args.customers:,} "
          f"customers, plan {args.plan}; a fresh shop per contender; sandbox at time scale 1 "
          f"(the peers pace themselves on real time); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    work = Path(args.keep or tempfile.mkdtemp(prefix="hub-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with sandbox_process(time_scale=1.0, seed=19) as base, tls_proxy(base) as proxy:
        contenders: list[tuple[str, Callable[[], Result]]] = [
            ("hub", lambda: run_hub(base, sizes, work, args.timeout)),
            ("hub-bulk", lambda: run_hub(base, sizes, work, args.timeout, 0)),
            ("airbyte", lambda: run_airbyte(base, proxy, sizes, work, args.timeout)),
            ("tap", lambda: run_tap(base, proxy, sizes, work, args.timeout)),
            (
                "tap-paged",
                lambda: run_tap(base, proxy, sizes, work, args.timeout, args.tap_page_size),
            ),
            ("tap-ids", lambda: run_tap(base, proxy, sizes, work, args.timeout, None, False)),
        ]
        for name, run in contenders:
            if name in only:
                results.append(run())
                report(results[-1])
                print(f"  (load average now {os.getloadavg()[0]:.1f})", flush=True)
        print(f"proxy: {proxy.counts.connects} CONNECTs, {proxy.counts.refused} refused, "
              f"answers by status {dict(sorted(proxy.counts.statuses.items()))}")  # fmt: skip
    if results:
        summary(results)
    if "amazon" in only:
        run_amazon(args, work)
    print(f"the contenders' output: {work}")
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
