"""The guard that keeps one bad message from killing an agent, and helpers on events
(how agents write their results is agents/context.py).

An exception escaping a Faust agent acks its message, so the message is lost. The guard
classifies instead: Kafka trouble is retried (the message is still ours), anything else
is poison and goes whole to the dead-letter topic with its reason.

The guard also puts a record on the partition its key belongs to before any stage sees
it: every table (ledger, pending conversations, numbering) is sharded by partition, so
a record another producer's partitioner placed elsewhere would meet another shard.
"""
from __future__ import annotations

import asyncio
import base64
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Awaitable, Callable, TypeVar

import faust
from aiokafka.errors import KafkaError
from faust.streams import _current_event
from pydantic import BaseModel, ValidationError

from agents.context import Context
from agents.stages import BY_NAME
from runtime import headers as header_names
from runtime.logs import current_interaction, error_site, get_logger
from runtime.metrics import STAGE_IN, STAGE_LATENCY, STAGE_OUTCOMES
from runtime.partitioning import home_partition
from runtime.writes import PENDING_WRITES
from schemas.errors import summary
from schemas.events import DeadLetter

log = get_logger("agents")
M = TypeVar("M", bound=BaseModel)


class Poison(Exception):
    """A message that will never be processable as it is; the text is the DLQ reason."""


async def dead_letter(ctx: Context, stage: str, event: faust.EventT, reason: str, keep_value: bool = True) -> None:
    msg = event.message
    key = msg.key if isinstance(msg.key, bytes) else None
    value = msg.value if isinstance(msg.value, bytes) and keep_value else None
    STAGE_OUTCOMES.labels(stage, "DEAD_LETTER").inc()
    log.warning("dead letter", extra={"stage": stage, "reason": reason})
    dl = DeadLetter(
        stage=stage, reason=reason, topic=msg.topic, partition=msg.partition, offset=msg.offset,
        key=base64.b64encode(key).decode() if key is not None else None,
        value=base64.b64encode(value).decode() if value is not None else None,
    )
    await ctx.send_raw("callbill.dlq", key, dl.model_dump_json().encode())


@contextmanager
def event_context(event: faust.EventT) -> Iterator[None]:
    """Make `event` the current one, so table writes land in its partition's changelog.

    Faust finds the changelog partition (and the RocksDB shard) of a table write from the
    current event. Inside `stream.take_events()` batches, handled concurrently, each task
    sets its own event (context variables are per task).
    """
    token = _current_event.set(weakref.ref(event))
    key = event.message.key
    iid = key.decode(errors="replace")[:200] if isinstance(key, bytes) else None
    log_token = current_interaction.set(iid)
    try:
        yield
    finally:
        current_interaction.reset(log_token)
        _current_event.reset(token)


def source_of(event: faust.EventT) -> str:
    """topic/partition/offset: the same message read again after a crash has the same source.
    A record moved to its key's partition keeps the source of the one it copies, so a second
    copy (a crash between the move and the commit) is that same message read again."""
    moved = header(event, header_names.REROUTED_FROM)
    if moved:
        return moved
    msg = event.message
    return f"{msg.topic}/{msg.partition}/{msg.offset}"


async def moved_home(ctx: Context, stage: str, event: faust.EventT) -> bool:
    """True when the record was not on its key's partition and a copy was sent there instead.

    librdkafka and kcat partition by CRC32 by default, so the same interaction produced by
    them and by the bridge would land on two partitions, two ledger shards and two pending
    entries: billed twice, or its halves never joined. The copy keeps value and headers, is
    sent with the batch's writes (awaited before the input is committed) and is audited
    REPARTITIONED. A record already moved once is handled where it is, never moved again:
    a loop is worse than a wrong shard."""
    msg = event.message
    key = msg.key
    if not isinstance(key, bytes) or not key or not getattr(BY_NAME.get(stage), "by_key", True):
        return False
    count = ctx.partitions(msg.topic)
    if not count or msg.partition is None:
        return False
    home = home_partition(key, count)
    if msg.partition == home:
        return False
    iid = key.decode(errors="replace")[:200]
    if header(event, header_names.REROUTED_FROM) is not None:
        log.warning("moved record still off its partition", extra={"stage": stage, "interactionId": iid})
        return False
    topic = msg.topic.removeprefix(ctx.settings.topic_prefix)
    hdrs = headers_of(event) + [(header_names.REROUTED_FROM, source_of(event).encode())]
    await ctx.resend(topic, key, msg.value, hdrs, home)
    await ctx.audit(stage, iid, "REPARTITIONED", f"partition {msg.partition} -> {home}")
    return True


def headers_of(event: faust.EventT) -> list[tuple[str, bytes]]:
    hs = event.message.headers or []
    return list(hs.items()) if isinstance(hs, Mapping) else list(hs)


