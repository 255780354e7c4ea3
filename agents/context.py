"""What a stage handler works with, handed in by the composition root (app/factory.py).

A handler reads its input, decides with the domain rules and writes through this
context: its settings, the topics it may write, the tables and whole-topic views, the
outside systems (ERP, Genesys, object store, mail) and a clock. Nothing in agents/
imports the app; a test builds a context of its own (in-memory tables, a recording
topic sink) and calls a handler directly.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from runtime.logs import get_logger
from runtime.metrics import STAGE_OUTCOMES, TOPIC_OUT
from runtime.writes import track
from schemas.events import AuditEvent, ReviewItem, utcnow
from schemas.invoices import kafka_key
from tables.directory import Directory
from tables.ledger import Ledger
from tables.pending import PendingTable
from tables.reviews import ReviewQueue, ReviewTable
from tables.suppressions import Suppressions

if TYPE_CHECKING:
    from app.bootstrap import Services

log = get_logger("agents")


class Sender(Protocol):
    """A topic as the stages use it (faust's Topic; a recorder in tests)."""

    async def send(self, *, key: bytes | None = None, value: bytes | None = None,
                   headers: Any = None, partition: int | None = None) -> asyncio.Future: ...


@dataclass
class Context:
    settings: Any  # runtime.settings.Settings
    topics: Mapping[str, Sender]
    ledger: Ledger
    pending: PendingTable
    reviews: ReviewTable
    directory: Directory
    suppressions: Suppressions
    review_queue: ReviewQueue
    services: "Services"
    clock: Callable[[], datetime] = utcnow
    stopping: Callable[[], bool] = field(default=lambda: False)
    # a topic's partition count as the consumer sees it (None: unknown, no placement check)
    partitions: Callable[[str], int | None] = field(default=lambda topic: None)

    async def publish(self, topic: str, key: str, value: BaseModel, wait: bool = True,
                      headers: dict[str, bytes] | None = None, exact_key: bool = False) -> asyncio.Future:
        """Send; with `wait`, until the broker acknowledged it (acks=all). `key` may be a
        record id (a credit note's `<interactionId>~<number>`): the Kafka key is always the
        interaction id, so every record of an invoice and its credit notes shares one partition;
        `exact_key` keeps the record id, for a compacted whole-topic view with a record per id.

        Not waiting is still safe for the message being processed: Faust flushes the
        producer before it commits the source offset, so a crash before the flush means the
        source message is redelivered. Wait where a later step depends on the write having
        landed.
        """
        fut = await self.topics[topic].send(key=(key if exact_key else kafka_key(key)).encode(), value=value.model_dump_json(exclude_none=True).encode(),
                                            headers=headers)
        TOPIC_OUT.labels(topic).inc()
        if wait:
            await fut
        return track(fut)

    async def send_raw(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None
                       ) -> Any:
        """Send bytes as they are (retry, resubmit, reminders) and wait for the broker's ack."""
        fut = await self.topics[topic].send(key=key, value=value, headers=headers)
        TOPIC_OUT.labels(topic).inc()
        return await fut

    async def resend(self, topic: str, key: bytes, value: bytes | None, headers: Any, partition: int) -> None:
        """Send a copy to one partition; awaited with the batch, before its input is committed."""
        fut = await self.topics[topic].send(key=key, value=value, headers=headers, partition=partition)
        TOPIC_OUT.labels(topic).inc()
        track(fut)

    async def audit(self, stage: str, interaction_id: str, outcome: str, reason: str | None = None, **extra) -> None:
        """Every decision goes to callbill.audit (the record); the log says only what is unusual,
        so a decision is logged at DEBUG (CALLBILL_LOG_LEVEL=debug), never once per event at INFO."""
        STAGE_OUTCOMES.labels(stage, outcome).inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("decision", extra={"interactionId": interaction_id, "stage": stage, "outcome": outcome,
                                         "reason": reason})
        await self.publish("callbill.audit", interaction_id,
                           AuditEvent(interactionId=interaction_id, stage=stage, outcome=outcome, reason=reason,
                                      **extra), wait=False)

    async def review(self, stage: str, interaction_id: str, reason: str, interaction: BaseModel | None = None,
                     detail: str | None = None) -> None:
        await self.publish("callbill.review", interaction_id, ReviewItem(
            interactionId=interaction_id, stage=stage, reason=reason, detail=detail,
            interaction=interaction.model_dump(mode="json") if interaction else None,
        ))
