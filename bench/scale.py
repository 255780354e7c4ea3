"""The ledger at scale on the RocksDB store: 1,000,000 interactions.

    python -m bench.scale            (make bench-scale)

1. The ledger's changelog is filled with BENCH_SCALE_ENTRIES (1,000,000) delivered
   interactions, as a long-running worker would have left it.
2. A worker with `rocksdb://` starts on an empty data directory and recovers the table
   from the changelog: the time until it is ready, and its RSS.
3. BENCH_SCALE_LOOKUPS (20,000) repeats of known interactions go through the intake:
   every one is a ledger lookup that must answer DUPLICATE. Lookups per second (the
   intake's whole path: parse, lookup, count, audit), beside a raw aiokafka consume →
   produce loop over the same number of messages (the ceiling), and the RSS after.
4. The worker restarts on its RocksDB files (offsets checkpointed): the time until ready.

Environment: CALLBILL_KAFKA_BOOTSTRAP (else a local broker is started), BENCH_SCALE_PROFILE
(seconds of py-spy on the recovering worker, after 10 s; 0: off), BENCH_SCALE_WORKER_ENV
("CALLBILL_X=1,…": the worker's settings, to compare variants). Results:
bench/results/scale-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from kafka_harness import Worker, create_topics, free_port, read_topic  # noqa: E402

from app.ops.trace import partition_for  # noqa: E402
from bench.e2e import profile  # noqa: E402
from bench.proc import cpu_seconds, rss_mib  # noqa: E402
from bench.ingest import raw_pass_through  # noqa: E402

ENTRIES = int(os.environ.get("BENCH_SCALE_ENTRIES", 1_000_000))
LOOKUPS = int(os.environ.get("BENCH_SCALE_LOOKUPS", 20_000))
PROFILE_SECONDS = int(os.environ.get("BENCH_SCALE_PROFILE", 0))
WORKER_ENV = dict(x.split("=", 1) for x in os.environ.get("BENCH_SCALE_WORKER_ENV", "").split(",") if "=" in x)
PARTITIONS = 8


def entry(i: int) -> bytes:
    return json.dumps({"state": "DELIVERED", "firstSeen": "2026-11-01T10:00:00Z", "updatedAt": "2026-11-01T10:00:05Z",
                       "source": f"bench/0/{i}", "invoiceNumber": f"INV00-{i:07d}", "duplicates": 0,
                       "delivery": {"attempt": 1, "channel": "EMAIL", "status": "SENT"}},
                      separators=(",", ":")).encode()


async def fill_changelog(bootstrap: str, topic: str, n: int) -> float:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=512 * 1024,
                         compression_type="lz4" if _has_lz4() else None)
    await p.start()
    t0 = time.monotonic()
    try:
        pending = []
        for i in range(n):
            iid = f"scale-{i:07d}"
            pending.append(await p.send(topic, key=json.dumps(iid).encode(), value=entry(i),
                                        partition=partition_for(iid, PARTITIONS)))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await p.stop()
    return time.monotonic() - t0


def _has_lz4() -> bool:
    import importlib.util

    return importlib.util.find_spec("lz4") is not None


async def repeats(bootstrap: str, topic: str, n: int) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        futs = []
        for j in range(n):
            iid = f"scale-{(j * 7919) % ENTRIES:07d}"
            body = {"interactionId": iid, "source": "webhook", "customerId": "CUST-1", "endedAt": "2026-11-01T10:00:00Z",
                    "durationSeconds": 60, "wrapupCode": "Billable Service"}
            futs.append(await p.send(topic, key=iid.encode(), value=json.dumps(body).encode()))
        await asyncio.gather(*futs)
    finally:
        await p.stop()


def wait_ready(w: Worker, timeout: float) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if httpx.get(w.url + "/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        if w.proc and w.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{w.log_tail()}")
        time.sleep(0.5)
    raise TimeoutError(f"not ready after {timeout}s:\n{w.log_tail()}")


def start_worker(w: Worker, timeout: float) -> float:
    """Start and time until /health says ready (recovered, assigned)."""
    import subprocess

    log = open(w.log_path, "ab")
    w.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT, env=w.env(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    return wait_ready(w, timeout)


async def recover_profiled(w: Worker, tmp: Path) -> tuple[float, float, dict | None]:
    """Cold start: seconds until ready, the worker's CPU seconds by then, and a py-spy
    profile of the recovery (BENCH_SCALE_PROFILE seconds after the first 10)."""
    started = asyncio.create_task(asyncio.to_thread(start_worker, w, 1800))
    spied = None
    if PROFILE_SECONDS:
        while w.proc is None:
            await asyncio.sleep(0.1)
        spied = asyncio.create_task(profile(w.proc.pid, PROFILE_SECONDS, tmp / "recovery.pyspy", after=10))
    seconds = await started
    cpu = cpu_seconds(w.proc.pid)
    return seconds, cpu, (await spied if spied else None)


async def main_async(bootstrap: str, tmp: Path) -> dict:
    w = Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env={
        "CALLBILL_STORE": "rocksdb://", "CALLBILL_LOG_LEVEL": "warn", "CALLBILL_ACK_AFTER_SECONDS": "0", **WORKER_ENV})
    await asyncio.to_thread(create_topics, bootstrap, w.prefix, PARTITIONS)
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    changelog = f"{w.app_id}-ledger-changelog"
    await admin.create_topics([NewTopic(changelog, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
    await admin.close()
    print(f"filling {changelog} with {ENTRIES:,} ledger entries …", flush=True)
    fill = await fill_changelog(bootstrap, changelog, ENTRIES)
    print(f"  {fill:.1f} s", flush=True)

    print("worker on an empty RocksDB directory: recovering the ledger from its changelog …", flush=True)
    recover_cold, recover_cpu, recovery_profile = await recover_profiled(w, tmp)
    rss_recovered = rss_mib(w.proc.pid)
    print(f"  ready after {recover_cold:.1f} s ({ENTRIES / recover_cold:,.0f} entries/s, "
          f"{1e6 * recover_cpu / ENTRIES:.0f} µs worker CPU per entry), RSS {rss_recovered} MiB", flush=True)
    if recovery_profile:
        print(json.dumps(recovery_profile, indent=1), flush=True)

    print(f"{LOOKUPS:,} repeats of known interactions through the intake …", flush=True)
    t0 = time.monotonic()
    await repeats(bootstrap, w.topic("callbill.interactions"), LOOKUPS)
    audit = await asyncio.to_thread(read_topic, bootstrap, w.topic("callbill.audit"),
                                    lambda m: len(m) >= LOOKUPS, 900)
    lookup_s = time.monotonic() - t0
    outcomes = {}
    for _, v in audit:
        o = json.loads(v)["outcome"]
        outcomes[o] = outcomes.get(o, 0) + 1
    rss_after = rss_mib(w.proc.pid)
    print(f"  {LOOKUPS / lookup_s:.0f} lookups/s, outcomes {outcomes}, RSS {rss_after} MiB", flush=True)

    w.stop()
    print("restart on the same RocksDB files …", flush=True)
    recover_warm = await asyncio.to_thread(start_worker, w, 1800)
    print(f"  ready after {recover_warm:.1f} s", flush=True)
    w.stop()

    print("ceiling: raw aiokafka consume → produce over the same count …", flush=True)
    raw = await raw_pass_through(bootstrap, LOOKUPS)
    data_dir = tmp / f"{w.app_id}-data"
    disk = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()) if data_dir.exists() else 0
    return {
        "entries": ENTRIES, "lookups": LOOKUPS, "partitions": PARTITIONS,
        "changelog_fill_seconds": round(fill, 1),
        "recovery_from_changelog_seconds": round(recover_cold, 1),
        "recovery_entries_per_second": round(ENTRIES / recover_cold),
        "recovery_worker_cpu_seconds": round(recover_cpu, 1),
        "recovery_profile": recovery_profile, "worker_env": WORKER_ENV,
        "restart_on_rocksdb_seconds": round(recover_warm, 1),
        "rss_after_recovery_mib": rss_recovered, "rss_after_lookups_mib": rss_after,
        "rocksdb_disk_mib": round(disk / 2**20, 1),
        "dedupe_lookups_per_second": round(LOOKUPS / lookup_s, 1),
        "outcomes": outcomes,
        "raw_pass_through": raw,
        "ratio_to_raw": round((LOOKUPS / lookup_s) / raw["per_second"], 3) if raw.get("per_second") else None,
    }


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="callbill-scale-"))
    bootstrap = os.environ.get("CALLBILL_KAFKA_BOOTSTRAP")
    kafka = None
    if not bootstrap:
        from devtools.devstack import LocalKafka

        kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
        kafka.start()
        bootstrap = kafka.bootstrap
    try:
        result = asyncio.run(main_async(bootstrap, tmp))
    finally:
        if kafka:
            kafka.stop()
    result.update({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "platform": platform.platform()},
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    out = ROOT / "bench" / "results" / f"scale-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
