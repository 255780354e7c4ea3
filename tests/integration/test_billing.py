"""Billing through a real broker: rate card numbering, the reference ERP, outages, review, crashes."""
from __future__ import annotations

import asyncio
import json
import signal
import time
import warnings
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from devtools.reference_erp import ReferenceErp
from kafka_harness import create_topics, post_many, read_json, read_topic, webhook

pytestmark = pytest.mark.kafka

CUSTOMERS = [
    {"customerId": "CUST-US", "name": "Jane Doe", "email": "jane@example.com", "timezone": "America/Chicago",
     "currency": "USD", "postalAddress": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "country": "US"}},
    {"customerId": "CUST-JP", "name": "Kenji Sato", "email": "kenji@example.jp", "timezone": "Asia/Tokyo",
     "currency": "JPY", "postalAddress": {"line1": "1-1 Marunouchi", "city": "Chiyoda", "region": "Tokyo", "country": "JP"}},
    {"customerId": "CUST-KW", "name": "Fatima Ali", "email": "fatima@example.com", "timezone": "Asia/Kuwait",
     "currency": "KWD", "postalAddress": {"line1": "Block 1", "city": "Kuwait City", "country": "KW"}},
    {"customerId": "CUST-NOTZ", "name": "No Zone", "email": "nz@example.com", "currency": "USD",
     "postalAddress": {"line1": "2 Main St", "city": "Springfield", "region": "IL", "country": "US"}},
]


async def _produce(bootstrap: str, topic: str, records: list[tuple[str, dict | None]]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        futs = [await p.send(topic, key=k.encode(), value=json.dumps(v).encode() if v is not None else None)
                for k, v in records]
        await asyncio.gather(*futs)
    finally:
        await p.stop()


def produce(bootstrap: str, topic: str, records: list[tuple[str, dict | None]]) -> None:
    asyncio.run(_produce(bootstrap, topic, records))


def load_customers(bootstrap: str, w, customers=CUSTOMERS) -> None:
    create_topics(bootstrap, w.prefix, w.partitions)
    produce(bootstrap, w.topic("crm.customers"), [(c["customerId"], c) for c in customers])


def billable(iid: str, customer: str = "CUST-US", ended: str = "2026-11-24T22:15:00Z", seconds: int = 754,
             service: str = "Consultation Service - Level 2") -> dict:
    return {"interactionId": iid, "source": "webhook", "customerId": customer, "endedAt": ended,
            "durationSeconds": seconds, "serviceType": service, "wrapupCode": "Billable Service"}


def invoices(bootstrap: str, w, n: int, timeout: float = 60) -> list[dict]:
    return read_json(bootstrap, w.topic("callbill.invoices"), timeout=timeout,
                     until=lambda m: len({x["interactionId"] for x in m}) >= n)


def erp_env(erp: ReferenceErp, **extra) -> dict[str, str]:
    return {"CALLBILL_ERP_URL": erp.url, "CALLBILL_ERP_TOKEN": "erp-token", **extra}


@pytest.fixture
def erp():
    server = ReferenceErp(token="erp-token").start()
    yield server
    server.stop()


def test_webhook_to_invoice_with_local_numbers_dates_and_review(make_worker, kafka_bootstrap):
    w = make_worker(partitions=2)
    load_customers(kafka_bootstrap, w)
    w.start()
    bodies = [
        webhook("gen-us", "CUST-US", durationSeconds=754, serviceType="Consultation Service - Level 2"),
        webhook("gen-jp", "CUST-JP", timestamp="2026-12-31T23:30:00Z", durationSeconds=754,
                serviceType="Consultation Service - Level 2"),
        webhook("gen-kw", "CUST-KW", durationSeconds=754, serviceType="Technical Support"),
        webhook("gen-unknown", "CUST-NOBODY"),
        webhook("gen-notz", "CUST-NOTZ"),
    ]
    assert asyncio.run(post_many(w.url, bodies)) == [202] * 5
    got = {i["interactionId"]: i for i in invoices(kafka_bootstrap, w, 3)}
    assert set(got) == {"gen-us", "gen-jp", "gen-kw"}
    us, jp, kw = got["gen-us"], got["gen-jp"], got["gen-kw"]
    assert (us["total"], us["currency"], us["taxes"][0]["amount"]) == ("34.53", "USD", "2.03")
    assert (jp["total"], jp["currency"]) == ("5005", "JPY")
    assert jp["serviceDate"] == "2027-01-01" and jp["issueDate"] == "2027-01-01" and jp["dueDate"] == "2027-01-31"
    # the webhook timestamp is the start; the call ended 12:34 later, still 2026 in UTC
    assert jp["serviceAt"] == "2026-12-31T23:42:34Z" and jp["timezone"] == "Asia/Tokyo"
    assert (kw["total"], kw["lineItems"][0]["quantity"]) == ("9.072", 756)
    for inv in got.values():
        assert inv["issuer"] == "callbill"
        assert inv["invoiceNumber"].startswith(inv["series"] + "-") and inv["series"].startswith("INV")
    reviews = read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=30,
                        until=lambda m: sum(r["stage"] == "billing" for r in m) >= 2)
    reasons = {r["interactionId"]: r["reason"] for r in reviews if r["stage"] == "billing"}
    assert reasons == {"gen-unknown": "UNKNOWN_CUSTOMER", "gen-notz": "NO_TIMEZONE"}
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=30,
                      until=lambda m: sum(a["stage"] == "billing" for a in m) >= 5)
    assert Counter(a["outcome"] for a in audit if a["stage"] == "billing") == {"BILLED": 3, "REVIEW": 2}
    # nothing personal in the audit trail or the review reasons
    text = json.dumps(audit)
    assert "Jane" not in text and "jane@example.com" not in text


