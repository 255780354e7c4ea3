"""Faults during a run, then the promises checked: nothing lost, nothing twice.

    python -m bench.chaos            (make chaos: 5,000 interactions)

While interactions stream in through the bridge, on its own broker and S3 server:
the worker is killed (-9) three times at random moments and restarted (as a supervisor
would), the broker is restarted once, the ERP answers 503 for 30 s, S3 is down for 20 s,
and the SMTP server answers 421 for 20 s. Afterwards:

- every billable interaction is delivered or in review;
- exactly one ERP invoice per interaction (the reference ERP counts creates per key);
- zero duplicate emails (one message per Message-ID at the SMTP server);
- the audit trail is complete: each delivered interaction has its intake, billing,
  documents and delivery decisions;
- credit notes (CHAOS_CREDITS of the invoices, each request sent twice, during the faults):
  exactly one ERP credit note per request key, each delivered once (its own Message-ID) or in
  review like an invoice (DELIVERY_UNCONFIRMED when a kill lands mid-send).

`tests/e2e/test_chaos.py` runs a shorter version (CHAOS_* below) in CI. Environment:
CHAOS_EVENTS (5000), CHAOS_KILLS (3), CHAOS_ERP_OUTAGE (30), CHAOS_S3_DOWN (20),
CHAOS_SMTP_BUSY (20), CHAOS_BROKER_RESTART (1), CHAOS_CREDITS (100), CHAOS_SEED (1). Results:
bench/results/chaos-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "integration")]  # harness and test helpers

from kafka_harness import SECRET, Worker, create_topics, free_port, read_json, sign  # noqa: E402

from devtools.reference_erp import ReferenceErp  # noqa: E402
from devtools.smtp_sink import SmtpSink  # noqa: E402


@dataclass
class Plan:
    events: int = 5000
    kills: int = 3
    erp_outage: float = 30.0
    s3_down: float = 20.0
    smtp_busy: float = 20.0
    broker_restart: bool = True
    credits: int = 100  # invoices credited (each request sent twice) while the faults happen
    seed: int = 1
    post_rate: float = 60.0  # interactions per second offered through the bridge
    settle_timeout: float = 900.0
    log: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> "Plan":
        e = os.environ.get
        return cls(events=int(e("CHAOS_EVENTS", 5000)), kills=int(e("CHAOS_KILLS", 3)),
                   erp_outage=float(e("CHAOS_ERP_OUTAGE", 30)), s3_down=float(e("CHAOS_S3_DOWN", 20)),
                   smtp_busy=float(e("CHAOS_SMTP_BUSY", 20)), broker_restart=e("CHAOS_BROKER_RESTART", "1") == "1",
                   credits=int(e("CHAOS_CREDITS", 100)), seed=int(e("CHAOS_SEED", 1)))


CUSTOMERS = [{"customerId": f"CH-{i}", "name": f"Chaos Person{i}", "email": f"chaos{i}@example.com",
              "timezone": "America/Chicago", "currency": "USD",
              "postalAddress": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701",
                                "country": "US"}} for i in range(20)]


def body(i: int) -> dict:
    return {"interactionId": f"chaos-{i:05d}", "customerId": f"CH-{i % 20}", "timestamp": "2026-11-24T22:15:00Z",
            "durationSeconds": 120 + i % 600, "serviceType": "Consultation Service - Level 2",
            "billingCode": "Billable Service"}


class Supervisor:
    """Keeps one worker running: restarts it when it dies (killed or stopped by the send guard)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.restarts = 0
        self.stop = False

    async def run(self) -> None:
        while not self.stop:
            proc = self.worker.proc
            if proc is None or proc.poll() is not None:
                try:
                    await asyncio.to_thread(self.worker.start, 180)
                    self.restarts += 1
                except Exception:  # noqa: BLE001 - e.g. the broker is down: try again
                    await asyncio.sleep(2)
            await asyncio.sleep(0.5)


