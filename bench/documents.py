"""Invoice PDFs: renders per second on one core, beside invoices per second through the
whole documents stage (render, store in SeaweedFS with SigV4, sign a link, publish).

    python -m bench.documents            (make bench)

Environment: CALLBILL_KAFKA_BOOTSTRAP (else a local broker is started), BENCH_RENDERS (100),
BENCH_DOCUMENTS (500). Results: bench/results/documents-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "integration")]  # harness and test helpers

from kafka_harness import Worker, create_topics, free_port  # noqa: E402

from adapters.fonts import fonts  # noqa: E402
from runtime.topics import assign_from_start  # noqa: E402
from domain.billing import draft, issue  # noqa: E402
from domain.invoice_pdf import Buyer, Seller, render  # noqa: E402
from domain.pricing import load_rate_card  # noqa: E402
from schemas.customers import Customer  # noqa: E402
from schemas.events import InteractionCompleted  # noqa: E402

RENDERS = int(os.environ.get("BENCH_RENDERS", 100))
DOCS = int(os.environ.get("BENCH_DOCUMENTS", 500))
PARTITIONS = 4
CUSTOMER = Customer(customerId="CUST-BENCH", name="Jane Doe", email="bench@example.com", timezone="America/Chicago",
                    currency="USD", postalAddress={"line1": "1 Main St", "city": "Springfield", "region": "IL",
                                                   "country": "US"})


def invoice(i: int):
    card = load_rate_card(ROOT / "samples" / "rate-card.yaml")
    inter = InteractionCompleted(interactionId=f"doc-{i:07d}", source="webhook", customerId="CUST-BENCH",
                                 endedAt=datetime(2026, 11, 24, 22, 20, tzinfo=timezone.utc), durationSeconds=754,
                                 serviceType="Consultation Service - Level 2", wrapupCode="Billable Service")
    return issue(draft(inter, CUSTOMER, card, None), f"INV00-{i + 1:06d}", "INV00", datetime(2026, 11, 24, 22, 21,
                                                                                             tzinfo=timezone.utc))


def render_rate(n: int) -> dict:
    seller, buyer, f = Seller("Callbill Demo Services Ltd", ("1 Example Street",)), Buyer("Jane Doe", ("1 Main St",)), fonts()
    invoices = [invoice(i) for i in range(n)]
    render(invoices[0], seller, buyer, f)  # warm the font cache
    t0 = time.process_time()
    w0 = time.monotonic()
    for inv in invoices:
        render(inv, seller, buyer, f)
    cpu, wall = time.process_time() - t0, time.monotonic() - w0
    return {"pdfs": n, "cpu_seconds": round(cpu, 2), "per_second_one_core": round(n / cpu, 1),
            "ms_per_pdf": round(1000 * wall / n, 1)}


def render_under_worker_logging(n: int, quiet: bool) -> dict:
    """Renders as a worker does them: Faust sets the root logger to DEBUG and logs INFO to a
    file; `quiet` applies runtime/logs.py's caps (fontTools' subsetter at WARNING)."""
    import logging

    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    handler = logging.FileHandler(os.devnull)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s"))
    root.addHandler(handler)
    for name in ("fontTools", "fpdf"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    if quiet:
        from runtime.logs import configure_logging

        configure_logging("info")
    try:
        return render_rate(n)
    finally:
        root.removeHandler(handler)


def logging_cost(n: int, rounds: int = 3) -> dict:
    """Before/after of the fontTools log cap, alternated in one process (the machine's noise
    hits both alike); the best round of each."""
    loud, quiet = [], []
    for _ in range(rounds):
        loud.append(render_under_worker_logging(n, quiet=False)["per_second_one_core"])
        quiet.append(render_under_worker_logging(n, quiet=True)["per_second_one_core"])
    return {"pdfs_per_round": n, "fonttools_logging_per_second": max(loud), "capped_per_second": max(quiet),
            "ratio_capped_vs_logging": round(max(quiet) / max(loud), 2)}


async def stage_rate(bootstrap: str, tmp: Path, s3, n: int) -> dict:
    w = Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env={
        "CALLBILL_LOG_LEVEL": "warn", "CALLBILL_STORAGE_URL": f"s3://{s3.bucket}/bench{time.time_ns()}",
        "CALLBILL_S3_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key})
    await asyncio.to_thread(create_topics, bootstrap, w.prefix, PARTITIONS)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        await p.send_and_wait(w.topic("crm.customers"), CUSTOMER.model_dump_json().encode(), key=b"CUST-BENCH")
        futs = [await p.send(w.topic("callbill.invoices"), invoice(i).model_dump_json().encode(),
                             key=f"doc-{i:07d}".encode()) for i in range(n)]
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    await asyncio.to_thread(w.start)
    try:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        await assign_from_start(c, w.topic("callbill.documents"), wait=60)
        stored: dict[str, datetime] = {}
        deadline = time.monotonic() + 900
        while len(stored) < n and time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    d = json.loads(m.value)
                    stored.setdefault(d["interactionId"], datetime.fromisoformat(d["time"]))
        await c.stop()
    finally:
        w.stop()
    times = sorted(stored.values())
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else float("nan")
    return {"documents": len(times), "seconds": round(span, 2), "per_second": round(len(times) / span, 1)}


async def main() -> int:
    from devtools.devstack import LocalKafka, LocalS3

    tmp = Path(tempfile.mkdtemp(prefix="callbill-bench-"))
    bootstrap = os.environ.get("CALLBILL_KAFKA_BOOTSTRAP")
    kafka = None
    if not bootstrap:
        kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
        await asyncio.to_thread(kafka.start)
        bootstrap = kafka.bootstrap
    from test_documents import s3_port

    s3 = LocalS3(tmp / "s3", port=s3_port())
    await asyncio.to_thread(s3.start)
    try:
        renders = render_rate(RENDERS)
        print(f"render, one core           {renders}")
        logs = logging_cost(max(10, RENDERS // 4))
        print(f"under a worker's logging   {logs}")
        stage = await stage_rate(bootstrap, tmp, s3, DOCS)
        print(f"documents stage to S3      {stage}")
        result = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "params": {"renders": RENDERS, "documents": DOCS, "partitions": PARTITIONS},
            "render": renders, "render_under_worker_logging": logs, "documents_stage_s3": stage,
            "ratios": {"stage_vs_render_one_core": round(stage["per_second"] / renders["per_second_one_core"], 2)},
        }
        print(f"ratios {result['ratios']}")
        out = ROOT / "bench" / "results" / f"documents-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
        return 0
    finally:
        await asyncio.to_thread(s3.stop)
        if kafka:
            await asyncio.to_thread(kafka.stop)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
