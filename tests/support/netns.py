"""A second host on this machine: a network namespace joined to this one by a veth pair, which a test
can cut and heal (issue 21's network partition). Needs root (CAP_NET_ADMIN) and iproute2.

    with Host("a") as host:            # host.address: the namespace's end; host.gateway: ours
        WorkerProcess(..., prefix=host.prefix)   # a worker that sees only the namespace's network
        host.cut(); host.heal()
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from types import TracebackType

IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=10)  # noqa: S603


def namespaces_available() -> str | None:
    """None when namespaces can be made here, else why not."""
    probe = f"cfm-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot create a network namespace here: {exc}"
    _ip("netns", "del", probe)
    return None


class Host:
    """A namespace `cfm-<tag>-<id>` with one veth link to this namespace: 10.231.<n>.2 there, .1 here."""

    _next = 0

    def __init__(self, tag: str) -> None:
        Host._next += 1
        suffix = uuid.uuid4().hex[:5]
        self.namespace = f"cfm-{tag}-{suffix}"
        self.here, self.there = f"vh{suffix}", f"vn{suffix}"
        subnet = 10 + (int(suffix, 16) % 200)
        self.gateway, self.address = f"10.231.{subnet}.1", f"10.231.{subnet}.2"

    def __enter__(self) -> Host:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.here, "type", "veth", "peer", "name", self.there)
        _ip("link", "set", self.there, "netns", self.namespace)
        _ip("addr", "add", f"{self.gateway}/30", "dev", self.here)
        _ip("link", "set", self.here, "up")
        _ip("netns", "exec", self.namespace, "ip", "addr", "add", f"{self.address}/30", "dev", self.there)
        _ip("netns", "exec", self.namespace, "ip", "link", "set", self.there, "up")
        _ip("netns", "exec", self.namespace, "ip", "link", "set", "lo", "up")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        subprocess.run([IP, "netns", "del", self.namespace], check=False, capture_output=True, timeout=10)  # noqa: S603

    @property
    def prefix(self) -> tuple[str, ...]:
        """Put before a command to run it on this host (`ip netns exec` execs it: the pid is the command's)."""
        return (IP, "netns", "exec", self.namespace)

    def cut(self) -> None:
        """No packet crosses any more (both ends of the link lose carrier); connections are not reset."""
        _ip("link", "set", self.here, "down")

    def heal(self) -> None:
        _ip("link", "set", self.here, "up")
