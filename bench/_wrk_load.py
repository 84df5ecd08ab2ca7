"""wrk (Debian's, ``make wrk``) as the webhook bench's load generator: a Lua script of signed
deliveries, each sent exactly once, and the figures wrk prints for them."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WRK = shutil.which("wrk")  # Debian's wrk (`make wrk`): a load generator in C with Lua
WRK_SCRIPT = """
-- Each thread sends its share of the signed deliveries once, in order, and stops when its
-- share is sent (the answers still on their way are not counted: the database tells).
-- The deliveries are read from a file, one per line (id, HMAC, body, tab-separated): as a
-- table in the script, 120,000 of them were more constants than LuaJIT allows.
local threads = {}
function setup(thread)
  thread:set("first", #threads + 1)
  thread:set("verifying", #threads == 0)  -- wrk calls the first thread's request() once to check it
  thread:set("stride", %(threads)d)
  table.insert(threads, thread)
end
function init(args)
  nxt, ok, other, failed, late = 1, 0, 0, 0, 0
  deliveries = {}
  local line_number = 0
  for line in io.lines("%(data)s") do
    if line_number %% stride == first - 1 then  -- this thread's share
      local id, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      deliveries[#deliveries + 1] = {id, signature, body}
    end
    line_number = line_number + 1
  end
end
%(pacing)s
function request()
  local d = deliveries[nxt]
  if d == nil then
    if not told then  -- wrk's main thread sleeps out -d: the bench stops it once all are sent
      told = true
      local mark = io.open("%(stopped)s/" .. first, "w")
      mark:close()
    end
    wrk.thread:stop()
    return wrk.format("GET", "/api/health")  -- never sent: the thread stops first
  end
  if verifying then
    verifying = false  -- that call's request is never sent: the delivery stays next
  else
    nxt = nxt + 1
  end
  return wrk.format("POST", "/api/webhooks/shopify", {
    ["Content-Type"] = "application/json", ["X-Shopify-Topic"] = "products/update",
    ["X-Shopify-Shop-Domain"] = "%(shop)s", ["X-Shopify-API-Version"] = "2026-10",
    ["X-Shopify-Webhook-Id"] = d[1], ["X-Shopify-Hmac-Sha256"] = d[2]}, d[3])
end
function response(status, headers, body)
  if body == '{"ok":true}' then ok = ok + 1
  elseif status == 200 then other = other + 1
  else failed = failed + 1 end
end
function done(summary, latency, requests)
  local ok_all, failed_all, late_all = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_all = ok_all + thread:get("ok")
    failed_all = failed_all + thread:get("failed")
    late_all = late_all + thread:get("late")
  end
  io.write(string.format("RESULT %%d %%d %%.6f %%d %%d %%d %%d\\n", ok_all, failed_all,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    late_all))
end
"""
# With a rate: each thread sends on a fixed schedule (its share of the rate), as a platform
# delivers, instead of a new request the moment an answer comes (a closed loop, where the
# latency is mostly the queue the generator itself keeps full). wrk calls delay() before each
# request; a slot that passed while every connection of the thread was busy is sent at once
# and counted as late (its wait for a connection is not in the latency).
PACING = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } hub_timespec;
           int clock_gettime(int clock, hub_timespec *now); ]]
local clock = ffi.new("hub_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local interval = %(interval_ms).6f
function delay()
  local now = now_ms()
  slot = slot or now
  local wait = slot - now
  slot = slot + interval
  if wait < -10 then late = late + 1 end
  return wait > 0 and math.floor(wait) or 0
end
"""


def load_with_wrk(
    url: str, prepared: list[tuple[bytes, dict[str, str]]], *, shop: str, concurrency: int,
    on_half: Callable[[], None] | None = None, threads: int = 2, rate: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Send each signed delivery of ``prepared`` (body, headers) once with wrk: its own CPU
    stays far below the hub's, so the figures are the hub's. Latency percentiles are wrk's;
    ``on_half`` is called about halfway (by time, at ~1,000/s). With ``rate`` (deliveries a
    second) the requests go out on that schedule over ``concurrency`` connections."""
    assert WRK is not None
    deliveries = len(prepared)
    base = url.split("/api/", 1)[0]
    work = Path(tempfile.mkdtemp(prefix="hub-bench-wrk-"))
    stopped = work / "stopped"  # each thread marks here that it sent its share
    stopped.mkdir()
    data, script = work / "deliveries.tsv", work / "deliveries.lua"
    with data.open("w") as lines:
        for body, headers in prepared:
            fields = (headers["X-Shopify-Webhook-Id"], headers["X-Shopify-Hmac-Sha256"],
                      body.decode())  # fmt: skip
            assert not any("\t" in field or "\n" in field for field in fields)
            lines.write("\t".join(fields) + "\n")
    pacing = PACING % {"interval_ms": threads * 1000 / rate} if rate else ""
    script.write_text(
        WRK_SCRIPT % {"data": data, "threads": threads, "shop": shop,
                      "stopped": stopped, "pacing": pacing}
    )  # fmt: skip
    try:
        command = [WRK, "-t", str(threads), "-c", str(concurrency), "-d", "900s",
                   "--timeout", "30s", "-s", str(script), base]  # fmt: skip
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        halfway = on_half is None
        # Far longer than sending takes even at a tenth of the rate: a thread that never
        # finishes (its script failed to load, every connection stuck) fails the bench.
        deadline = started + 10 * deliveries / (rate or 1000) + 60
        while len(list(stopped.iterdir())) < threads and process.poll() is None:
            time.sleep(0.005)
            if not halfway and time.perf_counter() - started > deliveries / (rate or 1000) / 2:
                halfway = True  # about halfway (at ~1,000/s unless paced)
                on_half()
            if time.perf_counter() > deadline:
                process.kill()
                raise RuntimeError(
                    f"wrk did not send all {deliveries} deliveries within "
                    f"{deadline - started:.0f} s (see its errors above)"
                )
        process.send_signal(signal.SIGINT)  # every thread sent its share: wrk reports
        output, _ = process.communicate(timeout=60)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = next(line for line in output.splitlines() if line.startswith("RESULT"))
    ok, failed, duration, p50_us, p99_us, socket_errors, late = result.split()[1:]
    ids = [headers["X-Shopify-Webhook-Id"] for _, headers in prepared]
    return {
        "seconds": float(duration) or seconds,
        # wrk counts the answers but does not name them; the few still on their way when it
        # stopped were not answered (Shopify would send them again).
        "accepted": ids[: int(ok)],
        "failed": int(failed) + int(socket_errors),
        "per_s": int(ok) / (float(duration) or seconds),
        "p50_ms": int(p50_us) / 1000,
        "p99_ms": int(p99_us) / 1000,
        "exact_accepted": False,
        "late": int(late),
        "all_ids": ids,
    }
