"""A closed-loop gRPC load generator, run in its own process so it does not share the
server's event loop:

    python -m bench.load ADDRESS METHOD REQUEST_HEX KEY CONCURRENCY SECONDS [CALLS]

(CALLS > 0: stop after that many calls).

Prints one JSON line: calls, seconds, and each call's latency."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc


async def run(
    address: str,
    method: str,
    request: bytes,
    key: str,
    concurrency: int,
    seconds: float,
    calls: int = 0,
) -> dict[str, object]:
    channel = grpc.aio.insecure_channel(address)
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    metadata = (("x-api-key", key),) if key else ()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and not (calls and len(latencies) >= calls):
            started = time.perf_counter()
            try:
                await call(request, metadata=metadata)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await channel.close()
    return {"calls": len(latencies), "errors": errors, "seconds": elapsed, "latencies": latencies}


def main() -> None:
    address, method, request_hex, key, concurrency, seconds = sys.argv[1:7]
    calls = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    request = bytes.fromhex(request_hex)
    result = asyncio.run(
        run(address, method, request, key, int(concurrency), float(seconds), calls)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
