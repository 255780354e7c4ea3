"""The customer directory, whole on every worker, from the compacted `crm.customers` topic.

Assembly looks customers up by Genesys external contact id, a key the pipeline is not
partitioned by, so every worker needs the whole directory. Faust's GlobalTable would do
this but can loop in recovery with several workers (faust-streaming #283); this view is
a plain consumer with no group that reads the topic from the start and keeps following.
"""
from __future__ import annotations

import asyncio

import faust
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from app.logs import get_logger
from app.main import app, settings, topics
from app.topics import assign_from_start, topic_name
from schemas.customers import Customer

log = get_logger("directory")


class Directory:
    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.by_contact: dict[str, str] = {}
        self.caught_up = asyncio.Event()

    def apply(self, key: str, value: bytes | None) -> None:
        old = self.customers.pop(key, None)
        if old:
            for cid in old.externalContactIds:
                if self.by_contact.get(cid) == key:
                    del self.by_contact[cid]
        if value is None:
            return
        try:
            customer = Customer.model_validate_json(value)
        except ValidationError:
            log.warning("unreadable directory record skipped", extra={"stage": "directory"})
            return
        self.customers[key] = customer
        for cid in customer.externalContactIds:
            self.by_contact[cid] = key

    async def ready(self) -> None:
        """Wait until the whole topic has been read once: a lookup before then could
        wrongly find nobody (and send a known customer to review)."""
        if not self.caught_up.is_set():
            await self.caught_up.wait()

    def customer_for_contacts(self, contact_ids: list[str]) -> str | None:
        for cid in contact_ids:
            if cid in self.by_contact:
                return self.by_contact[cid]
        return None


directory = Directory()


@app.service
class DirectoryFollower(faust.Service):
    async def on_start(self) -> None:
        self.add_future(self._follow())

    async def _follow(self) -> None:
        topic = topic_name("crm.customers")
        while not self.should_stop:
            consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
            try:
                await consumer.start()
                tps = await assign_from_start(consumer, topic)
                ends = await consumer.end_offsets(tps) if tps else {}
                while not self.should_stop:
                    batch = await consumer.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        for m in msgs:
                            if m.key:
                                directory.apply(m.key.decode(), m.value)
                    if not directory.caught_up.is_set() and await _reached(consumer, ends):
                        directory.caught_up.set()
                        log.info("directory loaded", extra={"stage": "directory", "count": len(directory.customers)})
            except Exception as e:  # noqa: BLE001 - keep following through broker trouble
                log.warning("directory consumer restarting", extra={"stage": "directory", "reason": type(e).__name__})
                await asyncio.sleep(2)
            finally:
                await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, ends: dict) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def publish_customer(customer: Customer) -> None:
    """Add a customer to the directory topic (and to this worker's view at once)."""
    fut = await topics["crm.customers"].send(key=customer.customerId.encode(), value=customer.model_dump_json().encode())
    await fut
    directory.apply(customer.customerId, customer.model_dump_json().encode())
