"""The intake on a real broker: exactly the unique billable interactions come out, each once."""
import asyncio
import json
import random
import re
import signal
import uuid
from collections import Counter

import pytest

from kafka_harness import post_many, produce_raw, read_json, read_topic, webhook


def intake_decisions(bootstrap, worker, n, timeout=120):
    """Wait until the intake has decided `n` interactions; return the audit events."""
    audit = read_json(bootstrap, worker.topic("callbill.audit"), timeout=timeout,
                      until=lambda msgs: sum(m["stage"] == "intake" for m in msgs) >= n)
    return [a for a in audit if a["stage"] == "intake"]


def test_1000_events_with_30_percent_duplicates(worker, kafka_bootstrap):
    rnd = random.Random(7)
    unique = [f"gen-{uuid.uuid4().hex[:12]}" for _ in range(700)]
    not_billable = set(unique[:50])
    no_customer = set(unique[50:80])
    bodies = [webhook(i, customer=None if i in no_customer else "CUST-1",
                      code="Information Only" if i in not_billable else "Billable Service") for i in unique]
    # 300 duplicates: a few interactions repeated many times, the rest once or twice
    hot = unique[100:110]
    dups = [rnd.choice(hot) for _ in range(150)] + [rnd.choice(unique) for _ in range(150)]
    by_id = {b["interactionId"]: b for b in bodies}
    events = bodies + [dict(by_id[i]) for i in dups]
    rnd.shuffle(events)
    statuses = asyncio.run(post_many(worker.url, events, concurrency=25))
    assert Counter(statuses) == {202: 1000}

    decisions = intake_decisions(kafka_bootstrap, worker, 1000)
    assert len(decisions) == 1000
    expected = set(unique) - not_billable - no_customer
    billable = read_json(kafka_bootstrap, worker.topic("callbill.billable"),
                         until=lambda msgs: len(msgs) >= len(expected), timeout=30)
    counts = Counter(m["interactionId"] for m in billable)
    assert set(counts) == expected
    assert max(counts.values()) == 1

    outcomes = Counter(d["outcome"] for d in decisions)
    not_billable_events = sum(1 for e in events if e["interactionId"] in not_billable)
    assert outcomes["FORWARDED"] == len(expected)
    assert outcomes["NOT_BILLABLE"] == not_billable_events
    assert outcomes["REVIEW"] == len(no_customer)
    assert outcomes["DUPLICATE"] == 1000 - len(expected) - not_billable_events - len(no_customer)
    review = read_json(kafka_bootstrap, worker.topic("callbill.review"),
                       until=lambda msgs: sum(m["stage"] == "intake" for m in msgs) >= len(no_customer), timeout=30)
    review = [r for r in review if r["stage"] == "intake"]  # billing reviews CUST-1: not in this directory
    assert {r["interactionId"] for r in review} == no_customer
    assert all(r["reason"] == "MISSING_CUSTOMER" for r in review)
    # the ledger counts duplicates: the audit carries the running count
    hot_counts = Counter(i for i in dups if i in hot)
    top = max(hot_counts, key=hot_counts.get)
    last = [d for d in decisions if d["interactionId"] == top and d["outcome"] == "DUPLICATE"]
    assert max(d["count"] for d in last) == hot_counts[top]


