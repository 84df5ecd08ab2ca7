"""The process `hub serve` starts: Reflex's production server (`reflex run --env prod ...`,
arguments passed through), with Granian told to respawn a worker that dies.

Granian's default ends the whole server when one worker exits unexpectedly (a `kill -9`, an
out-of-memory kill): every other worker is shut down and the hub stops answering. Its
``respawn_failed_workers`` option starts a new worker instead, but Reflex builds the Granian
server itself and passes no such option; so it is made Granian's default here, in this
process only, before Reflex builds the server. A worker crashing again within Granian's
5.5 s crash-loop window still stops the server, as it should.

Reflex also rebuilds the whole frontend bundle (vite) on every production start, 13 s on an
idle 2-CPU machine and over a minute on a busy one, even when nothing it is built from
changed. A restart of an unchanged hub reuses the last build instead (``reuse_unchanged_build``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

RESPAWN_INTERVAL = 1.0  # seconds between starting the new worker and reaping the dead one

# What a build is made of: every file Reflex compiled into the web directory, except the build
# itself, the installed packages, and files Reflex rewrites on every start without the bundle
# reading them (reflex.json holds the last start's time).
BUILD_INPUT_EXCLUDED = frozenset({"build", "node_modules", "backend", "reflex.json"})
BUILD_STAMP = "hub-build-inputs.sha256"  # in the build directory: removed with it


def respawn_failed_workers_by_default() -> None:
    from granian.server.common import AbstractServer

    original = AbstractServer.__init__
    if getattr(original, "_hub_respawns", False):
        return

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("respawn_failed_workers", True)
        kwargs.setdefault("respawn_interval", RESPAWN_INTERVAL)
        original(self, *args, **kwargs)

    init._hub_respawns = True  # type: ignore[attr-defined]
    AbstractServer.__init__ = init  # type: ignore[method-assign]


def build_inputs_digest(web_dir: Path) -> str:
    """A digest of what the frontend bundle is built from: the compiled web directory's files
    (names and contents), the Reflex version and the VITE_* settings the build reads."""
    from reflex import constants

    digest = hashlib.sha256(constants.Reflex.VERSION.encode())
    for name, value in sorted(os.environ.items()):
        if name.startswith("VITE_") or name == "REFLEX_NO_AUTOPREFIXER":
            digest.update(f"{name}={value}\n".encode())
    files = (
        path
        for path in web_dir.rglob("*")
        if path.relative_to(web_dir).parts[0] not in BUILD_INPUT_EXCLUDED
        and not path.name.endswith(".cached")
        and path.is_file()
    )
    for path in sorted(files):
        digest.update(str(path.relative_to(web_dir)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def reuse_unchanged_build() -> None:
    """Wrap Reflex's production build so that it runs only when its inputs changed since the
    last one: the stamp written after a build names the digest it was built from."""
    from reflex.utils import build, prerequisites

    original = build.build
    if getattr(original, "_hub_reuses", False):
        return

    @functools.wraps(original)
    def build_when_changed() -> None:
        web_dir = prerequisites.get_web_dir()
        build_dir = web_dir / "build"
        stamp = build_dir / BUILD_STAMP
        inputs = build_inputs_digest(web_dir)
        if stamp.is_file() and stamp.read_text().strip() == inputs:
            print(f"Frontend unchanged since its last build: serving {build_dir} as it is.")
            return
        try:
            original()
        except SystemExit:
            # React Router prerenders each page through a preview server with a fixed 10 s
            # timeout and no retry: on a busy machine the first page's render can miss it.
            # The second attempt finds the bundle's modules warm.
            print("The frontend build failed; trying once more.")
            original()
        stamp.write_text(inputs + "\n")

    build_when_changed._hub_reuses = True  # type: ignore[attr-defined]
    build.build = build_when_changed  # type: ignore[assignment]


def main() -> int:
    respawn_failed_workers_by_default()
    reuse_unchanged_build()
    from reflex.reflex import cli

    sys.argv = ["reflex", *sys.argv[1:]]
    return int(cli() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
