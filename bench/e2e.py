"""End to end: interactions through the bridge into the whole pipeline on the local stack.

    python -m bench.e2e            (make bench-e2e)

The reference ERP at 20 ms, SeaweedFS with SigV4, and an SMTP server (aiosmtpd) in this
process. A realistic mix: 10 % duplicates (posted again later), 5 % not billable, 2 %
without a customer (review), 3 % "No Email" customers (postal jobs); the rest are invoiced
and mailed. Measured, for 1 and 2 workers:

- sustained invoices/s (delivered invoices over the time from the first accept to the
  last delivery) and latency from the bridge's 202 to the invoice handed to the SMTP
  server (or the postal topic): p50 / p95 / p99;
- worker CPU seconds (the worker process; and callbill_cpu_seconds: with its render children) and peak RSS;
- the same at a fixed offered load (BENCH_E2E_RATE, 100 interactions/s), where latency
  rather than throughput is the point;
- in the same run, the ceilings: raw aiokafka consume → produce on the same broker, and
  PDF renders/s on one core; the ratios are printed;
- a PII scan: no customer name in any subject or header, no name, address or phone in any
  log line or metric, no unmasked card number anywhere.

Environment: CALLBILL_KAFKA_BOOTSTRAP (else a local broker), BENCH_E2E_EVENTS (20000),
BENCH_E2E_FIXED_EVENTS (3000), BENCH_E2E_RATE (100), BENCH_E2E_LOW_EVENTS (300),
BENCH_E2E_LOW_RATE (5), BENCH_E2E_WORKERS ("1,2"), BENCH_E2E_PROFILE (60: seconds of py-spy
samples of the 1-worker run, 20 s in; the heaviest functions, and who the socket writes are for, go
into the results; 0: off), BENCH_E2E_PROFILE_GIL=1 (sample only the thread holding the GIL),
BENCH_E2E_PROFILE_RAW=FILE (keep py-spy's raw stacks there),
BENCH_E2E_SOAK_MINUTES (0: none) at BENCH_E2E_SOAK_RATE (50/s): a soak, the worker's RSS every 10 s
and its growth after the first 5 minutes (`rss_growth_after_5_min_percent`),
BENCH_E2E_MEMTRACE=1 (the fixed-rate runs' worker under tracemalloc, a snapshot and its RSS, Python
and RocksDB memory every BENCH_E2E_MEMTRACE_EVERY seconds, 60: which lines grow, bench/memtrace;
=light: the memory figures and the collector's time without tracemalloc, at full speed, the bursts
too), BENCH_E2E_MEMTRACE_CENSUS_AT=SECONDS (once, at that time, which objects hold the arenas
Python uses least: bench/memtrace),
BENCH_E2E_WORKER_ENV ("CALLBILL_RENDER_PROCESSES=0,…": worker settings of a variant).
Results: bench/results/e2e-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "integration")]  # harness and test helpers

from kafka_harness import SECRET, Worker, create_topics, free_port, sign  # noqa: E402

from devtools.reference_erp import ReferenceErp  # noqa: E402
from bench.proc import cpu_seconds, cpu_split, rss_mib, thread_cpu_seconds, tree_cpu_seconds  # noqa: E402
from devtools.smtp_sink import SmtpSink  # noqa: E402
from runtime.topics import assign_from_start  # noqa: E402

EVENTS = int(os.environ.get("BENCH_E2E_EVENTS", 20_000))
FIXED_EVENTS = int(os.environ.get("BENCH_E2E_FIXED_EVENTS", 3_000))
RATE = float(os.environ.get("BENCH_E2E_RATE", 100))
# and a load below one worker's capacity, where the latency is the pipeline's own, not a queue's
LOW_RATE = float(os.environ.get("BENCH_E2E_LOW_RATE", 5))
LOW_EVENTS = int(os.environ.get("BENCH_E2E_LOW_EVENTS", 300))
PROFILE_SECONDS = int(os.environ.get("BENCH_E2E_PROFILE", 60))
# only the thread holding the GIL: where the Python CPU goes (a thread waiting for the GIL, e.g. the
# loop behind the render pool's feeder thread, is otherwise sampled as busy where it waits)
PROFILE_GIL = os.environ.get("BENCH_E2E_PROFILE_GIL", "") not in ("", "0")
# the soak (goal 6 of issue 16): BENCH_E2E_SOAK_MINUTES at BENCH_E2E_SOAK_RATE, the worker's RSS
# sampled every 10 s; its growth after the first 5 minutes is the figure
SOAK_MINUTES = float(os.environ.get("BENCH_E2E_SOAK_MINUTES", 0))
SOAK_RATE = float(os.environ.get("BENCH_E2E_SOAK_RATE", 50))
PII_SAMPLE = 5000  # emails the PII scan parses at most (evenly spread): a soak sends tens of thousands
STALL_SECONDS, GIVE_UP_SECONDS = 60, 600  # no delivery that long: task dump; then: stop waiting  # py-spy on the 1-worker run; 0: off
MEMTRACE_MODE = os.environ.get("BENCH_E2E_MEMTRACE", "")  # "light": no tracemalloc, the figures only
MEMTRACE = MEMTRACE_MODE not in ("", "0")
MEMTRACE_EVERY = float(os.environ.get("BENCH_E2E_MEMTRACE_EVERY", 60))
MEMTRACE_CENSUS_AT = os.environ.get("BENCH_E2E_MEMTRACE_CENSUS_AT", "0")
WORKERS = [int(x) for x in os.environ.get("BENCH_E2E_WORKERS", "1,2").split(",") if x]
PARTITIONS = 8
CARD = re.compile(r"\b(?:\d[ -]?){15}\d\b")


def customers() -> list[dict]:
    out = []
    for i in range(97):
        out.append({"customerId": f"C-{i:03d}", "name": f"Customer Person{i:03d}", "email": f"person{i:03d}@example.com",
                    "phone": "+13125550100", "timezone": "America/Chicago", "currency": "USD",
                    "postalAddress": {"line1": f"{i} Benchmark Road", "city": "Springfield", "region": "IL",
                                      "postalCode": "62701", "country": "US"}})
    for i in range(3):
        out.append({"customerId": f"N-{i:03d}", "name": f"Letter Person{i:03d}", "email": f"letter{i:03d}@example.com",
                    "timezone": "Europe/Berlin", "currency": "EUR",
                    "postalAddress": {"line1": f"Hauptstrasse {i}", "city": "Berlin", "postalCode": "10115",
                                      "country": "DE"},
                    "preferences": {"transactionalEmail": False, "sms": False, "postal": True}})
    return out


def workload(n: int, run: str) -> tuple[list[dict], set[str]]:
    """The bodies to post, in order, and the interactions that must end up delivered."""
    bodies, delivered = [], set()
    i = -1
    while len(bodies) < n:  # 1 post in 11 repeats an earlier interaction
        i += 1
        iid = f"{run}-{i:06d}"
        kind = i % 100
        body = {"interactionId": iid, "timestamp": "2026-11-24T22:15:00Z", "durationSeconds": 60 + i % 900,
                "agentName": "Alex Agent", "serviceType": "Consultation Service - Level 2",
                "billingCode": "Billable Service"}
        if kind < 5:
            body["billingCode"] = "Courtesy Call"  # not billable
            body["customerId"] = f"C-{i % 97:03d}"
        elif kind < 7:
            body["customerId"] = None  # review: MISSING_CUSTOMER
        elif kind < 10:
            body["customerId"] = f"N-{i % 3:03d}"  # No Email: postal
            delivered.add(iid)
        else:
            body["customerId"] = f"C-{i % 97:03d}"
            delivered.add(iid)
        bodies.append(body)
        if i % 10 == 9 and len(bodies) < n:
            bodies.append(dict(bodies[i - 5 if i >= 5 else 0]))  # a duplicate, a few posts later
    return bodies[:n], delivered


async def post_all(urls: list[str], bodies: list[dict], rate: float | None) -> dict[str, float]:
    """POST every body (spread over the workers' bridges); the first 202 time per interaction.

    aiohttp's client, not httpx's: the load generator shares the two cores with what it
    measures, and httpx's cost per request was a fifth of the machine's CPU per invoice
    (infrastructure_cpu_ms_per_invoice, load_generator 10.8 ms)."""
    import aiohttp

    accepted: dict[str, float] = {}
    sem = asyncio.Semaphore(50)
    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=60),
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        async def one(i: int, body: dict) -> None:
            if rate:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            raw = json.dumps(body).encode()
            async with sem:
                for _ in range(20):
                    async with client.post(urls[i % len(urls)] + "/genesys/webhook", data=raw, headers={
                            "Content-Type": "application/json", "X-Callbill-Signature": sign(raw, SECRET)}) as r:
                        status, text = r.status, await r.text()
                    if status != 503:
                        break
                    await asyncio.sleep(1)
            assert status == 202, (status, text)
            accepted.setdefault(body["interactionId"], time.time())
        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    return accepted


async def deliveries(bootstrap: str, topic: str, want: set[str], timeout: float, peak: dict, pids: list[int],
                     pauses: list[float], timeline: list | None = None) -> dict:
    """The deliveries of `want`; `timeline` gets [seconds, RSS MiB of each worker, delivered] every 10 s."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    got: dict[str, dict] = {}
    try:
        await assign_from_start(c, topic, wait=60)
        deadline = time.monotonic() + timeout
        progress, dumped = time.monotonic(), False
        started, sampled = time.monotonic(), -10.0
        while time.monotonic() < deadline and not want <= set(got):
            if timeline is not None and time.monotonic() - sampled >= 10:
                sampled = time.monotonic()
                timeline.append([round(sampled - started), *[rss_mib(pid) for pid in pids], len(got)])
            before = len(got)
            for msgs in (await c.getmany(timeout_ms=1000)).values():
                for m in msgs:
                    d = json.loads(m.value)
                    if d.get("kind", "invoice") == "invoice":
                        got.setdefault(d["interactionId"], d)
            for pid in pids:
                peak[pid] = max(peak.get(pid, 0.0), rss_mib(pid))
            if len(got) > before:
                if dumped:
                    pauses.append(round(time.monotonic() - progress, 1))
                progress, dumped = time.monotonic(), False
            elif time.monotonic() - progress > STALL_SECONDS and not dumped:
                # no delivery for a while: said and measured (BENCH_E2E_TASK_DUMP=1 also has the
                # workers write their asyncio tasks to their logs; mode's dump holds local
                # variables, so the PII scan of that run's logs is not meaningful)
                print(f"  no delivery for {STALL_SECONDS} s at {len(got)}", flush=True)
                if os.environ.get("BENCH_E2E_TASK_DUMP") == "1":
                    for pid in pids:
                        os.kill(pid, signal.SIGUSR1)
                dumped = True
            if time.monotonic() - progress > GIVE_UP_SECONDS:
                print(f"  gave up: no delivery for {GIVE_UP_SECONDS} s", flush=True)
                break
    finally:
        await c.stop()
    return got


async def profile(pid: int, seconds: int, out: Path, after: float = 20) -> dict:
    """py-spy samples of a running worker: where its time goes (own time and inclusive)."""
    await asyncio.sleep(after)
    spy = Path(sys.executable).parent / "py-spy"
    proc = await asyncio.create_subprocess_exec(
        str(spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "50", "--format", "raw",
        "--nonblocking", *(["--gil"] if PROFILE_GIL else []), "--output", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        return {"error": err.decode(errors="replace")[-300:]}
    if keep := os.environ.get("BENCH_E2E_PROFILE_RAW"):
        Path(keep).write_text(out.read_text())  # py-spy's raw stacks, for a flame graph
    return summarize_profile(out.read_text())


# what the inclusive time is reported for: a frame's file path containing the key
AREAS = {"pdf (typst)": ("typst/", "adapters/pdf.py"), "kafka client (aiokafka)": ("aiokafka/",),
         "faust": ("faust/", "mode/"), "pydantic": ("pydantic",), "json": ("json/",),
         "s3 (aiobotocore, botocore)": ("botocore/",), "smtp (aiosmtplib)": ("aiosmtplib/",),
         "erp client (aiohttp)": ("aiohttp/",), "logging": ("logging/",), "asyncio loop": ("asyncio/",)}


# a frame of callbill's own code: "function (package/module.py"
OURS = re.compile(r"^(\S+) \((?:/[^()]*?/)?((?:agents|adapters|app|domain|runtime|schemas|tables)/[\w/]+\.py)")


def summarize_profile(raw: str) -> dict:
    total = 0
    own: Counter = Counter()
    areas: Counter = Counter()
    writers: Counter = Counter()  # who the socket writes are for: the first frame outside asyncio
    ours: Counter = Counter()  # callbill's own functions, inclusive: which step of which stage costs what
    roots: Counter = Counter()  # the task each sample ran in: the first frame the event loop called
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[re.sub(r"\s*\(/.*/site-packages/", " (", frames[-1])] += n
        if "_SelectorSocketTransport.write" in frames[-1]:
            caller = next((f for f in reversed(frames[:-1]) if "asyncio/" not in f), "?")
            writers[re.sub(r"\s*\(/.*/site-packages/", " (", caller)] += n
        for area, keys in AREAS.items():
            if any(k in f for f in frames for k in keys):
                areas[area] += n
        runs = [i for i, f in enumerate(frames) if f.startswith("Handle._run (")]
        roots[short(frames[runs[-1] + 1]) if runs and runs[-1] + 1 < len(frames) else "(outside a task)"] += n
        for name in {f"{m.group(1)} ({m.group(2)})" for f in frames
                     if "site-packages" not in f and (m := OURS.search(f))}:
            ours[name] += n
    share = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total, "inclusive_percent": {a: share(n) for a, n in areas.most_common()},
            "top_own_percent": [[f, share(n)] for f, n in own.most_common(15)],
            "socket_writes_by_caller_percent": [[f, share(n)] for f, n in writers.most_common(6)],
            "callbill_inclusive_percent": [[f, share(n)] for f, n in ours.most_common(40)],
            "by_task_percent": [[f, share(n)] for f, n in roots.most_common(25)]}


def short(frame: str) -> str:
    """A frame without its line number and site-packages prefix: "function (package/module.py)"."""
    return re.sub(r":\d+\)$", ")", re.sub(r"\s*\(/.*/site-packages/", " (", frame))


def worker_env() -> dict[str, str]:
    """BENCH_E2E_WORKER_ENV="CALLBILL_X=1,CALLBILL_Y=2": settings for the workers, to compare variants."""
    pairs = (x.split("=", 1) for x in os.environ.get("BENCH_E2E_WORKER_ENV", "").split(",") if "=" in x)
    return {k.strip(): v.strip() for k, v in pairs}


class Infrastructure:
    """The CPU of what is not callbill, beside callbill's own (goal: both printed every run):
    the broker and SeaweedFS (their processes), the reference ERP and the SMTP server (threads
    of this process), and the load generator (the rest of this process: the posts, the
    delivery consumer, the bookkeeping)."""

    def __init__(self, broker_pid: int | None, s3_pid: int, erp_thread: int, smtp_thread: int) -> None:
        self.broker_pid, self.s3_pid, self.erp_thread, self.smtp_thread = broker_pid, s3_pid, erp_thread, smtp_thread

    def now(self) -> dict[str, float]:
        erp, smtp = thread_cpu_seconds(self.erp_thread), thread_cpu_seconds(self.smtp_thread)
        own = sum(os.times()[:2])
        out = {"broker": tree_cpu_seconds(self.broker_pid) if self.broker_pid else float("nan"),
               "s3": tree_cpu_seconds(self.s3_pid), "erp": erp, "smtp_server": smtp,
               "load_generator": own - erp - smtp}
        return out

    @staticmethod
    def per_invoice(before: dict[str, float], after: dict[str, float], invoices: int) -> dict[str, float | None]:
        """ms of CPU per delivered invoice, by component (None: the broker is not ours to measure)."""
        return {k: (round(1000 * (after[k] - before[k]) / invoices, 1) if invoices and after[k] == after[k] else None)
                for k in before}


INFRA: Infrastructure | None = None  # set by main() once the stack runs


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run_once(bootstrap: str, tmp: Path, env: dict, workers: int, n: int, rate: float | None,
                   sink: SmtpSink, label: str) -> dict:
    run = f"{label}{int(time.time()) % 100000}"
    ws = [Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env=env) for _ in range(workers)]
    for w in ws[1:]:
        w.app_id, w.prefix = ws[0].app_id, ws[0].prefix
        w.log_path = tmp / f"{w.app_id}-{w.port}.log"
    w0 = ws[0]
    await asyncio.to_thread(create_topics, bootstrap, w0.prefix, PARTITIONS)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    for cust in customers():
        await p.send_and_wait(w0.topic("crm.customers"), json.dumps(cust).encode(), key=cust["customerId"].encode())
    await p.stop()
    for w in ws:
        w.extra_env = {**env, "CALLBILL_DATA_DIR": str(tmp / f"{w.app_id}-{w.port}-data")}
    trace_dir = None
    if MEMTRACE and (rate is not None or MEMTRACE_MODE == "light"):  # the first worker's memory (a burst: light only)
        trace_dir = tmp / f"{run}-memtrace"
        trace_dir.mkdir()
        ws[0].extra_env.update({"PYTHONPATH": str(ROOT / "bench" / "memtrace"), "BENCH_MEMTRACE_DIR": str(trace_dir),
                                "BENCH_MEMTRACE_EVERY": str(MEMTRACE_EVERY), "BENCH_MEMTRACE_CENSUS_AT": MEMTRACE_CENSUS_AT,
                                "BENCH_MEMTRACE_FRAMES": "0" if MEMTRACE_MODE == "light" else "1"})
    for w in ws:
        await asyncio.to_thread(w.start, 180)
    await asyncio.sleep(3 if workers > 1 else 0)  # let the group settle
    pids = [w.proc.pid for w in ws]
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    split0 = {pid: cpu_split(pid) for pid in pids}
    tree0 = {pid: tree_cpu_seconds(pid) for pid in pids}
    infra0 = INFRA.now() if INFRA else None
    bodies, want = workload(n, run)
    sink.clear()
    t0 = time.time()
    poster = asyncio.create_task(post_all([w.url for w in ws], bodies, rate))
    spy = None
    if PROFILE_SECONDS and workers == 1 and rate is None:
        spy = asyncio.create_task(profile(pids[0], PROFILE_SECONDS, tmp / f"{run}.pyspy.txt"))
    peak: dict[int, float] = {}
    pauses: list[float] = []  # seconds without a delivery, where longer than STALL_SECONDS
    timeline: list = []
    got = await deliveries(bootstrap, w0.topic("callbill.deliveries"), want, 3600 + 60 * SOAK_MINUTES, peak, pids,
                           pauses, timeline)
    accepted = await poster
    prof = await spy if spy else None
    cpu = {pid: round(cpu_seconds(pid) - cpu0[pid], 1) for pid in pids}
    split = {pid: [round(b - a, 1) for a, b in zip(split0[pid], cpu_split(pid))] for pid in pids}
    tree = {pid: round(tree_cpu_seconds(pid) - tree0[pid], 1) for pid in pids}  # render children included
    infra = INFRA.per_invoice(infra0, INFRA.now(), len(got)) if INFRA and infra0 else None
    metrics = httpx.get(w0.url + "/metrics", timeout=10).text
    for w in ws:
        w.stop()
    lat = [datetime.fromisoformat(d["time"]).timestamp() - accepted[i] for i, d in got.items() if i in accepted]
    last = max(datetime.fromisoformat(d["time"]).timestamp() for d in got.values()) if got else t0
    span = last - min(accepted.values())
    channels = Counter(d["channel"] for d in got.values())
    logs = "".join(w.log_path.read_text(errors="replace") for w in ws)
    return {
        "workers": workers, "posted": len(bodies), "offered_rate": rate, "expected_deliveries": len(want),
        "delivered": len(set(got) & want), "unexpected_deliveries": len(set(got) - want), "channels": dict(channels),
        "seconds": round(span, 1), "invoices_per_second": round(len(got) / span, 2) if span > 0 else None,
        "latency_seconds": {"p50": round(pct(lat, 50), 3), "p95": round(pct(lat, 95), 3), "p99": round(pct(lat, 99), 3),
                            "mean": round(statistics.fmean(lat), 3) if lat else None},
        "worker_cpu_seconds": list(cpu.values()), "worker_user_system_cpu_seconds": list(split.values()),
        "callbill_cpu_seconds": list(tree.values()),
        "callbill_cpu_ms_per_invoice": round(1000 * sum(tree.values()) / len(got), 1) if got else None,
        "infrastructure_cpu_ms_per_invoice": infra,
        "worker_peak_rss_mib": [round(peak.get(p, 0), 1) for p in pids],
        "delivery_pauses_seconds": pauses,
        "pii": pii_scan(sink, logs, metrics),
        "rss_timeline": timeline,  # [seconds, RSS MiB per worker…, delivered so far]
        **({"rss_growth_after_5_min_percent": growth} if (growth := rss_growth(timeline)) is not None else {}),
        **({"profile": prof} if prof is not None else {}),
        **({"memtrace": memtrace(trace_dir)} if trace_dir else {}),
    }


def memtrace(folder: Path, after: float = 300, top: int = 20) -> dict:
    """What bench/memtrace wrote: the memory timeline (RSS, anonymous, Python's traced, RocksDB's),
    and the source lines whose live Python allocations grew most from the first snapshot at or
    after `after` seconds to the last."""
    import tracemalloc

    timeline = [json.loads(x) for x in (folder / "memory.jsonl").read_text().splitlines()] \
        if (folder / "memory.jsonl").exists() else []
    snaps = sorted(folder.glob("snapshot-*.tracemalloc"))
    start = next((i for i, row in enumerate(timeline) if row["seconds"] >= after), None)
    grew: list = []
    if start is not None and start < len(snaps) - 1:
        first, last = tracemalloc.Snapshot.load(str(snaps[start])), tracemalloc.Snapshot.load(str(snaps[-1]))
        for d in last.compare_to(first, "lineno")[:top]:
            frame = d.traceback[0]
            grew.append([f"{short_path(frame.filename)}:{frame.lineno}", round(d.size_diff / 2**20, 2), d.count_diff])
    types = {}
    dbs = max((row.get("rocksdb_mib", {}).get("databases", 0) for row in timeline), default=0)
    live = [row for row in timeline if row.get("rocksdb_mib", {}).get("databases", 0) == dbs]  # not closing
    if start is not None and live and "types" in live[-1]:
        first, last = timeline[start].get("types", {}), live[-1]["types"]
        types = dict(sorted(((k, last[k] - first.get(k, 0)) for k in last), key=lambda kv: -kv[1])[:15])
        for row in timeline:
            row.pop("types", None)
    census = json.loads((folder / "census.json").read_text()) if (folder / "census.json").exists() else None
    collector = live[-1].get("gc") if live else None  # the collector's time by generation, to the end
    return {"timeline": timeline, "python_growth_mib_by_line": grew, "objects_grown_by_type": types,
            **({"gc": collector} if collector else {}), **({"census": census} if census else {})}


def short_path(path: str) -> str:
    return re.sub(r".*/site-packages/", "", path).replace(str(ROOT) + "/", "")


def rss_growth(timeline: list, after: float = 300) -> float | None:
    """How much the first worker's RSS grew after `after` seconds: the largest sample since then
    against the sample at that time, in percent; None for a run shorter than that."""
    later = [row[1] for row in timeline if row[0] >= after]
    if len(later) < 2:
        return None
    return round(100 * (max(later) - later[0]) / later[0], 1)


def card_in(text: str) -> bool:
    """A Luhn-valid card number, as the redaction pass sees them (domain/redaction.py); the
    digits after a decimal point (Faust logs timings like 0.3199065609996978) are not one."""
    from domain.redaction import redact

    return any(redact(m.group(0)) != m.group(0) for m in CARD.finditer(text)
               if not (m.start() and text[m.start() - 1] in ".,"))  # the fraction of a float


def pii_scan(sink: SmtpSink, logs: str, metrics: str) -> dict:
    """What must never leave: names in subjects or headers; names, addresses, phones in logs
    or metrics; an unmasked card number anywhere."""
    problems = Counter()
    paths = sorted(sink.directory.glob("*.eml"))
    step = max(1, len(paths) // PII_SAMPLE)
    messages = read_messages_at(paths[::step])
    for m in messages:
        head = "".join(f"{k}: {v}\n" for k, v in m.items())
        if "Person" in head:
            problems["name in a header or subject"] += 1
        if card_in(m.as_string()):
            problems["card number in an email"] += 1
    for text, where in ((logs, "log"), (metrics, "metrics")):
        for needle in ("Person", "@example.com", "Benchmark Road", "Hauptstrasse", "5550100", "Alex Agent"):
            if needle in text:
                problems[f"{needle!r} in {where}"] += 1
        if card_in(text):
            problems[f"card number in {where}"] += 1
    return {"emails_scanned": len(messages), "emails_sent": len(paths), "problems": dict(problems)}


def read_messages_at(paths: list[Path]) -> list:
    import email
    import email.policy

    out = []
    for path in paths:
        with open(path, "rb") as fh:
            out.append(email.message_from_binary_file(fh, policy=email.policy.default))
    return out


async def main() -> int:
    from devtools.devstack import LocalKafka, LocalS3
    from bench.documents import render_rate
    from bench.ingest import raw_pass_through
    from test_documents import s3_port

    tmp = Path(tempfile.mkdtemp(prefix="callbill-e2e-"))
    bootstrap = os.environ.get("CALLBILL_KAFKA_BOOTSTRAP")
    kafka = None
    if not bootstrap:
        kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
        await asyncio.to_thread(kafka.start)
        bootstrap = kafka.bootstrap
    s3 = LocalS3(tmp / "s3", port=s3_port())
    await asyncio.to_thread(s3.start)
    erp = ReferenceErp(token="bench-token", latency_ms=20).start()
    sink = SmtpSink(tmp / "mail").start()
    global INFRA
    INFRA = Infrastructure(kafka._proc.pid if kafka and kafka._proc else None, s3._proc.pid,
                           erp._thread.native_id, sink._thread.native_id)
    env = {"CALLBILL_LOG_LEVEL": "info", "CALLBILL_ERP_URL": erp.url, "CALLBILL_ERP_TOKEN": "bench-token",
           "CALLBILL_STORAGE_URL": f"s3://{s3.bucket}/e2e", "CALLBILL_S3_ENDPOINT_URL": s3.endpoint_url,
           "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
           "CALLBILL_SMTP_URL": f"smtp://127.0.0.1:{sink.port}", "CALLBILL_PUBLIC_URL": "https://billing.example.com"}
    env.update(worker_env())
    results: dict = {"runs": []}
    try:
        print("ceilings: raw aiokafka pass-through, PDF renders on one core …", flush=True)
        results["raw_pass_through"] = await raw_pass_through(bootstrap, 20_000)
        results["render_one_core"] = render_rate(100)
        print(f"  {results['raw_pass_through']}\n  {results['render_one_core']}", flush=True)
        for workers in WORKERS:
            print(f"{EVENTS:,} interactions as fast as the bridge takes them, {workers} worker(s) …", flush=True)
            r = await run_once(bootstrap, tmp, env, workers, EVENTS, None, sink, f"w{workers}-")
            print(f"  {json.dumps(r)}", flush=True)
            results["runs"].append(r)
        soak = int(SOAK_MINUTES * 60 * SOAK_RATE)
        for count, rate, label in ((FIXED_EVENTS, RATE, "fixed-"), (LOW_EVENTS, LOW_RATE, "low-"),
                                   (soak, SOAK_RATE, "soak-")):
            if not count:
                continue
            print(f"{count:,} interactions at a fixed {rate:g}/s, 1 worker …", flush=True)
            r = await run_once(bootstrap, tmp, env, 1, count, rate, sink, label)
            print(f"  {json.dumps(r)}", flush=True)
            results["runs"].append(r)
    finally:
        sink.stop()
        erp.stop()
        await asyncio.to_thread(s3.stop)
        if kafka:
            await asyncio.to_thread(kafka.stop)
    raw = results["raw_pass_through"]["per_second"]
    render = results["render_one_core"]["per_second_one_core"]
    results["ratios"] = [{"workers": r["workers"], "offered_rate": r["offered_rate"],
                          "vs_raw_pass_through": round((r["invoices_per_second"] or 0) / raw, 4),
                          "vs_pdf_renders_one_core": round((r["invoices_per_second"] or 0) / render, 2)}
                         for r in results["runs"]]
    results.update({"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "params": {"events": EVENTS, "fixed_events": FIXED_EVENTS, "rate": RATE,
                               "low_events": LOW_EVENTS, "low_rate": LOW_RATE, "partitions": PARTITIONS,
                               "erp_latency_ms": 20, "worker_env": worker_env(), "profile_gil": PROFILE_GIL,
                               "soak_minutes": SOAK_MINUTES, "soak_rate": SOAK_RATE}})
    print("ratios", json.dumps(results["ratios"]))
    out = ROOT / "bench" / "results" / f"e2e-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
