"""Figures the benches print, computed one way."""

from __future__ import annotations


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank ``share`` percentile (0.99 for p99) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
