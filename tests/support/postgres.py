"""A real PostgreSQL server for the tests, from Debian's packages: a throw-away cluster on a free
loopback port, its socket and data in a temporary directory, stopped at the end.

PostgreSQL will not run as root: when the tests do (CI), the cluster belongs to the `postgres` user
that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.runtime.broker import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: `make system-deps` installs Debian's postgresql package"
        )
    return found[-1]


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a new database on a new server. Its directory is its own, in the
    system's temporary directory: the `postgres` user cannot enter pytest's (root's, mode 0700)."""
    root = Path(tempfile.mkdtemp(prefix="ceasefire-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, sock):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        _as_owner([_bin("initdb"), "-D", str(data), "-U", "ceasefire", "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True,
    )
    port = free_port()
    log = root / "postgres.log"
    subprocess.run(
        _as_owner([
            _bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
            "-o", f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c full_page_writes=off",
        ]),
        check=True, capture_output=True,
    )
    try:
        _create_database(port)
        yield f"postgresql+psycopg://ceasefire@127.0.0.1:{port}/archive"
    finally:
        subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _create_database(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ceasefire", "archive"],
            capture_output=True, text=True,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"createdb failed: {done.stderr.strip()}")
        time.sleep(0.2)
