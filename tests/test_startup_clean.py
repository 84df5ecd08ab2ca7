"""A start leaves the working tree clean: Reflex's set-up of its web directory (what every
start from a fresh .web runs, `make run` and `hub serve` alike) writes the tracked
reflex.lock/package.json back exactly as it is committed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reflex.utils import frontend_skeleton

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCK = PROJECT_ROOT / "reflex.lock"


def test_reflex_setting_up_its_web_directory_rewrites_no_tracked_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(LOCK, tmp_path / "reflex.lock")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFLEX_WEB_WORKDIR", str(tmp_path / ".web"))
    frontend_skeleton.initialize_web_directory()
    assert (tmp_path / ".web" / "package.json").exists()  # the start-up path ran
    for name in ("package.json", "bun.lock"):
        written = (tmp_path / "reflex.lock" / name).read_bytes()
        assert written == (LOCK / name).read_bytes(), (
            f"a start rewrites reflex.lock/{name}: commit it in Reflex's own rendering "
            "(start the hub once from a fresh .web and commit what it writes)"
        )
