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
    w.start()
    # the worker also renders and mails these 3,000 invoices meanwhile: allow for a slow machine
    got = invoices(kafka_bootstrap, w, n, timeout=240)
    by_iid: dict[str, set[str]] = defaultdict(set)
    by_number: dict[str, set[str]] = defaultdict(set)
    for inv in got:
        by_iid[inv["interactionId"]].add(inv["invoiceNumber"])
        by_number[inv["invoiceNumber"]].add(inv["interactionId"])
    log = rebalances(w)
    if "behind its numbers" in log:  # the guard held (no reuse), but say so: the cause is still open
        warnings.warn("a series counter came back behind its numbers after the kill:\n" + log, stacklevel=1)
    assert len(by_iid) == n
    assert all(len(v) == 1 for v in by_iid.values()), "an interaction got two numbers\n" + log
    twice = {number: sorted(iids) for number, iids in by_number.items() if len(iids) > 1}
    assert not twice, f"numbers used twice: {dict(list(twice.items())[:5])}\n{log}"
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
