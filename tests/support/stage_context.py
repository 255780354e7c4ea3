"""A stage context for in-process tests: dict tables, recording topics, real views, real services.

The handlers of agents/ run against it as they do in a worker, without a broker: the
outputs land in `ctx.sent`, the tables are plain dicts (what a Faust table is to a
handler), the directory holds the sample customers, and the outside systems are real
(a file store in the test's folder, the rate card, an SMTP server on loopback when the
test starts one).
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from agents.context import Context
from app.bootstrap import Services
from runtime.settings import Settings
from tables.directory import Directory
from tables.ledger import Ledger
from tables.pending import PendingTable
from tables.reviews import ReviewQueue, ReviewTable
from tables.suppressions import Suppressions

REPO = Path(__file__).resolve().parents[2]
CUSTOMERS = REPO / "samples" / "directory" / "customers.jsonl"


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Any
    partition: int | None = None  # as the sender chose it (None: the key's partition)

    def json(self) -> Any:
        return json.loads(self.value) if self.value else None


class RecordingTopic:
    """What a stage sees of a topic: send() returns a future that is already acknowledged."""

    def __init__(self, name: str, sink: list[Sent]) -> None:
        self.name, self.sink = name, sink

    async def send(self, *, key: bytes | None = None, value: bytes | None = None, headers: Any = None,
                   partition: int | None = None):
        offset = sum(1 for s in self.sink if s.topic == self.name)
        self.sink.append(Sent(self.name, key, value, headers, partition))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(topic=self.name, partition=0, offset=offset))
        return fut


class Topics(dict):
    def __init__(self, sink: list[Sent]) -> None:
        super().__init__()
        self.sink = sink

    def __missing__(self, name: str) -> RecordingTopic:
        self[name] = RecordingTopic(name, self.sink)
        return self[name]


class StageContext(Context):
    sent: list[Sent]

    def out(self, topic: str) -> list[Any]:
        """The JSON values sent to `topic`, in order."""
        return [s.json() for s in self.sent if s.topic == topic]

    def outcomes(self, stage: str | None = None) -> list[str]:
        return [a["outcome"] for a in self.out("callbill.audit") if stage is None or a["stage"] == stage]


def make_context(tmp_path: Path, **settings: Any) -> StageContext:
    s = Settings(_env_file=None, **{
        "webhook_secret": "stage-test-secret", "storage_url": f"file://{tmp_path / 'store'}",
        "rate_card": str(REPO / "samples" / "rate-card.yaml"), "render_processes": 0,
        "data_dir": str(tmp_path / "data"), **settings})
    sink: list[Sent] = []
    directory, suppressions, queue = Directory(), Suppressions(), ReviewQueue()
    for line in CUSTOMERS.read_text().splitlines():
        if line.strip():
            directory.apply(json.loads(line)["customerId"], line.encode())
    for view in (directory, suppressions, queue):
        view.caught_up.set()
    ctx = StageContext(settings=s, topics=Topics(sink), ledger=Ledger({}), pending=PendingTable({}),
                       reviews=ReviewTable({}), directory=directory, suppressions=suppressions, review_queue=queue,
                       services=Services(s))
    ctx.sent = sink
    return ctx


class Event(SimpleNamespace):
    """faust's EventT as a handler sees it: .value and .message (weak-referenceable, as faust's is)."""


def event(value: BaseModel | bytes | dict, topic: str = "callbill.interactions", key: str | None = None,
          partition: int = 0, offset: int = 0, headers: list[tuple[str, bytes]] | None = None) -> Any:
    """A message as a handler reads it (faust's EventT: .value and .message)."""
    if isinstance(value, BaseModel):
        raw = value.model_dump_json(exclude_none=True).encode()
        key = key or getattr(value, "interactionId", None)
    elif isinstance(value, dict):
        raw = json.dumps(value).encode()
    else:
        raw = value
    message = SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key.encode() if key else None,
                              value=raw, headers=headers or [])
    return Event(value=raw, message=message)
