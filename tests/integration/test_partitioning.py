"""Records from a producer with another partitioner (issue 17, point 5), on a real broker.

confluent-kafka (librdkafka) partitions by CRC32 by default ("consistent_random"), the
bridge and aiokafka by murmur2, as the Java client does. Each test picks keys the two
place on different partitions, produces through both, and checks that the worker moves
the stray record to its key's partition before any table sees it.

The workers use the production store (RocksDB), one shard per partition, as two workers
splitting the partitions would: the memory store's one dict would hide a stray record.
"""
from __future__ import annotations

import asyncio
import json
import uuid
import zlib

import pytest
from aiokafka import AIOKafkaProducer

from agents.routing import home_partition
from app.web.bridge import record_of
from fake_genesys import FakeGenesys, Leg, Scenario
from kafka_harness import create_topics, read_json, unique
from schemas.genesys import EventBridgeEvent
from test_billing import billable, invoices, load_customers

confluent_kafka = pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.kafka
PARTITIONS = 4
ROCKSDB = {"CALLBILL_STORE": "rocksdb://"}


def apart(key: str) -> bool:
    """murmur2 and CRC32 put `key` on different partitions."""
    return home_partition(key.encode(), PARTITIONS) != zlib.crc32(key.encode()) % PARTITIONS


def through_murmur2(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    async def go() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for key, value in records:
                await p.send_and_wait(topic, value, key=key.encode())
        finally:
            await p.stop()
    asyncio.run(go())


def through_librdkafka(bootstrap: str, topic: str, records: list[tuple[str, bytes]], **conf) -> list[int]:
    """Produce with librdkafka's default partitioner (or `conf`'s); returns the partitions it chose."""
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", **conf})
    placed: dict[bytes, int] = {}  # reports come per partition, not in produce order

    def report(err, msg) -> None:
        assert err is None, err
        placed[msg.key()] = msg.partition()
    for key, value in records:
        p.produce(topic, value=value, key=key.encode(), on_delivery=report)
    assert p.flush(30) == 0
    return [placed[key.encode()] for key, _ in records]


def audit_of(bootstrap: str, w, until, timeout: float = 90) -> list[dict]:
    return read_json(bootstrap, w.topic("callbill.audit"), until=until, timeout=timeout)


def test_the_same_interaction_through_two_partitioners_is_billed_once(make_worker, kafka_bootstrap):
    w = make_worker(partitions=PARTITIONS, extra_env=ROCKSDB)
    load_customers(kafka_bootstrap, w)
    w.start()
    iid = next(i for i in (f"gen-{uuid.uuid4().hex[:12]}" for _ in range(100)) if apart(i))
    value = json.dumps(billable(iid)).encode()
    through_murmur2(kafka_bootstrap, w.topic("callbill.interactions"), [(iid, value)])
    placed = through_librdkafka(kafka_bootstrap, w.topic("callbill.interactions"), [(iid, value)])
    assert placed != [home_partition(iid.encode(), PARTITIONS)]  # the stray copy really is astray

    audit = audit_of(kafka_bootstrap, w, lambda m: sum(a["stage"] == "intake" and a["outcome"] != "REPARTITIONED"
                                                        for a in m) >= 2 and any(a["outcome"] == "BILLED" for a in m))
    intake = sorted(a["outcome"] for a in audit if a["stage"] == "intake")
    assert intake == ["DUPLICATE", "FORWARDED", "REPARTITIONED"]
    assert [a["reason"] for a in audit if a["outcome"] == "REPARTITIONED"] == [
        f"partition {placed[0]} -> {home_partition(iid.encode(), PARTITIONS)}"]
    out = invoices(kafka_bootstrap, w, 1)
    assert [i["interactionId"] for i in out] == [iid]
    assert [a["outcome"] for a in audit if a["stage"] == "billing"] == ["BILLED"]


def test_a_conversations_halves_through_two_partitioners_are_assembled(make_worker, kafka_bootstrap):
    billable_code = str(uuid.uuid4())
    with FakeGenesys() as fake:
        fake.wrapup_codes[billable_code] = "Billable Service"
        contact = str(uuid.uuid4())
        fake.contacts[contact] = {"id": contact, "firstName": "Jane", "lastName": "Doe", "workEmail": "jane@example.com",
                                  "address": {"address1": "1 Main St", "city": "Indianapolis", "state": "IN",
                                              "postalCode": "46204", "countryCode": "US"}}
        sc = next(s for s in (Scenario(external_contact_id=contact, agents=[Leg("u1", "q1", 300, 45.4, billable_code)])
                              for _ in range(100)) if apart(s.conversation_id))
        w = make_worker(partitions=PARTITIONS, extra_env={
            "CALLBILL_GENESYS_CLIENT_ID": fake.client_id, "CALLBILL_GENESYS_CLIENT_SECRET": fake.client_secret,
            "CALLBILL_GENESYS_API_URL": fake.api_url, "CALLBILL_GENESYS_LOGIN_URL": fake.login_url,
            "CALLBILL_ASSEMBLY_WAIT": "600", "CALLBILL_RECONCILE_HOURS": "0", **ROCKSDB})
        w.start()
        records = []
        for body in sc.eventbridge_events():  # user.end, acw, customer.end
            key, record = record_of("eventbridge", EventBridgeEvent.model_validate(body))
            records.append((key, record.model_dump_json().encode()))
        topic = w.topic("genesys.events")
        through_murmur2(kafka_bootstrap, topic, records[:2])  # the agent's half
        placed = through_librdkafka(kafka_bootstrap, topic, records[2:])  # the customer's half
        assert placed != [home_partition(sc.conversation_id.encode(), PARTITIONS)]

        audit = audit_of(kafka_bootstrap, w, lambda m: any(a["outcome"] == "ASSEMBLED" for a in m))
        assembled = [a for a in audit if a["stage"] == "assemble"]
        assert [a["outcome"] for a in assembled].count("REPARTITIONED") == 1
        assert [(a["interactionId"], a["reason"]) for a in assembled if a["outcome"] == "ASSEMBLED"] == [
            (sc.conversation_id, "eventbridge")]
        out = read_json(kafka_bootstrap, w.topic("callbill.interactions"), until=lambda m: len(m) >= 1, timeout=30)
        assert [i["interactionId"] for i in out] == [sc.conversation_id]


def test_the_documented_librdkafka_setting_partitions_as_the_bridge_does(kafka_bootstrap):
    """docs/topics.md: `partitioner=murmur2_random` makes librdkafka (and kcat) agree with the
    bridge, so nothing needs moving."""
    prefix = unique("part") + "."
    create_topics(kafka_bootstrap, prefix, PARTITIONS)
    keys = [f"gen-{uuid.uuid4().hex[:12]}" for _ in range(40)]
    placed = through_librdkafka(kafka_bootstrap, prefix + "callbill.interactions", [(k, b"{}") for k in keys],
                                partitioner="murmur2_random")
    assert placed == [home_partition(k.encode(), PARTITIONS) for k in keys]
