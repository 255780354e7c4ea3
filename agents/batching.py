"""Batches for stages that call slow outside systems (ERP, object store).

A stage takes a batch with `stream.take_events`, runs one task per interaction (events
of one interaction in order), and awaits every write of the batch before the batch is
acknowledged (runtime/writes.py). A failing call backs off inside the batch only while other
interactions of the batch are still busy; once only waiting ones are left they are told
to park (on callbill.retry), so one slow interaction never holds up the next batch.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import faust

from pydantic import BaseModel

from adapters.erp import ErpInvalidResponse, ErpRejected, ErpRetryable
from agents.context import Context

from agents.routing import all_sent, header
from runtime import headers
from runtime.logs import get_logger
from runtime.metrics import EXTERNAL_ERRORS, EXTERNAL_LATENCY, RETRY_PARKED
from runtime.writes import PENDING_WRITES
from domain.backoff import next_delay
from schemas.events import RetryItem

log = get_logger("agents")
T = TypeVar("T")


class Batch:
    def __init__(self, size: int, stage: str) -> None:
        self.busy = size  # groups (interactions) still working
        self.stage = stage
        self.park = asyncio.Event()
        self.sends: list[asyncio.Future] = []

    def _check(self) -> None:
        if self.busy <= 0:
            self.park.set()

    def waiting(self) -> None:
        self.busy -= 1
        self._check()

    def resumed(self) -> None:
        self.busy += 1

    done = waiting

    async def backoff(self, delay: float) -> bool:
        """Sleep `delay` unless the batch says park first; True means: park now."""
        if self.park.is_set():
            return True
        self.waiting()
        try:
            await asyncio.wait_for(self.park.wait(), delay)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self.resumed()

    async def sent(self) -> None:
        await all_sent(self.stage, self.sends)


@dataclass
class Parked:
    reason: str
    retry_after: float | None
    recipient: bool = False  # delivery: the recipient (not the server) was refused with 4xx


async def with_backoff(ctx: Context, call: Callable[[], Awaitable[T]], retryable: type[Exception] | tuple[type[Exception], ...],
                       batch: Batch, attempts: int, system: str, kind: Callable[[Exception], str]) -> T | Parked:
    """The one backoff loop of the ERP call, the document store and the send: `call` again
    after each `retryable` failure, a doubling, jittered, capped delay apart (at least the
    server's Retry-After), while the rest of the batch is busy; Parked after `attempts`, or
    as soon as the batch says park. Other errors propagate. Each call is timed for `system`."""
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            return await call()
        except retryable as e:
            EXTERNAL_ERRORS.labels(system, kind(e)).inc()
            attempt += 1
            retry_after = getattr(e, "retry_after", None)
            reason = getattr(e, "reason", type(e).__name__)
            if attempt >= attempts or batch.park.is_set() or await batch.backoff(
                    next_delay(attempt - 1, ctx.settings.backoff_base, ctx.settings.backoff_cap, retry_after)):
                return Parked(reason, retry_after, recipient=bool(getattr(e, "recipient", False)))
        finally:
            EXTERNAL_LATENCY.labels(system).observe(time.perf_counter() - started)


async def erp_call(ctx: Context, call: Callable[[], Awaitable[T]], batch: Batch) -> T | ErpRejected | ErpInvalidResponse | Parked:
    """One ERP request under the backoff rules: its answer, Parked, or the 4xx / malformed
    answer as a value (a person has to look: never retried)."""
    try:
        return await with_backoff(ctx, call, ErpRetryable, batch, ctx.settings.erp_attempts, "erp",
                                  lambda e: e.reason.lower().removeprefix("erp_"))  # http_503, timeout…
    except ErpRejected as e:
        EXTERNAL_ERRORS.labels("erp", f"http_{e.status}").inc()
        return e
    except ErpInvalidResponse as e:
        EXTERNAL_ERRORS.labels("erp", "invalid_response").inc()
        return e


def attempt_of(event: faust.EventT) -> int:
    """This delivery's attempt number: 1 first time, n+1 after n parkings."""
    return int(header(event, headers.ATTEMPT) or 0) + 1


async def park(ctx: Context, stage: str, event: faust.EventT, iid: str, topic: str, payload: BaseModel, p: Parked) -> int:
    """Put the item on callbill.retry, due after a doubling, jittered, capped delay (at
    least Retry-After); the retry agent sends it back to `topic` then. Returns the attempt."""
    attempt = attempt_of(event)
    delay = min(ctx.settings.retry_max_delay,
                ctx.settings.retry_base_delay + next_delay(attempt - 1, ctx.settings.retry_base_delay,
                                                       ctx.settings.retry_max_delay, p.retry_after))
    await ctx.publish("callbill.retry", iid, RetryItem(
        interactionId=iid, stage=stage, topic=topic, attempt=attempt,
        notBefore=ctx.clock() + timedelta(seconds=delay), reason=p.reason,
        payload=payload.model_dump(mode="json")), wait=False)
    RETRY_PARKED.labels(stage).inc()
    await ctx.audit(stage, iid, "PARKED", p.reason, count=attempt)
    return attempt


def by_key(events: list[faust.EventT]) -> list[list[faust.EventT]]:
    """Events of one interaction stay in order; different interactions run concurrently."""
    groups: dict[object, list[faust.EventT]] = {}
    for e in events:
        groups.setdefault(e.message.key, []).append(e)
    return list(groups.values())


async def run_batches(stream: faust.StreamT, stage: str, size: int, window: float,
                      handle: Callable[[faust.EventT, Batch], Awaitable[None]], concurrent: bool = True) -> None:
    """`handle` must never raise (wrap it like agents/routing.py's guard)."""
    async for events in stream.take_events(size, within=window):
        groups = by_key(events)
        batch = Batch(len(groups), stage)
        token = PENDING_WRITES.set(batch.sends)
        try:
            if concurrent:
                await asyncio.gather(*(_in_order(g, batch, handle) for g in groups))
            else:
                for event in events:
                    await handle(event, batch)
        finally:
            PENDING_WRITES.reset(token)
        await batch.sent()


async def _in_order(group: list[faust.EventT], batch: Batch,
                    handle: Callable[[faust.EventT, Batch], Awaitable[None]]) -> None:
    try:
        for event in group:
            await handle(event, batch)
    finally:
        batch.done()
