"""Background trip load, in its own process so it does not share the server's interpreter:
`python -m bench.produce SERVERS TOPIC RATE DRIVERS [TENANT]` produces RATE trip events a
second (of TENANT, the bench's own by default) until it is terminated, then prints how many it
sent."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from aiokafka import AIOKafkaProducer

from bench.harness import TENANT, trip_message


async def run(servers: str, topic: str, rate: float, drivers: int, tenant: str) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5)
    await producer.start()
    sent, started = 0, time.perf_counter()
    try:
        while not stop.is_set():
            due = int((time.perf_counter() - started) * rate)
            while sent < due:
                key, value = trip_message(sent + 10_000_000, drivers, tenant=tenant)
                await producer.send(topic, value, key=key)
                sent += 1
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()
    return sent


def main() -> None:
    servers, topic, rate, drivers = sys.argv[1:5]
    tenant = sys.argv[5] if len(sys.argv) > 5 else TENANT
    print(asyncio.run(run(servers, topic, float(rate), int(drivers), tenant)))


if __name__ == "__main__":
    main()
