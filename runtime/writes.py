"""Know when this worker's writes (table changelogs included) have reached Kafka.

Faust sends table changelog records in the background and, before committing offsets,
flushes its send buffer only as long as the buffer keeps moving (it gives up after 0.1 s
without progress). A message could then be committed while the ledger write it made was
still unsent, and a `kill -9` at that moment loses the write but not the commit: seen in
tests/integration/test_billing.py as an invoice number issued twice. A stage that must not ack before
its writes are durable sets a sink here; every changelog and output send made in that
context lands in the sink, and the stage awaits them all before acknowledging.
"""
from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

import faust

PENDING_WRITES: ContextVar[list[asyncio.Future] | None] = ContextVar("callbill_pending_writes", default=None)


def track(fut: Any) -> Any:
    sink = PENDING_WRITES.get()
    if sink is not None:
        sink.append(fut)
    return fut


class TrackedTable(faust.Table):
    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        return track(super().send_changelog(*args, **kwargs))


async def durably(write: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a table write and wait until Kafka has it (acks=all) before going on: the
    delivery intent must be durable before the email leaves."""
    outer = PENDING_WRITES.get()
    sink: list[asyncio.Future] = []
    token = PENDING_WRITES.set(sink)
    try:
        result = write(*args, **kwargs)
    finally:
        PENDING_WRITES.reset(token)
    if outer is not None:
        outer.extend(sink)
    if sink:
        await asyncio.gather(*sink)
    return result
