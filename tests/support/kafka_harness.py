"""Real parts for the tests: a broker, worker processes, signed posts, topic readers."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.cli import sign
from runtime.topics import assign_from_start

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-not-found]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no engine here
        return False


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    """A `callbill worker` in its own process, with its own app id and topic prefix."""

    bootstrap: str
    tmp: Path
    app_id: str = field(default_factory=lambda: unique("t"))
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    cwd: Path = REPO  # where it starts (and so which .env it reads)

    def __post_init__(self) -> None:
        self.prefix = self.app_id + "."
        self.port = free_port()
        self.log_path = self.tmp / f"{self.app_id}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def topic(self, base: str) -> str:
        return self.prefix + base

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBILL_")}
        env.update({
            "CALLBILL_KAFKA_BOOTSTRAP": self.bootstrap,
            "CALLBILL_APP_ID": self.app_id,
            "CALLBILL_TOPIC_PREFIX": self.prefix,
            "CALLBILL_TOPIC_PARTITIONS": str(self.partitions),
            "CALLBILL_WEB_PORT": str(self.port),
            "CALLBILL_WEBHOOK_SECRET": SECRET,
            "CALLBILL_DATA_DIR": str(self.tmp / f"{self.app_id}-data"),
            "CALLBILL_BRIDGE_ACK_TIMEOUT": "3",
            "CALLBILL_SESSION_TIMEOUT": "6",
            # PDFs of test runs stay in the test's directory, not the repo's var/store
            "CALLBILL_STORAGE_URL": f"file://{self.tmp}/store",
            **self.extra_env,
        })
        return env

    def start(self, timeout: float = 90) -> "Worker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"], cwd=self.cwd, env=self.env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def post(self, body: dict | bytes, path: str = "/genesys/webhook", headers: dict | None = None,
             signed: bool = True) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        if signed:
            h["X-Callbill-Signature"] = sign(raw, SECRET)
        h.update(headers or {})
        return httpx.post(self.url + path, content=raw, headers=h, timeout=15)


async def post_many(url: str, bodies: list[dict], concurrency: int = 20) -> list[int]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as client:
        async def one(b: dict) -> int:
            raw = json.dumps(b).encode()
            async with sem:
                r = await client.post(url + "/genesys/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Callbill-Signature": sign(raw, SECRET)})
                return r.status_code
        return await asyncio.gather(*(one(b) for b in bodies))


async def _read(bootstrap: str, topic: str, until, timeout: float) -> list[tuple[str | None, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[str | None, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        if not await assign_from_start(consumer, topic, wait=timeout):
            return out
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                out.extend((m.key.decode() if m.key else None, m.value) for m in msgs)
            if until(out):
                break
        return out
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str, until=lambda out: False, timeout: float = 30.0):
    """Every message on a topic from the start, until `until(messages)` or the timeout."""
    return asyncio.run(_read(bootstrap, topic, until, timeout))


def read_json(bootstrap: str, topic: str, until=lambda out: False, timeout: float = 30.0) -> list[dict]:
    return [json.loads(v) for _, v in read_topic(bootstrap, topic, lambda o: until([json.loads(v) for _, v in o]), timeout)]


def produce_raw(bootstrap: str, topic: str, key: bytes | None, value: bytes | None) -> None:
    async def go() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            await p.send_and_wait(topic, value=value, key=key)
        finally:
            await p.stop()
    asyncio.run(go())


def webhook(iid: str, customer: str | None = "CUST-1", code: str = "Billable Service", **over) -> dict:
    body = {
        "interactionId": iid, "customerId": customer, "timestamp": "2026-11-24T22:15:00Z",
        "durationSeconds": 300, "agentName": "Alex Agent", "serviceType": "Consultation", "billingCode": code,
    }
    body.update(over)
    return body


def create_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    """Create every callbill topic under `prefix` (as a worker would) before one runs."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from runtime.topics import SPECS, topic_config

    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = [NewTopic(prefix + s.name, s.partitions or partitions, 1, topic_configs=topic_config(s))
                   for s in SPECS if prefix + s.name not in existing]
            if new:
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    asyncio.run(go())