def test_numbers_are_gap_free_per_series_across_kill_9(make_worker, kafka_bootstrap):
    """A worker killed mid-stream: after the restart every interaction has one number and
    each partition's series runs 1..n with no gap and no reuse."""
    w = make_worker(partitions=3)
    load_customers(kafka_bootstrap, w)
    n = 3000
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(f"k-{i}", billable(f"k-{i}")) for i in range(n // 2)])
    w.start()
    read_topic(kafka_bootstrap, w.topic("callbill.invoices"), until=lambda m: len(m) >= 200, timeout=60)
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(f"k-{i}", billable(f"k-{i}")) for i in range(n // 2, n)])
    w.stop(signal.SIGKILL)
    committed = committed_offsets(kafka_bootstrap, w.app_id, w.topic("callbill.billable"), 3)
    w.start()
    # the worker also renders and mails these 3,000 invoices meanwhile: allow for a slow machine
    got = invoices(kafka_bootstrap, w, n, timeout=240)
    by_iid: dict[str, set[str]] = defaultdict(set)
    by_number: dict[str, set[str]] = defaultdict(set)
    for inv in got:
        by_iid[inv["interactionId"]].add(inv["invoiceNumber"])
        by_number[inv["invoiceNumber"]].add(inv["interactionId"])
    log = rebalances(w)
    if "behind its numbers" in log:  # the claims held (no reuse), but say so: the counter should not lag
        warnings.warn("a series counter came back behind its numbers after the kill:\n" + log, stacklevel=1)
    assert len(by_iid) == n
    two = {iid: sorted(numbers) for iid, numbers in by_iid.items() if len(numbers) > 1}
    assert not two, (f"interactions given two numbers: {dict(list(two.items())[:5])}\n{log}\n"
                     f"billable offsets committed at the kill: {committed}\n"
                     + changelog_story(kafka_bootstrap, w, [num for v in list(two.values())[:5] for num in v], list(two)[:5]))
    twice = {number: sorted(iids) for number, iids in by_number.items() if len(iids) > 1}
    assert not twice, (f"numbers used twice: {dict(list(twice.items())[:5])}\n{log}\n"
                       f"billable offsets committed at the kill: {committed}\n"
                       + changelog_story(kafka_bootstrap, w, list(twice)[:5], [i for v in list(twice.values())[:5] for i in v]))
    series: dict[str, list[int]] = defaultdict(list)
    for number in by_number:
        s, _, seq = number.rpartition("-")
        series[s].append(int(seq))
    assert len(series) == 3
    for s, seqs in series.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"series {s} has a gap"


def rebalances(w) -> str:
    """The worker log's group joins, revocations, restores and numbering guards: what to read
    when numbering goes wrong after a kill (docs/architecture.md)."""
    marks = ("Joined group", "Revoking", "Restoring state", "Reading Starts", "behind its numbers")
    lines = [ln[:400] for ln in w.log_path.read_text(errors="replace").splitlines() if any(m in ln for m in marks)]
    return "\n".join(lines[-60:])


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """The group's committed offsets on `topic` (partition -> next offset to read)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, int | None]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await c.start()
        try:
            return {p: await c.committed(TopicPartition(topic, p)) for p in range(partitions)}
        finally:
            await c.stop()

    return asyncio.run(read())


def records(bootstrap: str, topic: str) -> list[tuple[int, int, object, object]]:
    """Every record of `topic` as (partition, offset, key, value), JSON decoded where it is."""
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    def loads(raw: bytes | None):
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    async def read() -> list[tuple[int, int, object, object]]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            tps = await assign_from_start(c, topic, wait=10)
            ends = await c.end_offsets(tps)
            out, done = [], {tp for tp in tps if ends[tp] == 0}
            while len(done) < len(tps):
                for tp, msgs in (await c.getmany(timeout_ms=1000)).items():
                    out.extend((m.partition, m.offset, loads(m.key), loads(m.value)) for m in msgs)
                    if msgs and msgs[-1].offset + 1 >= ends[tp]:
                        done.add(tp)
            return out
        finally:
            await c.stop()

    return asyncio.run(read())


def changelog_story(bootstrap: str, w, numbers: list[str], iids: list[str]) -> str:
    """What the ledger's changelog holds of numbers given twice: their claims, the entries of
    the interactions involved and every step back of their series' counters, with partitions
    and offsets, beside the interactions' own offsets on callbill.billable. Tells a write that
    never reached Kafka from one that did and was not restored (docs/architecture.md)."""
    wanted = {f"#number:{n}" for n in numbers} | set(iids)
    series = {"#series:" + n.rpartition("-")[0] for n in numbers}
    lines = [f"billable: {[(k, p, o) for p, o, k, _ in records(bootstrap, w.topic('callbill.billable')) if k in iids]}"]
    last: dict[object, int] = {}
    for p, o, key, value in records(bootstrap, f"{w.app_id}-ledger-changelog"):
        if key in series and isinstance(value, dict):
            if int(value["seq"]) < last.get(key, 0):
                lines.append(f"p{p}@{o} {key} {value['seq']} <- back from {last[key]}")
            last[key] = max(last.get(key, 0), int(value["seq"]))
        elif key in wanted:
            v = value if isinstance(value, dict) else {}
            lines.append(f"p{p}@{o} {key} {v.get('id') or (v.get('state'), v.get('invoiceNumber'), v.get('billingSource'))}")
    return "changelog:\n" + "\n".join(lines[:300])


def metric(w, name: str, **labels) -> float:
    """One sample from the worker's /metrics (0 when the labelled series does not exist yet)."""
    import httpx

    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    text = httpx.get(w.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} " if want else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_erp_outage_of_30s_in_the_middle_of_500(make_worker, kafka_bootstrap, erp):
    erp.call(erp.control, latencyMs=20)
    w = make_worker(extra_env=erp_env(erp, CALLBILL_RETRY_BASE_DELAY="1", CALLBILL_RETRY_MAX_DELAY="6",
                                      CALLBILL_ERP_ATTEMPTS="3"))
    load_customers(kafka_bootstrap, w)
    w.start()
    ids = [f"o-{i}" for i in range(500)]
    customers = ["CUST-US", "CUST-JP", "CUST-KW"]
    produce(kafka_bootstrap, w.topic("callbill.billable"),
            [(i, billable(i, customers[n % 3])) for n, i in enumerate(ids[:200])])
    read_topic(kafka_bootstrap, w.topic("callbill.invoices"), until=lambda m: len(m) >= 100, timeout=60)
    erp.call(erp.control, outageSeconds=30)
    produce(kafka_bootstrap, w.topic("callbill.billable"),
            [(i, billable(i, customers[n % 3])) for n, i in enumerate(ids[200:])])
    # the operator sees the outage: parked items waiting, ERP errors counted
    depths = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not (depths and max(depths) > 0):
        depths.append(metric(w, "callbill_retry_depth"))
        time.sleep(0.5)
    assert max(depths) > 0, depths
    got = invoices(kafka_bootstrap, w, 500, timeout=150)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and metric(w, "callbill_retry_depth") != 0:
        time.sleep(0.5)
    assert metric(w, "callbill_retry_depth") == 0  # every parked item went back
    assert metric(w, "callbill_external_errors_total", kind="http_503", system="erp") > 0
    stats = erp.call(erp.stats)
    assert stats["statuses"].get("503", 0) > 0, "the outage was not hit"
    assert stats["creates"] == {i: 1 for i in ids}, "not exactly one ERP invoice per interaction"
    numbers = defaultdict(set)
    for inv in got:
        numbers[inv["interactionId"]].add(inv["invoiceNumber"])
        assert inv["issuer"] == "erp" and inv["invoiceNumber"].startswith("ERP-")
    assert set(numbers) == set(ids) and all(len(v) == 1 for v in numbers.values())
    parked = read_json(kafka_bootstrap, w.topic("callbill.retry"), timeout=5)
    assert parked, "nothing was parked during the outage"
    assert not read_json(kafka_bootstrap, w.topic("callbill.dlq"), timeout=2)


def test_one_interaction_in_backoff_does_not_delay_100_others(make_worker, kafka_bootstrap, erp):
    # inline backoff that would take ~minutes if it held the partition
    erp.call(erp.control, latencyMs=20, failKeys=["stuck"])
    w = make_worker(partitions=1, extra_env=erp_env(
        erp, CALLBILL_ERP_ATTEMPTS="20", CALLBILL_ERP_BACKOFF_BASE="2", CALLBILL_ERP_BACKOFF_CAP="20",
        CALLBILL_RETRY_BASE_DELAY="1", CALLBILL_RETRY_MAX_DELAY="2"))
    load_customers(kafka_bootstrap, w)
    w.start()
    others = [f"n-{i}" for i in range(100)]
    produce(kafka_bootstrap, w.topic("callbill.billable"),
            [("stuck", billable("stuck"))] + [(i, billable(i)) for i in others])
    sent = time.time()
    msgs = read_topic(kafka_bootstrap, w.topic("callbill.invoices"), timeout=60,
                      until=lambda m: len({k for k, _ in m} & set(others)) >= 100)
    assert {k for k, _ in msgs} >= set(others)
    # the invoices' own broker timestamps: how long after the produce each was issued
    latest = max(json.loads(v)["issuedAt"] for k, v in msgs if k in set(others))
    from datetime import datetime

    lag = datetime.fromisoformat(latest).timestamp() - sent
    assert lag < 3.0, f"the others waited {lag:.1f}s behind the stuck interaction"
    assert "stuck" not in {k for k, _ in msgs}
    parked = read_json(kafka_bootstrap, w.topic("callbill.retry"), timeout=10, until=lambda m: len(m) >= 1)
    assert {p["interactionId"] for p in parked} == {"stuck"}
    # the ERP recovers: the parked interaction is invoiced once
    erp.call(erp.control, failKeys=[])
    got = invoices(kafka_bootstrap, w, 101, timeout=60)
    assert sum(1 for i in got if i["interactionId"] == "stuck") >= 1
    assert erp.call(lambda: erp.creates["stuck"]) == 1


def test_worker_killed_during_an_erp_batch_issues_no_duplicate(make_worker, kafka_bootstrap, erp):
    erp.call(erp.control, latencyMs=400)
    w = make_worker(extra_env=erp_env(erp, CALLBILL_BILLING_BATCH="50"))
    load_customers(kafka_bootstrap, w)
    w.start()
    ids = [f"x-{i}" for i in range(300)]
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(i, billable(i)) for i in ids])
    read_topic(kafka_bootstrap, w.topic("callbill.invoices"), until=lambda m: len(m) >= 20, timeout=60)
    w.stop(signal.SIGKILL)  # batches in flight at the ERP
    in_flight = erp.call(lambda: sum(erp.requests.values()))
    w.start()
    got = invoices(kafka_bootstrap, w, 300, timeout=120)
    stats = erp.call(erp.stats)
    assert stats["creates"] == {i: 1 for i in ids}
    numbers = defaultdict(set)
    for inv in got:
        numbers[inv["interactionId"]].add(inv["invoiceNumber"])
    assert all(len(v) == 1 for v in numbers.values())
    assert stats["requests"] > in_flight  # the restarted worker repeated some requests: idempotency held
    assert all(Decimal(i["total"]) == Decimal("34.53") for i in got)
