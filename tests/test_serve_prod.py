"""`hub serve`'s production process: a restart of an unchanged hub reuses its frontend build."""

from __future__ import annotations

from pathlib import Path

import pytest
from reflex.utils import build, prerequisites

from dashboard import serve_prod


def compiled_web_dir(root: Path) -> Path:
    """The shape of what Reflex compiles into .web: pages, settings, installed packages."""
    web = root / ".web"
    (web / "app" / "routes").mkdir(parents=True)
    (web / "app" / "routes" / "_index.jsx").write_text("export default () => 'Overview'")
    (web / "env.json").write_text('{"EVENT": "ws://localhost:3000/_event"}')
    (web / "node_modules" / "react").mkdir(parents=True)
    (web / "node_modules" / "react" / "index.js").write_text("react")
    (web / "reflex.json").write_text('{"last_reflex_run_datetime": "2026-12-06 11:00"}')
    return web


def test_the_digest_follows_what_the_bundle_is_built_from(tmp_path: Path) -> None:
    web = compiled_web_dir(tmp_path)
    first = serve_prod.build_inputs_digest(web)
    # What every start rewrites, the installed packages and the build itself do not count.
    (web / "reflex.json").write_text('{"last_reflex_run_datetime": "2026-12-06 12:00"}')
    (web / "node_modules" / "react" / "index.js").write_text("react, reinstalled")
    (web / "build" / "client").mkdir(parents=True)
    (web / "build" / "client" / "index.html").write_text("<html>")
    assert serve_prod.build_inputs_digest(web) == first
    # A page, the port the bundle talks to, or a build setting does.
    (web / "env.json").write_text('{"EVENT": "ws://localhost:3001/_event"}')
    moved = serve_prod.build_inputs_digest(web)
    assert moved != first
    (web / "app" / "routes" / "_index.jsx").write_text("export default () => 'Runs'")
    changed = serve_prod.build_inputs_digest(web)
    assert changed != moved


def test_an_unchanged_restart_skips_the_build_and_a_change_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    web = compiled_web_dir(tmp_path)
    builds: list[str] = []

    def reflex_build() -> None:  # what Reflex's build leaves behind
        builds.append("built")
        (web / "build" / "client").mkdir(parents=True, exist_ok=True)
        (web / "build" / "client" / "index.html").write_text("<html>")

    monkeypatch.setattr(build, "build", reflex_build)
    monkeypatch.setattr(prerequisites, "get_web_dir", lambda: web)
    serve_prod.reuse_unchanged_build()

    build.build()  # the first start builds
    build.build()  # a restart of the same hub does not
    assert builds == ["built"]
    assert "Frontend unchanged since its last build" in capsys.readouterr().out

    (web / "app" / "routes" / "_index.jsx").write_text("export default () => 'Runs'")
    build.build()  # a new version of a page is built
    assert builds == ["built", "built"]

    # A build that was deleted (or failed half-way, leaving no stamp) is made again.
    (web / "build" / serve_prod.BUILD_STAMP).unlink()
    build.build()
    assert builds == ["built", "built", "built"]


def test_a_build_that_fails_once_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """React Router's prerender gives each page 10 s, once: a busy machine can miss it."""
    web = compiled_web_dir(tmp_path)
    attempts: list[str] = []

    def reflex_build() -> None:
        attempts.append("build")
        if len(attempts) == 1:
            raise SystemExit(1)  # what Reflex's build does when `bun run export` fails
        (web / "build" / "client").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(build, "build", reflex_build)
    monkeypatch.setattr(prerequisites, "get_web_dir", lambda: web)
    serve_prod.reuse_unchanged_build()
    build.build()
    assert attempts == ["build", "build"]
    assert "trying once more" in capsys.readouterr().out
    assert (web / "build" / serve_prod.BUILD_STAMP).is_file()


def test_a_build_that_fails_twice_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = compiled_web_dir(tmp_path)

    def reflex_build() -> None:
        raise SystemExit(1)

    monkeypatch.setattr(build, "build", reflex_build)
    monkeypatch.setattr(prerequisites, "get_web_dir", lambda: web)
    serve_prod.reuse_unchanged_build()
    with pytest.raises(SystemExit):
        build.build()
    assert not (web / "build" / serve_prod.BUILD_STAMP).exists()
