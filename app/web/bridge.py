"""The HTTP bridge: Genesys events in, durably on `genesys.events`, or a clear refusal.

202 means Kafka acknowledged the write (acks=all); anything else means the sender keeps
the event and may retry. Errors name the field and the rule, never echo the input.
"""
from __future__ import annotations

from runtime.kafka import client_kwargs  # noqa: E402

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError

from runtime.logs import get_logger
from runtime.settings import Settings
from agents.context import Context
from runtime.metrics import BRIDGE_LATENCY, BRIDGE_REQUESTS
from app.web.openapi import document
from runtime.topics import topic_name
from schemas.errors import field_errors
from schemas.events import utcnow
from schemas.genesys import EventBridgeEvent, GenesysEvent, WebhookPayload

log = get_logger("bridge")


class Refusal(Exception):
    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(error)
        self.status, self.error, self.headers, self.extra = status, error, headers, extra


class EventProducer:
    """A producer of the bridge's own, so a Kafka outage is a quick 503, not a hung request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                p = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=1,
                    request_timeout_ms=int(self.settings.bridge_ack_timeout * 1000),
                    client_id=f"{self.settings.app_id}-bridge",
                    **client_kwargs(),
                )
                try:
                    await asyncio.wait_for(p.start(), self.settings.bridge_ack_timeout)
                except BaseException:
                    await _quiet_stop(p)
                    raise
                self._producer = p
            return self._producer

    async def send(self, key: str, value: bytes) -> None:
        producer = await self._get()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic_name("genesys.events"), value=value, key=key.encode()),
                self.settings.bridge_ack_timeout,
            )
        except (KafkaError, asyncio.TimeoutError, OSError):
            # After a broker restart an idempotent producer can stay stuck (its producer id
            # and sequence numbers no longer match): start afresh with the next request.
            await self._discard(producer)
            raise

    async def _discard(self, producer: AIOKafkaProducer) -> None:
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        asyncio.get_running_loop().create_task(_quiet_stop(producer))

    async def broker_reachable(self) -> bool:
        try:
            producer = await self._get()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 2.0)
            return True
        except (KafkaError, asyncio.TimeoutError, OSError):
            return False

    async def stop(self) -> None:
        if self._producer is not None:
            await _quiet_stop(self._producer)
            self._producer = None


async def _quiet_stop(p: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(p.stop(), 5)
    except Exception:  # noqa: BLE001 - stopping a broken producer must not raise
        pass


async def read_body(request: Request, settings: Settings) -> bytes:
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_auth(request: Request, body: bytes, settings: Settings) -> None:
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    if not secret:
        raise Refusal(401, "the bridge has no CALLBILL_WEBHOOK_SECRET configured")
    signature = request.headers.get("X-Callbill-Signature")
    if signature is not None:
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
            return
        raise Refusal(401, "X-Callbill-Signature does not match the body")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        if hmac.compare_digest(auth[7:].strip().encode(), secret):
            return
        raise Refusal(401, "bearer token is not valid")
    raise Refusal(401, "missing X-Callbill-Signature or Authorization: Bearer")


def parse_json(request: Request, body: bytes) -> Any:
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Refusal(415, "Content-Type must be application/json")
    return decode_json(body)


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refusal(400, "body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise Refusal(400, f"body is not valid JSON (line {e.lineno}, column {e.colno})") from None


def validate(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise Refusal(422, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        fields = field_errors(e)
        raise Refusal(422, "invalid " + ", ".join(f["field"] for f in fields), fields=fields) from None


def record_of(kind: str, event: WebhookPayload | EventBridgeEvent) -> tuple[str, GenesysEvent]:
    """The key and the genesys.events record for a validated body (the interaction or the
    conversation id: every record of one conversation lands on one partition)."""
    key = event.interactionId if isinstance(event, WebhookPayload) else event.conversation_id
    return key, GenesysEvent(kind=kind, receivedAt=utcnow(),
                             payload=event.model_dump(mode="json", by_alias=True, exclude_unset=True))


async def accept(endpoint: str, model: type[BaseModel], kind: str, view: View, request: Request,
                 settings: Settings, producer: EventProducer) -> Response:
    started = time.perf_counter()
    try:
        body = await read_body(request, settings)
        check_auth(request, body, settings)
        key, record = record_of(kind, validate(model, parse_json(request, body)))
        try:
            await producer.send(key, record.model_dump_json().encode())
        except (KafkaError, asyncio.TimeoutError, OSError) as e:
            log.warning("kafka unavailable", extra={"stage": "bridge", "reason": type(e).__name__})
            raise Refusal(503, "Kafka is unavailable; retry later",
                          headers={"Retry-After": str(settings.bridge_retry_after)}) from None
        BRIDGE_REQUESTS.labels(endpoint, "202").inc()
        BRIDGE_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return view.json({"accepted": key}, status=202)
    except Refusal as r:
        BRIDGE_REQUESTS.labels(endpoint, str(r.status)).inc()
        return view.json({"error": r.error, **r.extra}, status=r.status, headers=r.headers)


def register(app: Any, ctx: Context) -> EventProducer:
    """The bridge's views and its producer (returned: the health check asks it about Kafka)."""
    producer = EventProducer(ctx.settings)

    @app.service
    class BridgeProducerService(faust.Service):
        async def on_stop(self) -> None:
            await producer.stop()

    @app.page("/genesys/webhook")
    class WebhookView(View):
        async def post(self, request: Request) -> Response:
            return await accept("webhook", WebhookPayload, "webhook", self, request, ctx.settings, producer)

    @app.page("/genesys/eventbridge")
    class EventBridgeView(View):
        async def post(self, request: Request) -> Response:
            return await accept("eventbridge", EventBridgeEvent, "eventbridge", self, request, ctx.settings,
                                  producer)

    @app.page("/openapi.json")
    class OpenAPIView(View):
        async def get(self, request: Request) -> Response:
            return self.json(document())

    return producer