async def post_all(url: str, n: int, rate: float) -> int:
    """Every interaction accepted once at least; 503 (Kafka down) and refused connections
    (the worker is restarting) are retried, as Genesys would."""
    sem = asyncio.Semaphore(20)
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=15) as client:
        async def one(i: int) -> None:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            raw = json.dumps(body(i)).encode()
            while True:
                async with sem:
                    try:
                        r = await client.post(url + "/genesys/webhook", content=raw, headers={
                            "Content-Type": "application/json", "X-Callbill-Signature": sign(raw, SECRET)})
                        if r.status_code == 202:
                            return
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(1)
        await asyncio.gather(*(one(i) for i in range(n)))
    return n


def credit_request(invoice: dict) -> dict:
    return {"interactionId": invoice["interactionId"], "invoiceNumber": invoice["invoiceNumber"],
            "reason": "Chaos goodwill", "amount": "1.00", "actor": "chaos"}


async def credit_all(bootstrap: str, w: Worker, n: int, span: float) -> list[dict]:
    """Credit the first `n` interactions once each is invoiced, each request sent twice (the
    operator repeating the command), spread over the faults' span; returns the requests."""
    from test_billing import produce

    sent: list[dict] = []
    deadline = time.monotonic() + span
    want = {body(i)["interactionId"] for i in range(n)}
    while want and time.monotonic() < deadline + 120:
        invoices = await asyncio.to_thread(read_json, bootstrap, w.topic("callbill.invoices"), timeout=5)
        fresh = [i for i in invoices if i["interactionId"] in want and i.get("documentType") != "creditNote"]
        for inv in fresh:
            want.discard(inv["interactionId"])
        batch = [(r["interactionId"], r) for r in map(credit_request, fresh)]
        if batch:
            await asyncio.to_thread(produce, bootstrap, w.topic("callbill.credit-requests"), batch)
            await asyncio.sleep(2)
            await asyncio.to_thread(produce, bootstrap, w.topic("callbill.credit-requests"), batch)  # again
            sent += [r for _, r in batch]
        await asyncio.sleep(3)
    return sent


async def faults(plan: Plan, kafka, s3, erp: ReferenceErp, sink: SmtpSink, sup: Supervisor, span: float) -> None:
    rnd = random.Random(plan.seed)
    # kills apart from each other (a supervisor needs a moment to bring the worker back)
    slots = sorted(rnd.sample(range(1, 10), plan.kills)) if plan.kills <= 9 else list(range(plan.kills))
    events: list[tuple[float, str]] = [(s / 10 * span, "kill") for s in slots]
    events += [(0.2 * span, "erp"), (0.4 * span, "s3"), (0.6 * span, "smtp")]
    if plan.broker_restart:
        events.append((0.75 * span, "broker"))
    t0 = time.monotonic()

    def stamp() -> str:
        return f"{time.monotonic() - t0:6.1f}s"

    async def one(at: float, what: str) -> None:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        if what == "kill":
            proc = sup.worker.proc
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                plan.log.append(f"{stamp()} worker killed (-9)")
            else:
                plan.log.append(f"{stamp()} kill skipped: the worker was already down")
        elif what == "erp":
            erp.outage(plan.erp_outage)
            plan.log.append(f"{stamp()} ERP answers 503 for {plan.erp_outage:g} s")
        elif what == "s3":
            await asyncio.to_thread(s3.stop)
            plan.log.append(f"{stamp()} S3 down for {plan.s3_down:g} s")
            await asyncio.sleep(plan.s3_down)
            await asyncio.to_thread(s3.start)
            plan.log.append(f"{stamp()} S3 back")
        elif what == "smtp":
            sink.handler.busy(plan.smtp_busy)
            plan.log.append(f"{stamp()} SMTP answers 421 for {plan.smtp_busy:g} s")
        elif what == "broker" and kafka is not None:
            await asyncio.to_thread(kafka.stop)
            plan.log.append(f"{stamp()} broker stopped")
            await asyncio.sleep(5)
            await asyncio.to_thread(kafka.start)
            plan.log.append(f"{stamp()} broker restarted")

    await asyncio.gather(*(one(at, what) for at, what in sorted(events)))


