"""`POST /reports`: a way in without Kafka, for field teams and web forms (docs/security.md#http-ingest).

It authenticates and forwards; it validates nothing (ingest does, so there is one set of rules). A
request is signed like a record: `ceasefire-key-id` and `ceasefire-signature` headers, HMAC-SHA256 of
the exact body under a key of the registry. One JSON report (`application/json`) is written as the body
with the request's own signature; JSON Lines (`application/x-ndjson`) one record per line, each signed
again with the same key (the service holds it), so ingest checks every record as it checks any other.
Bounded: body size (413) and records per source per minute (429, with `Retry-After`). Off unless
`CEASEFIRE_HTTP_INGEST_PORT` is set; binds `CEASEFIRE_HTTP_INGEST_HOST` (loopback by default).
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from services.ingest.signature import KEY_ID_HEADER, SIGNATURE_HEADER, sign, signature_headers
from services.ingest.validate import Rules, named_report
from services.runtime.context import Context
from services.runtime.kafka_security import client_options

log = logging.getLogger(__name__)
JSON_LINES = ("application/x-ndjson", "application/jsonl", "application/jsonlines")


@dataclass
class Bucket:
    """Records a source may still send now; refilled at `rate` per second up to `burst`."""

    tokens: float
    at: float = field(default_factory=time.monotonic)


class RateLimit:
    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self.buckets: dict[str, Bucket] = {}

    def take(self, source: str, count: int, now: float) -> float:
        """0 when `count` records may go now (and are taken), else the seconds until they may."""
        bucket = self.buckets.setdefault(source, Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if count > self.burst:
            return math.inf
        if bucket.tokens >= count:
            bucket.tokens -= count
            return 0.0
        return (count - bucket.tokens) / self.rate if self.rate > 0 else math.inf


def _refusal(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class HttpIngest:
    def __init__(self, ctx: Context, rules: Rules) -> None:
        self.ctx, self.rules = ctx, rules
        s = ctx.settings
        self.max_bytes = s.http_ingest_max_bytes
        self.limit = RateLimit(s.http_ingest_rate_per_minute, s.http_ingest_burst)
        self.producer: AIOKafkaProducer | None = None
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        s = self.ctx.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024,
            acks="all",  # 202 only once min.insync.replicas copies hold the report (production: 2 of 3)
            **client_options(s),
        )
        await self.producer.start()
        app = web.Application(client_max_size=self.max_bytes)
        app.router.add_post("/reports", self.post)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, s.http_ingest_host, s.http_ingest_port).start()
        log.info("HTTP ingest on %s:%d", s.http_ingest_host, s.http_ingest_port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.producer is not None:
            await self.producer.stop()

    async def post(self, request: web.Request) -> web.Response:
        answer = await self._answer(request)
        self.ctx.metrics.http_requests.labels(str(answer.status)).inc()
        return answer

    async def _answer(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > self.max_bytes:
            return _refusal(413, f"the body is over {self.max_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refusal(413, f"the body is over {self.max_bytes} bytes")
        key = self._key(request, body)
        if isinstance(key, web.Response):
            return key
        key_id, source, secret = key
        lines = self._records(request, body)
        if isinstance(lines, web.Response):
            return lines
        wait = self.limit.take(source, len(lines), time.monotonic())
        if wait:
            retry = "3600" if math.isinf(wait) else str(math.ceil(wait))
            return _refusal(429, f"source {source} is over its rate ({self.ctx.settings.http_ingest_rate_per_minute:g} records a minute)", **{"Retry-After": retry})
        return await self._forward(lines, key_id, secret, request, body)

    def _key(self, request: web.Request, body: bytes) -> tuple[str, str, str] | web.Response:
        """(key id, its source, its secret) when the request's signature holds; else a 401."""
        key_id, signature = request.headers.get(KEY_ID_HEADER), request.headers.get(SIGNATURE_HEADER)
        challenge = {"WWW-Authenticate": f'Signature headers="{KEY_ID_HEADER} {SIGNATURE_HEADER}"'}
        if not key_id or not signature:
            return _refusal(401, f"sign the body: headers {KEY_ID_HEADER} and {SIGNATURE_HEADER} (docs/security.md)", **challenge)
        owner = None if self.rules.sources is None else self.rules.sources.key_owner(key_id)
        secret = self.rules.keys.get(key_id)
        if owner is None or secret is None:
            return _refusal(401, f"no key {key_id} here", **challenge)
        expected = sign(body, secret.get_secret_value())
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            return _refusal(401, "the signature does not match the body under that key", **challenge)
        return key_id, owner.id, secret.get_secret_value()

    def _records(self, request: web.Request, body: bytes) -> list[bytes] | web.Response:
        if request.content_type in JSON_LINES:
            lines = [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]
        elif request.content_type == "application/json":
            lines = [body]
        else:
            return _refusal(415, "send application/json (one report) or application/x-ndjson (JSON Lines)")
        if not lines or not body.strip():
            return _refusal(400, "the body holds no report")
        return lines

    async def _forward(self, lines: list[bytes], key_id: str, secret: str, request: web.Request, body: bytes) -> web.Response:
        """Each record, bytes as sent, with its signature; 202 and where to ask what became of each."""
        assert self.producer is not None
        topic = self.ctx.settings.topic_reports
        sends = []
        receipts: list[str | None] = []
        for line in lines:
            signature = request.headers[SIGNATURE_HEADER] if line is body else sign(line, secret)
            named = named_report(line, self.rules)
            headers = signature_headers(key_id, signature)
            record_key = None if named is None else named.source.encode()  # spelled as stored
            sends.append(await self.producer.send(topic, line, key=record_key, headers=headers))
            receipts.append(None if named is None else f"/reports/{named.source}/{named.report_id}")
        for sent in sends:
            await sent
        return web.json_response({"records": len(lines), "receipts": receipts}, status=202, dumps=lambda o: orjson.dumps(o).decode())
