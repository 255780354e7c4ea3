"""The stages of agents/ wired topic to handler in one process: a worker without a broker.

Every record a stage sends (through the stage context's recording topics) is also
delivered to the stage that reads its topic, in order per topic, with increasing
offsets, through the same guard the worker uses (poison to the DLQ, nothing escapes).
Each topic has its own consumer task, as each agent has in a worker, so a stage that
sleeps (a retry item not yet due, an acknowledgement timer) holds up only its own topic.
Whole-topic views (`crm.customers`, `callbill.suppressions`) are followed as a worker
follows them. Timers run only when asked (`sweep()`, `reconcile()`, `scan_bounces()`).

What this cannot show is what needs a broker: a kill and its redelivery, a rebalance,
a changelog restore. A test re-reads a message with `again(sent)`, which is what a
redelivery is to a stage.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from agents import acks, assemble, billing, bounces, credits, delivery, documents, intake, retry, review
from agents.batching import Batch
from agents.routing import event_context, guard_one
from stage_context import Event, Sent, StageContext


def read(s: Sent, offset: int) -> Event:
    """A sent record as its consumer reads it, at `offset` of its topic (one partition)."""
    headers = list(s.headers.items()) if isinstance(s.headers, dict) else (s.headers or [])
    return Event(value=s.value, message=SimpleNamespace(topic=s.topic, partition=0, offset=offset, key=s.key,
                                                        value=s.value, headers=headers))


class Pipeline:
    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        c = ctx
        guarded = lambda stage, fn: (lambda e: guard_one(c, stage, e, lambda ev: fn(c, ev)))  # noqa: E731
        self.handlers: dict[str, Callable[[Any], Any]] = {
            "genesys.events": guarded(assemble.STAGE, assemble.handle),
            "callbill.interactions": guarded(intake.STAGE, intake.handle),
            "callbill.billable": lambda e: billing.bill_one(c, e, Batch(1, billing.STAGE)),
            "callbill.credit-requests": lambda e: credits.credit_one(c, e, Batch(1, credits.STAGE)),
            "callbill.invoices": lambda e: documents.document_one(c, e, Batch(1, documents.STAGE)),
            "callbill.documents": lambda e: delivery.deliver_one(c, e, Batch(1, delivery.STAGE)),
            "callbill.bounces": guarded(bounces.STAGE, bounces.handle),
            "callbill.acks": guarded(acks.STAGE, acks.handle),
            "callbill.retry": guarded(retry.STAGE, retry.handle),
            "callbill.review": guarded(review.STAGE, review.record),
            "callbill.review-actions": guarded(review.STAGE, review.act),
        }
        self.views = {"crm.customers": ctx.directory, "callbill.suppressions": ctx.suppressions}
        self.queues: dict[str, asyncio.Queue] = {}
        self.offsets: dict[str, int] = {}
        self.busy: dict[str, int] = {}  # topic -> handlers running
        self.tasks: list[asyncio.Task] = []
        self.seen = 0  # records of ctx.sent already routed

    # --- the broker's half -------------------------------------------------------------

    def _route_new(self) -> None:
        while self.seen < len(self.ctx.sent):
            s = self.ctx.sent[self.seen]
            self.seen += 1
            self._deliver(s)

    def _deliver(self, s: Sent) -> None:
        offset = self.offsets.get(s.topic, 0)
        self.offsets[s.topic] = offset + 1
        if s.topic in self.views:
            self.views[s.topic].apply(s.key.decode() if s.key else "", s.value)
            return
        if s.topic not in self.handlers:
            return  # an output nothing in the pipeline reads (audit, deliveries, postal, dlq …)
        self._queue(s.topic).put_nowait(read(s, offset))

    def _queue(self, topic: str) -> asyncio.Queue:
        if topic not in self.queues:
            self.queues[topic] = asyncio.Queue()
            self.tasks.append(asyncio.get_running_loop().create_task(self._consume(topic)))
        return self.queues[topic]

    async def _consume(self, topic: str) -> None:
        q = self.queues[topic]
        while True:
            e = await q.get()
            self.busy[topic] = self.busy.get(topic, 0) + 1
            try:
                with event_context(e):
                    await self.handlers[topic](e)
            finally:
                self.busy[topic] -= 1
                q.task_done()
                self._route_new()

    # --- what a test does ----------------------------------------------------------------

    async def send(self, topic: str, value: BaseModel | dict | bytes | None, key: str | None = None,
                   headers: dict[str, bytes] | None = None) -> None:
        """Produce a record onto `topic`, as an outside producer would."""
        if isinstance(value, BaseModel):
            key = key or getattr(value, "interactionId", None)
            raw = value.model_dump_json(exclude_none=True).encode()
        elif isinstance(value, dict):
            key = key or value.get("interactionId") or value.get("customerId")
            raw = json.dumps(value).encode()
        else:
            raw = value
        self.ctx.sent.append(Sent(topic, key.encode() if key else None, raw, headers))
        self._route_new()

    async def again(self, topic: str, offset: int) -> None:
        """Read the record at `offset` of `topic` again: a redelivery after a crash (its
        batch was never committed), with the same topic, partition and offset."""
        self._queue(topic).put_nowait(read([s for s in self.ctx.sent if s.topic == topic][offset], offset))

    def idle(self, ignore: tuple[str, ...] = ()) -> bool:
        self._route_new()
        return all(not n for t, n in self.busy.items() if t not in ignore) and all(
            q.empty() for t, q in self.queues.items() if t not in ignore)

    async def settle(self, timeout: float = 30.0, until: Callable[[], Any] | None = None,
                     ignore: tuple[str, ...] = ("callbill.acks",)) -> None:
        """Run until nothing is left to do (or `until()` holds); fail after `timeout`.

        Acknowledgement timers sleep until they are due (CALLBILL_ACK_AFTER_SECONDS), so by
        default they do not count; a test of acknowledgements passes `ignore=()`."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            for t in self.tasks:
                if t.done() and not t.cancelled() and t.exception():
                    raise t.exception()  # a handler let something escape: a worker would lose the message
            if until is not None and until():
                return
            quiet = quiet + 1 if until is None and self.idle(ignore) else 0
            if quiet >= 3:
                return
        raise TimeoutError(f"pipeline not settled after {timeout}s: busy={ {t: n for t, n in self.busy.items() if n} }, "
                           f"queued={ {t: q.qsize() for t, q in self.queues.items() if q.qsize()} }")

    async def sweep(self) -> None:
        await assemble.sweep_pending(self.ctx)
        self._route_new()

    async def reconcile(self) -> None:
        await assemble.reconcile(self.ctx)
        self._route_new()

    async def scan_bounces(self) -> None:
        await bounces.bounce_mailbox(self.ctx)
        self._route_new()

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def __aenter__(self) -> "Pipeline":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
