"""Whole-topic views of compacted topics (the customer directory, the suppression list).

Some lookups use a key the pipeline is not partitioned by (an external contact id, an
email address), so every worker needs the whole topic. Faust's GlobalTable would do
this but can loop in recovery with several workers (faust-streaming #283); a view is a
plain consumer with no group that reads the topic from the start and keeps following.
"""
from __future__ import annotations

import asyncio
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel, ValidationError

from runtime.kafka import client_kwargs
from runtime.logs import get_logger
from runtime.topics import assign_from_start, topic_name

log = get_logger("views")


class CompactedView:
    name = "view"
    topic = ""  # the compacted topic it follows (base name)

    def __init__(self) -> None:
        self.caught_up = asyncio.Event()

    def apply(self, key: str, value: bytes | None) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    async def ready(self) -> None:
        """Wait until the whole topic has been read once: a lookup before then could
        wrongly find nothing (a known customer sent to review, a suppressed address mailed)."""
        if not self.caught_up.is_set():
            await self.caught_up.wait()


class ModelView(CompactedView):
    """A view whose values are records of one model: key -> the latest readable record."""

    model: type[BaseModel]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = self.model.model_validate_json(value)
        except ValidationError:  # a producer's mistake must not stop the view
            log.warning("unreadable record skipped", extra={"stage": self.name})


def follow_on(app: Any, view: CompactedView, bootstrap: str) -> None:
    """Register a service on the app that keeps `view` following its topic."""

    async def on_start(self: faust.Service) -> None:
        self.add_future(follow(self, view, view.topic, bootstrap))

    # a class of its own per view, named when made (mode keys a service's tasks by class name)
    app.service(type(f"{type(view).__name__}Follower", (faust.Service,), {"on_start": on_start}))


async def follow(service: faust.Service, view: CompactedView, topic_base: str, bootstrap: str) -> None:
    topic = topic_name(topic_base)
    while not service.should_stop:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    **client_kwargs())
        try:
            await consumer.start()
            tps = await assign_from_start(consumer, topic)
            ends = await consumer.end_offsets(tps) if tps else {}
            while not service.should_stop:
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    for m in msgs:
                        if m.key:
                            view.apply(m.key.decode(), m.value)
                if not view.caught_up.is_set() and await _reached(consumer, ends):
                    view.caught_up.set()
                    log.info("view loaded", extra={"stage": view.name, "count": len(view)})
        except Exception as e:  # noqa: BLE001 - keep following through broker trouble
            log.warning("view consumer restarting", extra={"stage": view.name, "reason": type(e).__name__})
            await asyncio.sleep(2)
        finally:
            await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, ends: dict) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
