"""kcat, a Kafka client that is not ours, for tests that prove our topics are usable from any client.

Debian 12's kcat 1.7.1 links librdkafka 2.0.2, which cannot talk to the embedded broker: its
`rd_kafka_buf_skip_tags` skipped one byte too few per tagged field (fixed in librdkafka 2.2.0,
confluentinc/librdkafka#4278), and Tansu writes every tagged field of ApiVersions v3, so the
connection fails with "Read underflow". The same kcat binary works when the dynamic loader is
pointed at the newer librdkafka that the `confluent-kafka` wheel (a test dependency) ships.
See docs/kcat.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

KEY_DELIMITER = b"\x1f"  # ASCII unit separator: compact JSON never holds a raw control character
LINE_DELIMITER = b"\n"
MISSING_KCAT = "kcat is not installed: `make system-deps` installs it (Debian package `kcat`)"
MISSING_LIBRDKAFKA = (
    "no librdkafka found in the confluent-kafka wheel: install the test extra (`pip install -e '.[test]'`); "
    "it carries the librdkafka >= 2.2 that Debian's kcat needs to talk to the embedded broker"
)
_LIBRDKAFKA_VERSION = re.compile(rb"librdkafka (\d+)\.(\d+)\.(\d+)")


class KcatUnavailable(RuntimeError):
    """kcat or a usable librdkafka is missing: a failure, never a skip, so CI cannot pass without it."""


@dataclass(frozen=True)
class KcatRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def header(self, name: str) -> bytes | None:
        """The last value of header `name` (Kafka allows repeated headers)."""
        values = [value for key, value in self.headers if key == name]
        return values[-1] if values else None


@dataclass(frozen=True)
class Kcat:
    """The kcat binary and the environment that makes it load a librdkafka new enough for our broker."""

    binary: Path
    env: dict[str, str]

    def run(self, args: Sequence[str], stdin: bytes = b"", timeout: float = 30.0) -> bytes:
        """Run kcat; a non-zero exit fails with kcat's own stderr, which names the cause."""
        command = [str(self.binary), *args]
        result = subprocess.run(
            command, input=stdin, capture_output=True, env=self.env, timeout=timeout, check=False
        )
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            raise RuntimeError(f"kcat {' '.join(args)} exited {result.returncode}: {stderr}")
        return result.stdout

    def librdkafka_version(self) -> tuple[int, int, int]:
        """The librdkafka that kcat actually loaded, as `kcat -V` reports it."""
        match = _LIBRDKAFKA_VERSION.search(self.run(["-V"], timeout=10))
        if match is None:
            raise RuntimeError("kcat -V does not name its librdkafka")
        major, minor, patch = (int(part) for part in match.groups())
        return major, minor, patch

    def produce(
        self,
        bootstrap: str,
        topic: str,
        lines: Sequence[bytes],
        key_of: Callable[[bytes], bytes],
        timeout: float = 30.0,
    ) -> None:
        """Post one record per line, keyed by `key_of(line)`; kcat waits for every delivery before exiting."""
        stdin = bytearray()
        for line in lines:
            key = key_of(line)
            # kcat splits a line at its first key delimiter, so only the key must not hold one.
            if LINE_DELIMITER in line or KEY_DELIMITER in key:
                raise ValueError(f"cannot post {line!r} with key {key!r}: it holds a delimiter")
            stdin += key + KEY_DELIMITER + line + LINE_DELIMITER
        self.run(["-b", bootstrap, "-t", topic, "-P", "-K", KEY_DELIMITER.decode()], bytes(stdin), timeout)

    def consume(self, bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[KcatRecord]:
        """Every record of `topic`, read from the beginning to the end, once at least `count` are there.

        kcat's `-e` stops at the end each partition's fetch reports; it is run again until `count`
        records are seen or the deadline passes, so records still on their way are waited for.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 1.0)
            args = ["-b", bootstrap, "-t", topic, "-C", "-o", "beginning", "-e", "-q", "-J"]
            out = self.run(args, timeout=remaining)
            records = [_record(line) for line in out.splitlines() if line.strip()]
            if len(records) >= count:
                return sorted(records, key=lambda r: (r.partition, r.offset))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: kcat read {len(records)} records in {timeout}s, wanted {count}")


def kcat_with_wheel_librdkafka(workdir: Path) -> Kcat:
    """Debian's kcat, made to load the confluent-kafka wheel's librdkafka through a symlink in `workdir`."""
    binary = shutil.which("kcat")
    if binary is None:
        raise KcatUnavailable(MISSING_KCAT)
    library = _wheel_librdkafka()
    libdir = workdir / "librdkafka"
    libdir.mkdir(parents=True, exist_ok=True)
    link = libdir / "librdkafka.so.1"  # the soname kcat is linked against
    link.unlink(missing_ok=True)
    link.symlink_to(library)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    env["LD_LIBRARY_PATH"] = str(libdir)
    return Kcat(Path(binary), env)


def _wheel_librdkafka() -> Path:
    # find_spec, not import: importing confluent_kafka would load its librdkafka into the test process.
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        raise KcatUnavailable(MISSING_LIBRDKAFKA)
    package = Path(spec.origin).parent
    candidates = sorted(package.parent.glob("confluent_kafka.libs/librdkafka-*.so.1")) + sorted(
        package.glob("**/librdkafka*.so.1")
    )
    if not candidates:
        raise KcatUnavailable(MISSING_LIBRDKAFKA)
    return candidates[0]


def _record(line: bytes) -> KcatRecord:
    """One `kcat -J` envelope. kcat writes payload bytes into the JSON string as they are, even when
    they are not UTF-8, so the line is decoded with surrogateescape and the bytes are recovered exactly."""
    doc = json.loads(line.decode("utf-8", "surrogateescape"))
    flat = doc.get("headers") or []
    return KcatRecord(
        topic=doc["topic"],
        partition=doc["partition"],
        offset=doc["offset"],
        key=_bytes(doc.get("key")),
        value=_bytes(doc.get("payload")),
        headers=tuple((flat[i], _bytes(flat[i + 1])) for i in range(0, len(flat), 2)),
    )


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")