def check_credits(bootstrap: str, w: Worker, erp: ReferenceErp, requests: list[dict], timeout: float) -> dict:
    """One ERP credit note per request key, answered ISSUED, and each delivered."""
    from schemas.credits import CreditRequest

    keys = {CreditRequest.model_validate(r).key() for r in requests}
    deadline = time.monotonic() + timeout
    while True:
        answers = [a for a in read_json(bootstrap, w.topic("callbill.credit-notes"), timeout=10)
                   if a["status"] == "ISSUED"]
        numbers: dict[str, set[str]] = defaultdict(set)
        for a in answers:
            numbers[a["idempotencyKey"]].add(a["creditNumber"])
        delivered = {d["invoiceNumber"] for d in read_json(bootstrap, w.topic("callbill.deliveries"), timeout=10)
                     if d.get("kind") == "creditNote"}
        # a kill between a send's intent and its outcome: review DELIVERY_UNCONFIRMED, as for invoices
        reviewed = {r["interactionId"].split("~", 1)[1]: r["reason"]
                    for r in read_json(bootstrap, w.topic("callbill.review"), timeout=5) if "~" in r["interactionId"]}
        issued = {n for ns in numbers.values() for n in ns}
        if (keys <= set(numbers) and issued <= delivered | set(reviewed)) or time.monotonic() > deadline:
            break
        time.sleep(5)
    creates = erp.stats()["creates"]
    return {"credit_requests": len(requests), "credit_requests_sent": 2 * len(requests), "credit_keys": len(keys),
            "credit_keys_unanswered": sorted(keys - set(numbers))[:20],
            "credit_keys_with_two_numbers": sorted(k for k, v in numbers.items() if len(v) > 1),
            "credit_notes_created_twice": sorted(k for k in keys if creates.get(k, 0) > 1),
            "credit_notes_delivered": len(issued & delivered),
            "credit_notes_in_review": dict(Counter(reviewed[n] for n in issued - delivered if n in reviewed)),
            "credit_notes_undelivered": sorted(issued - delivered - set(reviewed))[:20]}


def check(bootstrap: str, w: Worker, erp: ReferenceErp, sink: SmtpSink, n: int, timeout: float) -> dict:
    want = {body(i)["interactionId"] for i in range(n)}
    deadline = time.monotonic() + timeout
    settled: set[str] = set()
    while time.monotonic() < deadline:
        deliveries = read_json(bootstrap, w.topic("callbill.deliveries"), timeout=10)
        reviews = read_json(bootstrap, w.topic("callbill.review"), timeout=5)
        delivered = {d["interactionId"] for d in deliveries if d.get("kind", "invoice") == "invoice"}
        reviewed = {r["interactionId"] for r in reviews}
        settled = delivered | reviewed
        if want <= settled:
            break
        time.sleep(5)
    # the whole audit topic (thousands of records): read until nothing new for a while
    audit = read_json(bootstrap, w.topic("callbill.audit"), timeout=180,
                      until=lambda m: len({(a["interactionId"], a["stage"]) for a in m
                                           if a["stage"] in ("delivery",) and a["outcome"] == "DELIVERED"}) >= len(delivered))
    story: dict[str, set[str]] = defaultdict(set)
    for a in audit:
        story[a["interactionId"]].add(f"{a['stage']}:{a['outcome']}")
    needed = {"intake:FORWARDED", "billing:BILLED", "documents:DOCUMENTED", "delivery:DELIVERED"}
    incomplete = [i for i in delivered if not needed <= story[i]]
    per_message = Counter(str(m["Message-ID"]) for m in sink.messages())
    creates = erp.stats()["creates"]
    return {
        "interactions": n, "delivered": len(delivered & want), "in_review": len((reviewed - delivered) & want),
        "neither": sorted(want - settled)[:20], "neither_count": len(want - settled),
        "review_reasons": dict(Counter(r["reason"] for r in reviews if r["interactionId"] not in delivered
                                       and "~" not in r["interactionId"])),  # a credit note's: below
        "erp_invoices": sum(1 for k in creates if not k.startswith("cn-")), "erp_keys_created_twice": sorted(k for k, v in creates.items() if v > 1),
        "emails": sum(per_message.values()),
        "duplicate_emails": sorted(k for k, v in per_message.items() if v > 1 and ".invoice@" in k),
        "audit_incomplete": sorted(incomplete)[:20], "audit_incomplete_count": len(incomplete),
        # what each of those has, to tell which stage's record went missing
        "audit_incomplete_stories": {i: sorted(story[i]) for i in sorted(incomplete)[:20]},
    }


