"""A closed-loop gRPC load generator, run in its own process so it does not share the
server's event loop:

    python -m bench.load ADDRESS METHOD REQUEST_HEX KEY CONCURRENCY SECONDS [CALLS [RATE]]

(CALLS > 0: stop after that many calls; RATE > 0: start calls at that many a second in all,
an open loop, rather than each as soon as the last returned; REQUEST_HEX may list several
requests, comma-separated, sent in turn).

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
    rate: float = 0.0,
    requests: list[bytes] | None = None,
) -> dict[str, object]:
    channel = grpc.aio.insecure_channel(address)
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    metadata = (("x-api-key", key),) if key else ()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    sent = 0
    every = requests or [request]
    begun = time.perf_counter()

    async def worker() -> None:
        nonlocal errors, sent
        while time.perf_counter() < deadline and not (calls and len(latencies) >= calls):
            if rate > 0:  # the call's slot in the schedule; latency counts from it
                slot = begun + sent / rate
                sent += 1
                await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                started = slot
            else:
                sent += 1
                started = time.perf_counter()
            try:
                await call(every[sent % len(every)], metadata=metadata)
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
    rate = float(sys.argv[8]) if len(sys.argv) > 8 else 0.0
    requests = [bytes.fromhex(part) for part in request_hex.split(",")]
    result = asyncio.run(
        run(
            address,
            method,
            requests[0],
            key,
            int(concurrency),
            float(seconds),
            calls,
            rate,
            requests,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
