"""Wait until the hub answers ``GET /api/ready`` with 200; exit 1 with its last answer if not.

connector-hub.service runs it after starting the hub (``ExecStartPost``), so that
``systemctl start|restart`` returns once the hub serves from a reachable, migrated database,
and fails, showing why (e.g. ``"hint": "run `hub migrate`"``), when it does not. Standard
library only: it runs with the hub's own interpreter and needs nothing else.

    python deploy/wait_ready.py [--url http://127.0.0.1:$HUB_PORT/api/ready] [--timeout 280]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request


def probe(url: str) -> tuple[int | None, str]:
    """(status, body) of one request; (None, reason) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  http(s) only
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(2000).decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return None, str(getattr(error, "reason", error))


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("HUB_PORT", "3000")
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{port}/api/ready")
    parser.add_argument("--timeout", type=float, default=280, help="seconds (default 280)")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        parser.error("--url must be http:// or https://")
    deadline = time.monotonic() + args.timeout
    status, body = None, ""
    while time.monotonic() < deadline:
        status, body = probe(args.url)
        if status == 200:
            print(f"hub ready: {body}")
            return 0
        time.sleep(1)
    answer = f"HTTP {status}: {body}" if status else f"no answer ({body})"
    print(f"hub not ready after {args.timeout:g} s at {args.url}: {answer}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
