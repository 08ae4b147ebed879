"""Query load against a running server, measured by a separate client process."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from bench.harness import percentile

HEALTH = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Load:
    calls: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.per_second:,.0f} calls/s, "
            f"p50 {percentile(self.latencies, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(self.latencies, 0.99) * 1e3:.1f} ms, errors {self.errors}"
        )


async def load(
    address: str,
    method: str,
    request: bytes,
    key: str,
    *,
    concurrency: int = 16,
    seconds: float = 5.0,
    calls: int = 0,
    rate: float = 0.0,
    more_requests: tuple[bytes, ...] = (),
) -> Load:
    """Calls for `seconds` (or until `calls` calls, when given) at `concurrency` in flight
    (at `rate` calls a second when given, an open loop; cycling through `request` and
    `more_requests`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        address,
        method,
        ",".join(r.hex() for r in (request, *more_requests)),
        key,
        str(concurrency),
        str(seconds),
        str(calls),
        str(rate),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    data = json.loads(output)
    return Load(data["calls"], data["errors"], data["seconds"], data["latencies"])