def header(event: faust.EventT, name: str) -> str | None:
    for k, v in headers_of(event):
        if k == name:
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


def parse(model: type[M], raw: object) -> M:
    """Validate raw bytes (a topic value) or an already decoded dict; Poison if invalid."""
    if not raw:
        raise Poison("value is empty")
    try:
        if isinstance(raw, dict):
            return model.model_validate(raw)
        if isinstance(raw, (bytes, str)):
            return model.model_validate_json(raw)
        raise Poison(f"value of type {type(raw).__name__} is not JSON")
    except ValidationError as e:
        raise Poison(f"invalid {model.__name__}: {summary(e)}"[:1000]) from None


async def wait_until_due(ctx: Context, seconds: float) -> bool:
    """Sleep for a timer (retry, acknowledgement); False when the worker began to stop.

    Faust waits for every agent's current message before it stops, so a long sleep would
    hold a shutdown for its whole length. Leaving early is safe: once a stop has begun the
    worker commits nothing (app/factory.py), and the next worker reads the timer again.
    """
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.stopping():
            return False
        await asyncio.sleep(min(left, 0.25))
    return not ctx.stopping()


RETRYABLE = (KafkaError, asyncio.TimeoutError, ConnectionError)


async def guarded(ctx: Context, stage: str, stream: faust.StreamT,
                  handle: Callable[[faust.EventT], Awaitable[None]], size: int = 500, window: float = 0.02) -> None:
    """Handle each event in order; nothing escapes. Events come in small batches and every
    write a batch made (outputs, audit, table changelogs) is awaited before the batch is
    acknowledged: a `kill -9` can then lose no write whose input offset was committed
    (seen in the chaos run as an intake audit record lost while its forward landed)."""
    async for events in stream.take_events(size, within=window):
        sink: list[asyncio.Future] = []
        token = PENDING_WRITES.set(sink)
        try:
            for event in events:
                with event_context(event):
                    await guard_one(ctx, stage, event, handle)
        finally:
            PENDING_WRITES.reset(token)
        await all_sent(stage, sink)


async def all_sent(stage: str, sends: list[asyncio.Future]) -> None:
    """Every write acknowledged by Kafka (acks=all). A failure means the producer gave up:
    the send guard (runtime/sensors.py) stops the worker before any commit, so the input is
    redelivered; never acknowledge it."""
    results = await asyncio.gather(*sends, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        log.error("outputs not acknowledged; waiting for the worker to stop",
                  extra={"stage": stage, "reason": type(failed[0]).__name__})
        await asyncio.Event().wait()


async def guard_one(ctx: Context, stage: str, event: faust.EventT, handle: Callable[[faust.EventT], Awaitable[None]],
                    transient: tuple[type[BaseException], ...] = ()) -> None:
    """Handle one event on its key's partition (moved there first if need be): Kafka trouble
    (and `transient` errors) retried, poison to the DLQ."""
    STAGE_IN.labels(stage).inc()
    started = time.perf_counter()
    delay = 0.2
    while True:
        try:
            if not await moved_home(ctx, stage, event):
                await handle(event)
            break
        except Poison as e:
            await _dead_letter_or_log(ctx, stage, event, str(e))
            break
        except RETRYABLE + transient as e:
            if not retriable(e):
                await _dead_letter_or_log(ctx, stage, event, f"kafka refused the output: {type(e).__name__}")
                break
            log.warning("unavailable, retrying", extra={"stage": stage, "reason": getattr(e, "reason", type(e).__name__)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except Exception as e:  # noqa: BLE001 - the point: never let one message kill the agent
            log.error("unexpected error", extra={"stage": stage, "reason": error_site(e)})
            await _dead_letter_or_log(ctx, stage, event, f"unexpected {type(e).__name__} in {stage}")
            break
    STAGE_LATENCY.labels(stage).observe(time.perf_counter() - started)


def retriable(e: BaseException) -> bool:
    """Kafka errors that can succeed later (broker down, leader moving); not e.g. too large."""
    return not isinstance(e, KafkaError) or bool(getattr(e, "retriable", False)) or \
        type(e).__name__ in ("KafkaTimeoutError", "KafkaConnectionError", "NodeNotReadyError")


async def _dead_letter_or_log(ctx: Context, stage: str, event: faust.EventT, reason: str) -> None:
    delay = 0.2
    keep_value = True
    while True:
        try:
            await dead_letter(ctx, stage, event, reason, keep_value)
            return
        except RETRYABLE as e:
            if not retriable(e):
                # e.g. too large once base64-encoded: keep the pointer (topic, partition,
                # offset) without the bytes; the message can be replayed from its source.
                if not keep_value:
                    log.error("dead letter refused", extra={"stage": stage, "reason": type(e).__name__})
                    return
                keep_value = False
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
