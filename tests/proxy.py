"""A TCP proxy for fault tests: put it between Podium and the broker or the database, then cut
the link (`refuse`: a server that is down; `blackhole`: a dead network) and restore it.

`TcpProxy` runs in the test's own event loop; `ThreadedTcpProxy` runs one in a thread of its
own, with blocking calls, for tests that drive Podium in a subprocess or from synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Literal, TypeVar

Cut = Literal["refuse", "blackhole"]
Mode = Literal["forward", "refuse", "blackhole"]
T = TypeVar("T")

CHUNK = 64 * 1024
HOST = "127.0.0.1"
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


class _Link:
    """One client connection and, once connected, its upstream twin."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """Close both sides at once, the client seeing its connection reset, and stop serving."""
        self.abort()
        if self.task is not None:
            self.task.cancel()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            sock = self.client.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()

    def close(self) -> None:
        """Close both sides once what is written has gone out (a no-op after `reset`)."""
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class TcpProxy:
    """Forwards every connection made to `127.0.0.1:port` to `target_host:target_port`.

    Modes: forwarding (the default), `cut("refuse")` (live connections reset, new ones refused:
    nothing listens on the port, which stays reserved), `cut("blackhole")` (live connections stay
    open but nothing passes either way; new ones are accepted and never connected to the target:
    clients run into their own timeouts). `restore()` forwards again: connections reset by a
    refusal stay closed; blackholed ones carry on with what they had sent (a healed network),
    and those accepted meanwhile are connected to the target then.

    `cut` and `restore` are plain calls made from the proxy's loop; they take effect on new
    connections at once and on live ones at the loop's next turn.

    Given `tls`, a server context, the proxy terminates TLS: clients speak TLS to it, and it
    forwards plaintext to the target (a broker behind a TLS listener).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        port: int = 0,
        connect_timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        self.connect_timeout = connect_timeout
        self.tls = tls
        self.mode: Mode = "forward"
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()  # accept loops cancelled, not awaited
        self._flowing: asyncio.Event | None = None
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.accepted = 0
        """Client connections accepted since the start, closed ones included."""

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def connections(self) -> int:
        """Client connections open through the proxy now (connected upstream or waiting)."""
        return len(self._links)

    async def start(self) -> TcpProxy:
        self._loop = asyncio.get_running_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.mode = "forward"
        self._listener = self._bind()
        self.port = self._listener.getsockname()[1]
        self._listen()
        return self

    def cut(self, mode: Cut) -> None:
        if mode not in ("refuse", "blackhole"):
            raise ValueError(f"unknown cut {mode!r}: 'refuse' or 'blackhole'")
        self.mode = mode
        self._gate().clear()
        if mode == "refuse":
            self._stop_listening()
            for link in list(self._links):
                link.reset()
        else:
            self._listen()

    def restore(self) -> None:
        self.mode = "forward"
        self._listen()
        self._gate().set()

    async def stop(self) -> None:
        self._stop_listening(keep_port=False)
        links = list(self._links)
        for link in links:
            link.reset()
        tasks = [link.task for link in links if link.task is not None]
        await asyncio.gather(*tasks, *self._retired, return_exceptions=True)
        self._links.clear()
        self._retired.clear()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the listening socket -----------------------------------------------------------

    def _bind(self) -> socket.socket:
        """A socket bound to the port but not listening: it keeps the port ours while a
        connection to it is refused (the kernel answers a SYN with RST)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        try:
            sock.bind((HOST, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _listen(self) -> None:
        if self._accepting is not None or self._listener is None:
            return
        self._listener.listen(128)
        self._accepting = self._running_loop().create_task(self._accept(self._listener))

    def _stop_listening(self, *, keep_port: bool = True) -> None:
        """Close the listening socket; keeping the port, a bound one that does not listen takes
        its place (another bind with SO_REUSEADDR could still share it meanwhile)."""
        if self._accepting is not None:
            self._accepting.cancel()
            self._retired.add(self._accepting)
            self._accepting.add_done_callback(self._retired.discard)
            self._accepting = None
            if self._listener is not None:
                self._running_loop().remove_reader(self._listener.fileno())
        elif keep_port:
            return  # not listening: the port is held already
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if keep_port:
            self._listener = self._bind()

    async def _accept(self, listener: socket.socket) -> None:
        loop = self._running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is None:
                    reader, writer = await asyncio.open_connection(sock=conn, limit=CHUNK)
                else:
                    async with asyncio.timeout(self.connect_timeout):
                        reader, writer = await _tls_streams(conn, self.tls)
            except (OSError, TimeoutError):
                conn.close()  # the client left already, or failed its TLS handshake
                continue
            except BaseException:
                conn.close()
                raise
            link = _Link(writer)
            self._links.add(link)
            self.accepted += 1
            link.task = loop.create_task(self._serve(link, reader))

    # --- one connection -----------------------------------------------------------------

    async def _serve(self, link: _Link, client: asyncio.StreamReader) -> None:
        try:
            await self._gate().wait()  # blackholed: accepted, not connected to the target
            async with asyncio.timeout(self.connect_timeout):
                upstream, link.upstream = await asyncio.open_connection(
                    self.target_host, self.target_port, limit=CHUNK
                )
            await self._pump_both(link, client, upstream)
        except (OSError, TimeoutError):
            link.abort()  # the target is down or a side reset: so is the other side
        finally:
            self._links.discard(link)
            link.close()

    async def _pump_both(
        self, link: _Link, client: asyncio.StreamReader, upstream: asyncio.StreamReader
    ) -> None:
        assert link.upstream is not None
        pumps = [
            asyncio.create_task(self._pump(client, link.upstream)),
            asyncio.create_task(self._pump(upstream, link.client)),
        ]
        try:
            await asyncio.gather(*pumps)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction as it comes, waiting while cut; an end of stream is passed on as
        a half-close, so a peer that shuts its side still gets the answer."""
        gate = self._gate()
        while data := await reader.read(CHUNK):
            await gate.wait()
            writer.write(data)
            await writer.drain()  # backpressure: read no more than the other side takes
        await gate.wait()
        if writer.can_write_eof():
            writer.write_eof()

    def _gate(self) -> asyncio.Event:
        if self._flowing is None:
            raise RuntimeError("the proxy is not started")
        return self._flowing

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the proxy is not started")
        return self._loop


async def _tls_streams(
    conn: socket.socket, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket, the server side of a TLS handshake done first."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=context)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class ThreadedTcpProxy:
    """A `TcpProxy` in a thread with its own event loop, driven by blocking calls that return
    once the change is in effect."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        port: int = 0,
        timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.proxy = TcpProxy(target_host, target_port, port=port, tls=tls)
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def address(self) -> str:
        return self.proxy.address

    @property
    def connections(self) -> int:
        return self.proxy.connections

    def start(self) -> ThreadedTcpProxy:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._call(self.proxy.start())
        return self

    def cut(self, mode: Cut) -> None:
        async def cut() -> None:
            self.proxy.cut(mode)
            await asyncio.sleep(0)  # the resets happen at the loop's next turn

        self._call(cut())

    def restore(self) -> None:
        async def restore() -> None:
            self.proxy.restore()

        self._call(restore())

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        try:
            self._call(self.proxy.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
            self._loop.close()
            self._loop = None
            self._thread = None

    def __enter__(self) -> ThreadedTcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the proxy is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self.timeout)
