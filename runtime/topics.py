"""The one place that declares every topic: name, partitions, retention, compaction.

Everything after the bridge is keyed by interactionId, so an interaction stays on one
partition and its ledger entry is local. Pipeline topics share one partition count so
tables stay co-partitioned with the streams that update them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust

from runtime.settings import get_settings
from schemas.credits import CreditOutcome, CreditRequest
from schemas.customers import Customer
from schemas.deliveries import AckDue, Bounce, Delivery, PostalJob, Suppression
from schemas.documents import DocumentStored
from schemas.events import (
    AuditEvent, DeadLetter, InteractionCompleted, OperatorSession, RetryItem, ReviewAction, ReviewItem, ReviewRecord,
)
from schemas.genesys import ProducedGenesysEvent
from schemas.invoices import Invoice

DAY = timedelta(days=1)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    doc: str
    value: Any  # the model of its values (published by `callbill schemas`)
    retention: timedelta | None = None  # None: the broker default
    compacted: bool = False
    partitions: int | None = None  # None: CALLBILL_TOPIC_PARTITIONS
    key: str = "interactionId"  # what its records are keyed by
    inbound: bool = False  # producers other than callbill may write it


SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("genesys.events", "raw Genesys events from the bridge, keyed by conversation id",
              ProducedGenesysEvent, 14 * DAY, inbound=True,
              key="the conversation id: the webhook's interactionId, the EventBridge topicName's id"),
    TopicSpec("callbill.interactions", "one canonical InteractionCompleted per interaction", InteractionCompleted,
              30 * DAY, inbound=True),
    TopicSpec("callbill.billable", "unique billable interactions with a known customer", InteractionCompleted,
              30 * DAY),
    TopicSpec("callbill.invoices", "issued invoices and credit notes", Invoice, 90 * DAY),
    TopicSpec("callbill.credit-requests", "operators' credit note requests (key: the invoice's interactionId)",
              CreditRequest, 365 * DAY),
    TopicSpec("callbill.credit-notes", "what became of each credit request: issued, refused, waiting, in review",
              CreditOutcome, 365 * DAY),
    TopicSpec("callbill.documents", "stored invoice PDFs and their links", DocumentStored, 90 * DAY),
    TopicSpec("callbill.deliveries", "delivery outcomes", Delivery, 90 * DAY),
    TopicSpec("callbill.review", "items that need a person, with the reason", ReviewItem, 90 * DAY),
    TopicSpec("callbill.reviews", "the review queue: one record per interaction (key interactionId)", ReviewRecord,
              compacted=True),
    TopicSpec("callbill.review-actions", "operators' resubmit and dismiss decisions", ReviewAction, 365 * DAY),
    TopicSpec("callbill.audit", "every decision of every stage (no personal data)", AuditEvent, 365 * DAY),
    TopicSpec("callbill.postal", "print jobs for the postal vendor", PostalJob, 30 * DAY),
    TopicSpec("callbill.retry", "work parked after its retry budget ran out", RetryItem, 14 * DAY),
    TopicSpec("callbill.dlq", "messages that could not be parsed, with the reason and raw bytes", DeadLetter,
              90 * DAY, key="the failed message's raw key"),
    TopicSpec("callbill.bounces", "bounces and complaints (SMTP replies, DSNs, provider notifications)", Bounce,
              90 * DAY, inbound=True, key="interactionId, else the address"),
    TopicSpec("callbill.suppressions", "suppressed addresses (key address, null value lifts)", Suppression,
              compacted=True, key="the address, lower case"),
    TopicSpec("callbill.sessions", "operators' review-page sessions (key: SHA-256 of the session id; null: signed out)",
              OperatorSession, compacted=True, key="SHA-256 of the session id (hex)"),
    TopicSpec("callbill.acks", "acknowledgement timers: due 'Processing Received' checks", AckDue, 2 * DAY),
    TopicSpec("crm.customers", "customer directory (key customerId, null value deletes)", Customer, compacted=True,
              inbound=True, key="customerId"),
)


def topic_config(spec: TopicSpec) -> dict[str, str]:
    conf = {"cleanup.policy": "compact" if spec.compacted else "delete"}
    if spec.retention is not None:
        conf["retention.ms"] = str(int(spec.retention.total_seconds() * 1000))
    return conf


async def ensure_topics(bootstrap: str | None = None) -> list[str]:
    """Create the missing topics (before any consumer subscribes); returns those created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    s = get_settings()
    from runtime.kafka import client_kwargs

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap or s.kafka_bootstrap, **client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(topic_name(spec.name), spec.partitions or s.topic_partitions, s.topic_replication,
                     topic_configs=topic_config(spec))
            for spec in SPECS if topic_name(spec.name) not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:  # another worker won the race
                pass
        return [t.name for t in new]
    finally:
        await admin.close()


async def assign_from_start(consumer, topic: str, wait: float = 0.0) -> list:
    """Give a group-less consumer every partition of `topic`, from the first offset.

    Waits up to `wait` seconds for the topic to exist; returns the partitions ([] if none).
    Used by readers that need a whole topic: the directory view, the demo, tests, benches.
    """
    import asyncio
    import time

    from aiokafka import TopicPartition

    deadline = time.monotonic() + wait
    while True:
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or set()
        if parts or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if tps:
        await consumer.seek_to_beginning(*tps)
    return tps


def topic_name(base: str) -> str:
    return get_settings().topic_prefix + base


def declare(app: faust.App) -> dict[str, faust.TopicT]:
    """Faust topic objects for every spec; `internal=True` makes the worker create them."""
    s = get_settings()
    topics = {}
    for spec in SPECS:
        topics[spec.name] = app.topic(
            topic_name(spec.name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions or s.topic_partitions,
            replicas=s.topic_replication,
            retention=spec.retention,
            compacting=spec.compacted or None,
            deleting=None if spec.compacted else True,
            internal=True,
        )
    return topics
