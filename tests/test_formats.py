"""One number and time format on every page (dashboard/components/formats.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dashboard.components.formats import count, counted, number, relative_time

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"


def test_counts_read_with_thousands_separators() -> None:
    assert count(6004) == "6,004"
    assert counted(6004, "record") == "6,004 records"
    assert counted(1, "record") == "1 record"
    assert counted(0, "entry", "entries") == "0 entries"
    assert counted(1_250_000, "run") == "1,250,000 runs"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize(
    ("value", "shown"), [(6004, "6,004"), (12.5, "12.5"), (0, "0"), ("", ""), (None, "")]
)
def test_a_number_in_the_browser_is_grouped_as_on_the_server(value: object, shown: str) -> None:
    expression = str(number(value))
    result = subprocess.run(
        ["node", "-e", f"process.stdout.write({expression})"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout == shown


def test_relative_times_show_the_exact_local_time_on_hover() -> None:
    rendered = str(relative_time("2026-12-06T08:00:00+00:00"))
    assert "fromNow:true" in rendered and "withTitle:true" in rendered
    assert "local:true" in rendered


def test_every_page_formats_times_through_the_one_module() -> None:
    """A page that calls rx.moment itself would show its own format (or UTC)."""
    offenders = [
        str(path.relative_to(DASHBOARD))
        for path in DASHBOARD.rglob("*.py")
        if "rx.moment(" in path.read_text() and path.name != "formats.py"
    ]
    assert offenders == []
