"""The fault-test proxy against a tiny echo server: forwarding, refusal, black hole, restore."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.proxy import TcpProxy, ThreadedTcpProxy

QUICK = 2.0  # what "at once" may take, generously
SILENCE = 0.3  # how long a black hole is listened to


class EchoServer:
    """Sends back whatever it reads; shuts its side when the client shuts its own."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> EchoServer:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
            await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", echo.port) as running:
        yield running


@contextlib.asynccontextmanager
async def connection(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    async with asyncio.timeout(QUICK):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(QUICK):
        return await reader.readexactly(len(data))


async def test_bytes_pass_both_ways(proxy: TcpProxy, echo: EchoServer) -> None:
    async with connection(proxy.port) as (reader, writer):
        assert await round_trip(reader, writer, b"hello") == b"hello"
        assert await round_trip(reader, writer, b"\x00\xff again") == b"\x00\xff again"
    assert echo.accepted == 1


async def test_a_large_payload_passes_intact_and_the_end_of_stream_too(proxy: TcpProxy) -> None:
    payload = os.urandom(16 * 1024 * 1024)

    async with connection(proxy.port) as (reader, writer):

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        async with asyncio.timeout(30):
            _, received = await asyncio.gather(send(), reader.read())
    assert len(received) == len(payload)
    assert received == payload


async def test_a_refusal_resets_live_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    async with connection(proxy.port) as (reader, writer):
        assert await round_trip(reader, writer, b"before") == b"before"
        proxy.cut("refuse")
        started = time.monotonic()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(QUICK):
                await reader.read(1)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        assert time.monotonic() - started < QUICK
    assert proxy.connections == 0


async def test_a_black_hole_keeps_connections_open_and_passes_nothing(
    proxy: TcpProxy, echo: EchoServer
) -> None:
    async with connection(proxy.port) as (live_reader, live_writer):
        assert await round_trip(live_reader, live_writer, b"before") == b"before"
        proxy.cut("blackhole")
        live_writer.write(b"lost?")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(SILENCE):
                await live_reader.read(1)
        assert not live_reader.at_eof()

        async with connection(proxy.port) as (new_reader, new_writer):  # accepted all the same
            new_writer.write(b"anyone?")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(SILENCE):
                    await new_reader.read(1)
            assert not new_reader.at_eof()
            assert (echo.accepted, proxy.connections) == (1, 2)  # never connected to the target

            proxy.restore()  # a healed network: what was sent arrives
            async with asyncio.timeout(QUICK):
                assert await live_reader.readexactly(5) == b"lost?"
                assert await new_reader.readexactly(7) == b"anyone?"
            assert echo.accepted == 2


async def test_restore_after_a_refusal_lets_new_connections_through(
    proxy: TcpProxy, echo: EchoServer
) -> None:
    async with connection(proxy.port) as (old_reader, old_writer):
        assert await round_trip(old_reader, old_writer, b"one") == b"one"
        proxy.cut("refuse")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.restore()
        async with connection(proxy.port) as (reader, writer):
            assert await round_trip(reader, writer, b"two") == b"two"
        with pytest.raises(ConnectionResetError):  # what was cut stays cut
            async with asyncio.timeout(QUICK):
                await old_reader.read(1)
    assert echo.accepted == 2


async def test_a_stopped_proxy_starts_again_on_its_port(echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port)
    await proxy.start()
    port = proxy.port
    await proxy.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await proxy.start()
    try:
        assert proxy.port == port
        async with connection(port) as (reader, writer):
            assert await round_trip(reader, writer, b"back") == b"back"
    finally:
        await proxy.stop()


async def test_a_target_that_is_down_closes_the_client_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = unused.getsockname()[1]
    async with TcpProxy("127.0.0.1", nobody) as proxy, connection(proxy.port) as (reader, _):
        async with asyncio.timeout(QUICK):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read(1) == b""


# --- the threaded form, for synchronous tests -------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def threaded_echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(QUICK)


def blocking_round_trip(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=QUICK) as sock:
        sock.sendall(data)
        received = b""
        while len(received) < len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_the_threaded_proxy_cuts_and_restores_from_synchronous_code(threaded_echo: int) -> None:
    with ThreadedTcpProxy("127.0.0.1", threaded_echo) as proxy:
        assert blocking_round_trip(proxy.port, b"sync") == b"sync"

        proxy.cut("refuse")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=QUICK)

        proxy.cut("blackhole")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=SILENCE) as sock:
            sock.sendall(b"void")
            with pytest.raises(TimeoutError):
                sock.recv(1)

        proxy.restore()
        assert blocking_round_trip(proxy.port, b"again") == b"again"
