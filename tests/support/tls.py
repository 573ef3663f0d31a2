"""A TLS-speaking embedded broker for tests: Tansu behind stunnel (Debian's), with certificates from
the production script (deploy/kafka/make-secrets.sh).

Tansu 0.6.0 has TLS and SASL options, but they do not work (`--cert` and `--key` refuse each other, and
with `--authentication` every request goes unanswered: docs/broker.md, T6), so TLS is ended in front of
it, as a load balancer would. The broker advertises the terminator's port: a client that does not
speak TLS reaches nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.runtime.broker import EmbeddedBroker, free_port, wait_reachable
from services.runtime.settings import PROJECT_ROOT

MAKE_SECRETS = PROJECT_ROOT / "deploy" / "kafka" / "make-secrets.sh"
MISSING_STUNNEL = "stunnel is not installed: `make system-deps` installs it (Debian package `stunnel4`)"


@dataclass(frozen=True)
class TlsBroker:
    secrets: Path  # what make-secrets.sh wrote: ca.crt, kafka-1.pem, …
    broker: EmbeddedBroker  # behind the terminator (its metadata names the TLS port)
    tls_port: int

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.secrets / "ca.crt"


def make_secrets(directory: Path) -> Path:
    subprocess.run(["bash", str(MAKE_SECRETS), str(directory)], check=True, capture_output=True)  # noqa: S603, S607
    return directory


@contextmanager
def tls_broker(workdir: Path) -> Iterator[TlsBroker]:
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if stunnel is None:
        raise RuntimeError(MISSING_STUNNEL)
    secrets = make_secrets(workdir / "secrets")
    tls_port = free_port()
    with EmbeddedBroker(log_path=workdir / "broker.log", advertised_port=tls_port) as broker:
        config = workdir / "stunnel.conf"
        config.write_text(
            "foreground = yes\npid =\ndebug = 4\n"
            f"[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{broker.port}\n"
            f"cert = {secrets / 'kafka-1.pem'}\nsslVersionMin = TLSv1.2\n"
        )
        log = (workdir / "stunnel.log").open("ab")
        process = subprocess.Popen([stunnel, str(config)], stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            if not wait_reachable("127.0.0.1", tls_port, 10):
                raise RuntimeError(f"stunnel did not listen on {tls_port}; log: {workdir / 'stunnel.log'}")
            yield TlsBroker(secrets, broker, tls_port)
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()
