"""What every platform of the sandbox shares: a scalable clock, fault injection, ground truth."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox.persistence import StateFile, clock_anchor


class SandboxClock:
    """Platform time running ``time_scale`` times faster than real time.

    Rate-limit restore, code and token expiry and report processing all read this clock, so
    tests and benchmarks run fast while every ratio stays as the platform documents it.
    """

    def __init__(self, time_scale: float = 1.0, start: datetime | None = None) -> None:
        """``start``: the platform time now; the wall clock's unless a restarted sandbox
        continues its own (``persistence.resumed_now``)."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._real_start = time.monotonic()
        self._wall_start = start or datetime.now(UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._real_start) * self.time_scale

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self.monotonic())

    def moment(self, platform_seconds: float) -> datetime:
        """The platform time of a ``monotonic()`` reading (an expiry, say)."""
        return self._wall_start + timedelta(seconds=platform_seconds)

    def reading(self, moment: datetime) -> float:
        """The ``monotonic()`` reading of a platform time: ``moment``'s inverse."""
        return (moment - self._wall_start).total_seconds()

    async def sleep(self, platform_seconds: float) -> None:
        await asyncio.sleep(max(0.0, platform_seconds) / self.time_scale)


@dataclass
class FaultConfig:
    """Probabilities (0..1) of each fault on a call; all off by default."""

    error_rate: float = 0.0  # 500/502/503
    throttle_rate: float = 0.0  # the platform's throttling answer
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    timeout_rate: float = 0.0  # hangs longer than a client's timeout
    malformed_rate: float = 0.0  # truncated JSON body
    revoke_tokens: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        config = cls(**data)
        for name in ("error_rate", "throttle_rate", "slow_rate", "timeout_rate", "malformed_rate"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        return config


FAULT_ORDER = ("error", "throttle", "timeout", "slow", "malformed")


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._configs: dict[tuple[str, str | None], FaultConfig] = {}

    def set(self, platform: str, account: str | None, config: FaultConfig) -> None:
        self._configs[(platform, account)] = config

    def config(self, platform: str, account: str) -> FaultConfig:
        return (
            self._configs.get((platform, account))
            or self._configs.get((platform, None))
            or FaultConfig()
        )

    def pick(self, platform: str, account: str) -> str | None:
        """The fault for this call, or None. Seeded, so a run can be replayed."""
        config = self.config(platform, account)
        rates = {
            "error": config.error_rate,
            "throttle": config.throttle_rate,
            "timeout": config.timeout_rate,
            "slow": config.slow_rate,
            "malformed": config.malformed_rate,
        }
        if not any(rates.values()):
            return None
        roll = self._random.random()
        for name in FAULT_ORDER:
            if roll < rates[name]:
                return name
            roll -= rates[name]
        return None


@dataclass
class SandboxState:
    seed: int = 42
    clock: SandboxClock = field(default_factory=SandboxClock)
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(42))
    public_base: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # the platforms, by name
    state_file: StateFile | None = None  # None: the sandbox forgets everything on restart

    def remember(self) -> None:
        """Save what the platforms keep across restarts, after a change to it (a grant, a
        revoke, a subscription, a shop): a no-op without a state file."""
        if self.state_file is not None:
            self.state_file.save(self.remembered)

    def remembered(self) -> dict[str, Any]:
        """What a restart keeps: the clock's position and each platform's ``remembered()``."""
        return {
            "seed": self.seed,
            "clock": clock_anchor(self.clock.now(), self.clock.time_scale),
            **{
                name: platform.remembered()
                for name, platform in list(self.extras.items())
                if hasattr(platform, "remembered")
            },
        }


def checksum(ids: Iterable[str]) -> str:
    """Ground truth of a stream: SHA-256 of its sorted unique external ids, one per line."""
    digest = hashlib.sha256()
    for external_id in sorted(set(ids)):
        digest.update(external_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()
