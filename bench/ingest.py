"""Bridge ingest and intake throughput, each beside a raw aiokafka ceiling on the same broker.

    python -m bench.ingest            (make bench)

Environment: CALLBILL_KAFKA_BOOTSTRAP (else a local broker is started), BENCH_SECONDS (30),
BENCH_CLIENTS (50), BENCH_INTAKE_EVENTS (20000). Results: bench/results/ingest-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from kafka_harness import SECRET, Worker, free_port  # noqa: E402

from app.cli import sign  # noqa: E402
from runtime.topics import assign_from_start  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", 30))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 50))
INTAKE_EVENTS = int(os.environ.get("BENCH_INTAKE_EVENTS", 20000))
PARTITIONS = 4


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def body(i: int) -> bytes:
    return json.dumps({
        "interactionId": f"gen-{uuid.uuid4().hex[:16]}", "customerId": "CUST-9876543",
        "timestamp": "2026-11-24T22:15:00Z", "durationSeconds": 300 + i % 600, "agentName": "Alex Agent",
        "serviceType": "Consultation Service - Level 2", "billingCode": "Billable Service",
    }).encode()


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


async def raw_produce(bootstrap: str) -> dict:
    """Ceiling for the bridge: CLIENTS concurrent send_and_wait loops, acks=all."""
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [topic])
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1)
    await p.start()
    lat: list[float] = []
    stop = time.monotonic() + SECONDS

    async def client(c: int) -> None:
        i = 0
        while time.monotonic() < stop:
            t = time.perf_counter()
            await p.send_and_wait(topic, body(i), key=f"k{c}-{i}".encode())
            lat.append(time.perf_counter() - t)
            i += 1
    t0 = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    elapsed = time.monotonic() - t0
    await p.stop()
    return summary(len(lat), elapsed, lat)


async def bridge_ingest(url: str) -> dict:
    """CLIENTS concurrent HTTP clients posting signed webhooks; only 202s count.

    The load comes from aiohttp's client: httpx's pool tops out near 100 requests/s
    with 50 concurrent clients here, which would measure the client, not the bridge.
    """
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + SECONDS
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:
        async def client(c: int) -> None:
            nonlocal errors
            i = 0
            while time.monotonic() < stop:
                raw = body(i)
                t = time.perf_counter()
                async with http.post(url + "/genesys/webhook", data=raw, headers={
                        "Content-Type": "application/json", "X-Callbill-Signature": sign(raw, SECRET)}) as r:
                    await r.read()
                    ok = r.status == 202
                if ok:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1
                i += 1
        t0 = time.monotonic()
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        elapsed = time.monotonic() - t0
    return {**summary(len(lat), elapsed, lat), "errors": errors}


def summary(n: int, elapsed: float, lat: list[float]) -> dict:
    return {
        "messages": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1),
        "p50_ms": round(pct(lat, 50) * 1000, 2), "p99_ms": round(pct(lat, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
    }


async def preload(bootstrap: str, topic: str, n: int) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        futs = []
        for i in range(n):
            iid = f"gen-{i:08d}-{uuid.uuid4().hex[:6]}"
            rec = {"interactionId": iid, "source": "webhook", "customerId": "CUST-9876543",
                   "startedAt": "2026-11-24T22:15:00Z", "endedAt": "2026-11-24T22:20:00Z", "durationSeconds": 300,
                   "agentName": "Alex Agent", "serviceType": "Consultation", "wrapupCode": "Billable Service"}
            futs.append(await p.send(topic, json.dumps(rec).encode(), key=iid.encode()))
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def raw_pass_through(bootstrap: str, n: int) -> dict:
    """Ceiling for the intake: consume, parse, produce to another topic, acks=all."""
    src, dst = f"bench-src-{uuid.uuid4().hex[:6]}", f"bench-dst-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [src, dst])
    await preload(bootstrap, src, n)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=500)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await c.start()
    await p.start()
    c.assign([TopicPartition(src, i) for i in range(PARTITIONS)])
    await c.seek_to_beginning()
    done = 0
    t0 = time.monotonic()
    while done < n:
        batch = await c.getmany(timeout_ms=500)
        futs = []
        for msgs in batch.values():
            for m in msgs:
                json.loads(m.value)
                futs.append(await p.send(dst, m.value, key=m.key))
        await asyncio.gather(*futs)
        done += len(futs)
    elapsed = time.monotonic() - t0
    await c.stop()
    await p.stop()
    return {"messages": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1)}


async def intake_throughput(bootstrap: str, tmp: Path, n: int) -> dict:
    """Preload canonical interactions, start a worker, time the intake's decisions."""
    w = Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env={"CALLBILL_LOG_LEVEL": "warn"})
    # the worker creates its topics at start; preload needs them first
    from runtime.topics import SPECS
    await create_topics(bootstrap, [w.topic(s.name) for s in SPECS if s.name == "callbill.interactions"])
    await preload(bootstrap, w.topic("callbill.interactions"), n)
    await asyncio.to_thread(w.start)
    try:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        await assign_from_start(c, w.topic("callbill.audit"), wait=60)
        times: list[datetime] = []
        deadline = time.monotonic() + 600
        while len(times) < n and time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                times += [datetime.fromisoformat(json.loads(m.value)["time"]) for m in msgs]
        await c.stop()
    finally:
        w.stop()
    span = (max(times) - min(times)).total_seconds() if times else float("nan")
    return {"messages": len(times), "seconds": round(span, 2), "per_second": round(len(times) / span, 1)}


async def main() -> int:
    bootstrap = os.environ.get("CALLBILL_KAFKA_BOOTSTRAP")
    kafka = None
    tmp = Path(tempfile.mkdtemp(prefix="callbill-bench-"))
    if not bootstrap:
        from devtools.devstack import LocalKafka

        kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
        await asyncio.to_thread(kafka.start)
        bootstrap = kafka.bootstrap
    try:
        print(f"broker {bootstrap}; {CLIENTS} clients, {SECONDS:.0f} s per ingest run, {INTAKE_EVENTS} intake events")
        raw = await raw_produce(bootstrap)
        print(f"raw aiokafka produce   {raw}")
        w = Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env={"CALLBILL_LOG_LEVEL": "warn"})
        await asyncio.to_thread(w.start)
        try:
            bridge = await bridge_ingest(w.url)
        finally:
            w.stop()
        print(f"bridge ingest          {bridge}")
        raw_pt = await raw_pass_through(bootstrap, INTAKE_EVENTS)
        print(f"raw consume->produce   {raw_pt}")
        intake = await intake_throughput(bootstrap, tmp, INTAKE_EVENTS)
        print(f"intake (validate+dedupe+forward+audit) {intake}")
        result = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "params": {"seconds": SECONDS, "clients": CLIENTS, "intake_events": INTAKE_EVENTS, "partitions": PARTITIONS},
            "raw_produce": raw, "bridge_ingest": bridge,
            "raw_consume_produce": raw_pt, "intake": intake,
            "ratios": {
                "bridge_vs_raw_produce": round(bridge["per_second"] / raw["per_second"], 3),
                "intake_vs_raw_consume_produce": round(intake["per_second"] / raw_pt["per_second"], 3),
            },
        }
        print(f"ratios {result['ratios']}")
        out = ROOT / "bench" / "results" / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
        return 0
    finally:
        if kafka:
            await asyncio.to_thread(kafka.stop)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