async def run(plan: Plan, tmp: Path) -> dict:
    from devtools.devstack import LocalKafka, LocalS3
    from test_billing import produce
    from test_documents import s3_port

    kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
    await asyncio.to_thread(kafka.start)
    s3 = LocalS3(tmp / "s3", port=s3_port())
    await asyncio.to_thread(s3.start)
    erp = ReferenceErp(token="chaos-token", latency_ms=20).start()
    sink = SmtpSink(tmp / "mail").start()
    w = Worker(bootstrap=kafka.bootstrap, tmp=tmp, partitions=4, extra_env={
        "CALLBILL_ERP_URL": erp.url, "CALLBILL_ERP_TOKEN": "chaos-token",
        "CALLBILL_STORAGE_URL": f"s3://{s3.bucket}/chaos", "CALLBILL_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "CALLBILL_SMTP_URL": f"smtp://127.0.0.1:{sink.port}", "CALLBILL_RETRY_MAX_DELAY": "10",
        "CALLBILL_STORE": "rocksdb://", "CALLBILL_ACK_AFTER_SECONDS": "0"})
    sup = Supervisor(w)
    try:
        await asyncio.to_thread(create_topics, kafka.bootstrap, w.prefix, w.partitions)
        await asyncio.to_thread(produce, kafka.bootstrap, w.topic("crm.customers"),
                                [(c["customerId"], c) for c in CUSTOMERS])
        await asyncio.to_thread(w.start, 180)
        sup_task = asyncio.create_task(sup.run())
        span = plan.events / plan.post_rate
        started = time.monotonic()
        _, _, credits = await asyncio.gather(post_all(w.url, plan.events, plan.post_rate),
                                             faults(plan, kafka, s3, erp, sink, sup, span),
                                             credit_all(kafka.bootstrap, w, min(plan.credits, plan.events), span))
        posted = time.monotonic() - started
        result = await asyncio.to_thread(check, kafka.bootstrap, w, erp, sink, plan.events, plan.settle_timeout)
        result.update(await asyncio.to_thread(check_credits, kafka.bootstrap, w, erp, credits, 300))
        sup.stop = True
        await sup_task
        result.update({"seconds_posting": round(posted, 1), "seconds_total": round(time.monotonic() - started, 1),
                       "worker_restarts": sup.restarts, "kills": sum("killed" in x for x in plan.log),
                       "faults": plan.log})
        return result
    finally:
        sup.stop = True
        w.stop()
        sink.stop()
        erp.stop()
        await asyncio.to_thread(s3.stop)
        await asyncio.to_thread(kafka.stop)


def ok(result: dict) -> bool:
    return (result["neither_count"] == 0 and not result["erp_keys_created_twice"] and not result["duplicate_emails"]
            and result["audit_incomplete_count"] == 0 and not result["credit_keys_unanswered"]
            and not result["credit_keys_with_two_numbers"] and not result["credit_notes_created_twice"]
            and not result["credit_notes_undelivered"] and result["credit_keys"] == result["credit_requests"])


def main() -> int:
    plan = Plan.from_env()
    result = asyncio.run(run(plan, Path(tempfile.mkdtemp(prefix="callbill-chaos-"))))
    result["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = ROOT / "bench" / "results" / f"chaos-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for line in result["faults"]:
        print(line)
    print(json.dumps({k: v for k, v in result.items() if k != "faults"}, indent=2))
    print(("PASS" if ok(result) else "FAIL") + f"  results: {out.relative_to(ROOT)}")
    return 0 if ok(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
