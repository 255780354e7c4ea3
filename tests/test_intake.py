"""The intake on a real broker: exactly the unique billable interactions come out, each once."""
import asyncio
import random
import uuid
from collections import Counter

from kafka_harness import post_many, produce_raw, read_json, webhook


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
                       until=lambda msgs: len(msgs) >= len(no_customer), timeout=30)
    assert {r["interactionId"] for r in review} == no_customer
    assert all(r["reason"] == "MISSING_CUSTOMER" for r in review)
    # the ledger counts duplicates: the audit carries the running count
    hot_counts = Counter(i for i in dups if i in hot)
    top = max(hot_counts, key=hot_counts.get)
    last = [d for d in decisions if d["interactionId"] == top and d["outcome"] == "DUPLICATE"]
    assert max(d["count"] for d in last) == hot_counts[top]


def test_restarted_worker_recovers_its_ledger_and_still_rejects_duplicates(make_worker, kafka_bootstrap):
    w = make_worker().start()
    first = [f"gen-{uuid.uuid4().hex[:12]}" for _ in range(200)]
    assert set(asyncio.run(post_many(w.url, [webhook(i) for i in first]))) == {202}
    intake_decisions(kafka_bootstrap, w, 200)
    w.stop()

    w2 = make_worker(app_id=w.app_id).start()  # same app id: same group, same changelog
    second = [f"gen-{uuid.uuid4().hex[:12]}" for _ in range(100)]
    again = first[:100]
    assert set(asyncio.run(post_many(w2.url, [webhook(i) for i in again + second]))) == {202}
    decisions = intake_decisions(kafka_bootstrap, w2, 400)
    story: dict[str, list[str]] = {}
    for d in decisions:  # one key stays on one partition, so its decisions are in order
        story.setdefault(d["interactionId"], []).append(d["outcome"])
    assert all(story[i] == ["FORWARDED", "DUPLICATE"] for i in again)
    assert all(story[i] == ["FORWARDED"] for i in first[100:] + second)
    billable = read_json(kafka_bootstrap, w2.topic("callbill.billable"),
                         until=lambda msgs: len(msgs) >= 300, timeout=30)
    counts = Counter(m["interactionId"] for m in billable)
    assert set(counts) == set(first) | set(second) and max(counts.values()) == 1


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
