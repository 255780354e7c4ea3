"""Billing throughput with the reference ERP at 20 ms, beside a serial one-at-a-time loop
over the same ERP in the same run (the ratio shows the in-batch concurrency works), and
the rate-card path (no ERP) for comparison.

    python -m bench.billing            (make bench)

Environment: CALLBILL_KAFKA_BOOTSTRAP (else a local broker is started), BENCH_BILLING_EVENTS
(5000), BENCH_SERIAL (200), BENCH_ERP_LATENCY_MS (20). Results: bench/results/billing-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from kafka_harness import Worker, create_topics, free_port  # noqa: E402

from adapters.erp import ErpClient  # noqa: E402
from devtools.reference_erp import ReferenceErp  # noqa: E402
from runtime.topics import assign_from_start  # noqa: E402
from schemas.invoices import ErpInvoiceRequest, ErpLineItem  # noqa: E402

EVENTS = int(os.environ.get("BENCH_BILLING_EVENTS", 5000))
SERIAL = int(os.environ.get("BENCH_SERIAL", 200))
LATENCY_MS = float(os.environ.get("BENCH_ERP_LATENCY_MS", 20))
PARTITIONS = 4
CUSTOMER = {"customerId": "CUST-BENCH", "email": "bench@example.com", "timezone": "America/Chicago",
            "currency": "USD", "postalAddress": {"line1": "1 Main St", "region": "IL", "country": "US"}}


async def serial_loop(erp: ReferenceErp, n: int) -> dict:
    """The naive baseline: one request, wait for the answer, the next."""
    client = ErpClient(erp.url, "bench-token")
    t0 = time.monotonic()
    try:
        for _ in range(n):
            key = f"serial-{uuid.uuid4().hex}"
            await client.generate_invoice(ErpInvoiceRequest(
                sourceInteractionId=key, requestedAmount=Decimal("34.53"), currency="USD",
                lineItems=[ErpLineItem(description="Consultation", quantity=13, unitPrice=Decimal("2.50"))],
                customerReference="CUST-BENCH", deliveryChannel="EMAIL",
                taxes=[{"name": "IL", "jurisdiction": "US-IL", "rate": "0.0625", "base": "32.50", "amount": "2.03"}]))
    finally:
        await client.aclose()
    elapsed = time.monotonic() - t0
    return {"invoices": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1)}


async def preload(bootstrap: str, w: Worker, n: int) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        await p.send_and_wait(w.topic("crm.customers"), json.dumps(CUSTOMER).encode(), key=b"CUST-BENCH")
        futs = []
        for i in range(n):
            iid = f"b-{i:07d}-{uuid.uuid4().hex[:6]}"
            rec = {"interactionId": iid, "source": "webhook", "customerId": "CUST-BENCH",
                   "endedAt": "2026-11-24T22:20:00Z", "durationSeconds": 754,
                   "serviceType": "Consultation Service - Level 2", "wrapupCode": "Billable Service"}
            futs.append(await p.send(w.topic("callbill.billable"), json.dumps(rec).encode(), key=iid.encode()))
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def billing_run(bootstrap: str, tmp: Path, n: int, env: dict[str, str]) -> dict:
    """Preload billable interactions, start a worker, time the invoices it issues."""
    w = Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env={"CALLBILL_LOG_LEVEL": "warn", **env})
    await asyncio.to_thread(create_topics, bootstrap, w.prefix, PARTITIONS)
    await preload(bootstrap, w, n)
    await asyncio.to_thread(w.start)
    try:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        await assign_from_start(c, w.topic("callbill.invoices"), wait=60)
        issued: dict[str, datetime] = {}
        deadline = time.monotonic() + 900
        while len(issued) < n and time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    doc = json.loads(m.value)
                    issued.setdefault(doc["interactionId"], datetime.fromisoformat(doc["issuedAt"]))
        await c.stop()
    finally:
        w.stop()
    times = sorted(issued.values())
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else float("nan")
    return {"invoices": len(times), "seconds": round(span, 2), "per_second": round(len(times) / span, 1)}


async def main() -> int:
    bootstrap = os.environ.get("CALLBILL_KAFKA_BOOTSTRAP")
    kafka = None
    tmp = Path(tempfile.mkdtemp(prefix="callbill-bench-"))
    if not bootstrap:
        from devtools.devstack import LocalKafka

        kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
        await asyncio.to_thread(kafka.start)
        bootstrap = kafka.bootstrap
    erp = ReferenceErp(token="bench-token", latency_ms=LATENCY_MS).start()
    try:
        print(f"broker {bootstrap}; reference ERP at {LATENCY_MS:.0f} ms; {EVENTS} interactions per billing run")
        serial = await serial_loop(erp, SERIAL)
        print(f"serial ERP loop            {serial}")
        with_erp = await billing_run(bootstrap, tmp, EVENTS, {"CALLBILL_ERP_URL": erp.url,
                                                            "CALLBILL_ERP_TOKEN": "bench-token"})
        print(f"billing agent, ERP         {with_erp}")
        rate_card = await billing_run(bootstrap, tmp, EVENTS, {})
        print(f"billing agent, rate card   {rate_card}")
        stats = erp.call(erp.stats)
        result = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "params": {"events": EVENTS, "serial": SERIAL, "erp_latency_ms": LATENCY_MS, "partitions": PARTITIONS},
            "serial_erp_loop": serial, "billing_erp": with_erp, "billing_rate_card": rate_card,
            "erp_creates": stats["totalCreates"],
            "ratios": {"billing_erp_vs_serial_loop": round(with_erp["per_second"] / serial["per_second"], 2)},
        }
        print(f"ratios {result['ratios']}")
        out = ROOT / "bench" / "results" / f"billing-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
        return 0
    finally:
        erp.stop()
        if kafka:
            await asyncio.to_thread(kafka.stop)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
