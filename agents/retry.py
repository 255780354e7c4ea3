"""callbill.retry -> the stage's input topic, once an item's `notBefore` has passed.

Parked work waits here instead of in the stage that parked it, so one item in backoff
never blocks the items behind it there. The topic is a FIFO per partition: an item waits
for its own delay and at most the (capped) delay of the items ahead of it. Nothing is
dropped: an item that fails again is parked again with a longer delay.
"""
from __future__ import annotations

import json

import faust

from agents.context import Context
from agents.stages import RETRY_TARGETS
from agents.routing import Poison, guarded, parse, wait_until_due
from runtime import headers
from runtime.metrics import note_retry_position
from schemas.events import RetryItem
from schemas.invoices import kafka_key

STAGE = "retry"


async def handle(ctx: Context, event: faust.EventT) -> None:
    msg = event.message
    note_retry_position(msg.topic, msg.partition, msg.offset)  # all before it went back already
    try:
        item: RetryItem = parse(RetryItem, event.value)
        if item.topic not in RETRY_TARGETS:
            raise Poison(f"retry item names topic {item.topic!r}, which takes no retries")
    except Poison:
        note_retry_position(msg.topic, msg.partition, msg.offset + 1)  # off to the DLQ: not waiting
        raise
    if not await wait_until_due(ctx, (item.notBefore - ctx.clock()).total_seconds()):
        return
    await ctx.send_raw(item.topic, kafka_key(item.interactionId).encode(), json.dumps(item.payload, separators=(",", ":")).encode(),
                       headers={headers.ATTEMPT: str(item.attempt).encode()})
    note_retry_position(msg.topic, msg.partition, msg.offset + 1)
    await ctx.audit(STAGE, item.interactionId, "RETRIED", f"{item.stage}: {item.reason}", count=item.attempt)


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.retry"], name="retry")
    async def retry(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: handle(ctx, e))