def _produce_stream(bootstrap, topic, ids, rate=150):
    """What the bridge writes, straight onto genesys.events at a steady rate, in a thread."""
    import json
    import threading
    import time

    from aiokafka import AIOKafkaProducer

    async def go():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for i in ids:
                rec = {"kind": "webhook", "receivedAt": "2026-11-25T00:00:00Z", "payload": webhook(i)}
                await p.send_and_wait(topic, json.dumps(rec).encode(), key=i.encode())
                await asyncio.sleep(1 / rate)
        finally:
            await p.stop()
    t = threading.Thread(target=lambda: asyncio.run(go()))
    t.start()
    return t


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_worker_restarted_mid_stream_loses_nothing(make_worker, kafka_bootstrap, sig):
    w = make_worker().start()
    ids = [f"gen-{uuid.uuid4().hex[:12]}" for _ in range(600)]
    feeder = _produce_stream(kafka_bootstrap, w.topic("genesys.events"), ids)
    intake_decisions(kafka_bootstrap, w, 150)
    w.stop(sig)
    w2 = make_worker(app_id=w.app_id).start()
    feeder.join(60)
    # duplicates after the restart, through the bridge
    assert set(asyncio.run(post_many(w2.url, [webhook(i) for i in ids[:200]]))) == {202}
    dup_ids = set(ids[:200])

    def settled(msgs):
        dups = {m["interactionId"] for m in msgs if m["stage"] == "intake" and m["outcome"] == "DUPLICATE"}
        return dup_ids <= dups and sum(m["stage"] == "intake" for m in msgs) >= 800
    decisions = [a for a in read_json(kafka_bootstrap, w2.topic("callbill.audit"), until=settled, timeout=120)
                 if a["stage"] == "intake"]
    billable = read_json(kafka_bootstrap, w2.topic("callbill.billable"),
                         until=lambda msgs: len({m["interactionId"] for m in msgs}) >= 600, timeout=60)
    counts = Counter(m["interactionId"] for m in billable)
    lost = set(ids) - set(counts)
    if lost:  # say where they stopped
        ev = {json.loads(v)["payload"].get("interactionId") for _, v in read_topic(kafka_bootstrap, w2.topic("genesys.events"), timeout=5)}
        it = {k for k, _ in read_topic(kafka_bootstrap, w2.topic("callbill.interactions"), timeout=5)}
        au = [a for a in read_json(kafka_bootstrap, w2.topic("callbill.audit"), timeout=5) if a["interactionId"] in lost]
        pytest.fail(f"lost {lost}: on genesys.events {lost & ev}, on interactions {lost & it}, audit {au}")
    assert set(counts) == set(ids)  # nothing lost
    story: dict[str, list[str]] = {}
    for d in decisions:
        story.setdefault(d["interactionId"], []).append(d["outcome"])
    # every post-restart duplicate is recognised from the recovered ledger
    not_rejected = {i: story.get(i) for i in ids[:200] if story.get(i, [""])[-1] != "DUPLICATE"}
    assert not not_rejected
    # a duplicate is never forwarded: each story is forwards, then duplicates
    odd = {i: story[i] for i in ids if not re.fullmatch(r"(FORWARDED,)+(DUPLICATE,)*", ",".join(story[i]) + ",")}
    assert not odd
    # An interaction in flight at the stop (processed, offset not yet committed) can be
    # forwarded twice: the ledger recognises the redelivered message by its offset, and
    # the later stages are idempotent on interactionId. A *duplicate* event is never
    # forwarded (the story check above).


def test_poison_messages_go_to_the_dlq_and_the_agent_carries_on(worker, kafka_bootstrap):
    produce_raw(kafka_bootstrap, worker.topic("genesys.events"), b"k1", b"\xff\x00 not json")
    produce_raw(kafka_bootstrap, worker.topic("genesys.events"), b"k2", b'{"kind": "webhook", "payload": {}}')
    produce_raw(kafka_bootstrap, worker.topic("callbill.interactions"), b"k3", b'{"interactionId": "x"}')
    produce_raw(kafka_bootstrap, worker.topic("callbill.interactions"), b"k4", None)
    good = f"gen-{uuid.uuid4().hex[:12]}"
    assert worker.post(webhook(good)).status_code == 202

    billable = read_json(kafka_bootstrap, worker.topic("callbill.billable"),
                         until=lambda msgs: any(m["interactionId"] == good for m in msgs))
    assert [m["interactionId"] for m in billable] == [good]
    dlq = read_json(kafka_bootstrap, worker.topic("callbill.dlq"), until=lambda msgs: len(msgs) >= 4)
    by_key = {d["key"]: d for d in dlq}
    import base64
    keys = {base64.b64decode(k).decode(): v for k, v in by_key.items()}
    assert set(keys) == {"k1", "k2", "k3", "k4"}
    assert keys["k1"]["stage"] == "assemble" and "GenesysEvent" in keys["k1"]["reason"]
    assert base64.b64decode(keys["k1"]["value"]) == b"\xff\x00 not json"
    assert "receivedAt" in keys["k2"]["reason"]
    assert keys["k3"]["stage"] == "intake" and "endedAt" in keys["k3"]["reason"]
    assert keys["k4"]["reason"] == "value is empty"
    assert worker.proc.poll() is None
    # the dead-letter warnings carry the message's interaction id for correlation
    lines = [json.loads(x) for x in worker.log_path.read_text().splitlines() if x.startswith("{")]
    dead = {d.get("interactionId") for d in lines if d.get("message") == "dead letter"}
    assert {"k1", "k2", "k3", "k4"} <= dead, dead
