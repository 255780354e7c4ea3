"""`callbill trace <interactionId>`: an interaction's whole story, read back from Kafka.

Every topic after the bridge is keyed by interactionId with Kafka's default partitioner,
so the story sits in one partition of each topic: the ledger's changelog (its last
state), the audit trail, review items, deliveries and the review queue. Only that
partition is read, from the start (compacted topics) or from a day before the ledger's
first sight of the interaction (the others), so a trace stays cheap on large topics.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.kafka import client_kwargs
from runtime.partitioning import home_partition
from runtime.settings import get_settings
from runtime.topics import topic_name
from schemas.invoices import kafka_key

STORY = ("callbill.audit", "callbill.review", "callbill.deliveries", "callbill.review-actions", "callbill.credit-notes")


def partition_for(key: str, partitions: int) -> int:
    """aiokafka's (and the Java client's) default partitioner for a keyed record."""
    return home_partition(key.encode(), partitions)


async def _records(topic: str, key: str, since: datetime | None, bootstrap: str, home: str | None = None) -> list[Any]:
    """(timestamp, value) of `key`'s records in the partition of `home` (default: `key`) of `topic`,
    oldest first. A credit note's table records (`<interactionId>~<number>`) sit on its invoice's
    partition: `home` is the interaction id."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_kwargs())
    await consumer.start()
    try:
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or set()
        if not parts:
            return []
        tp = TopicPartition(topic, partition_for(home or key, len(parts)))
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        begin = (await consumer.beginning_offsets([tp]))[tp]
        start = None
        if since is not None:
            found = (await consumer.offsets_for_times({tp: int(since.timestamp() * 1000)}))[tp]
            start = found.offset if found else end
        start = begin if start is None else max(start, begin)
        if start >= end:
            return []
        consumer.seek(tp, start)
        out: list[Any] = []
        keys = {key.encode(), json.dumps(key).encode()}  # Faust may write table keys as JSON strings
        deadline = time.monotonic() + 60
        last = -1
        while last < end - 1 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    last = max(last, m.offset)
                    if m.key in keys and m.offset < end:
                        out.append((m.timestamp, json.loads(m.value) if m.value else None))
        return out
    finally:
        await consumer.stop()


async def trace(interaction_id: str, bootstrap: str | None = None) -> dict[str, Any]:
    s = get_settings()
    bootstrap = bootstrap or s.kafka_bootstrap
    changelog = await _records(f"{s.app_id}-ledger-changelog", interaction_id, None, bootstrap,
                               home=kafka_key(interaction_id))
    ledger = _unwrap(changelog[-1][1]) if changelog else None
    first = ledger.get("firstSeen") if isinstance(ledger, dict) else None
    since = datetime.fromisoformat(first) - timedelta(days=1) if first else None
    story: dict[str, list[Any]] = {}
    home = kafka_key(interaction_id)  # a credit note's record id: its messages are keyed by the interaction
    for base in STORY:
        values = [v for _, v in await _records(topic_name(base), home, since, bootstrap)]
        story[base] = [v for v in values if home == interaction_id or (isinstance(v, dict)
                                                                       and v.get("interactionId") == interaction_id)]
    queue = await _records(topic_name("callbill.reviews"), interaction_id, None, bootstrap)
    notes = []
    for c in (ledger or {}).get("credits", []) if isinstance(ledger, dict) else []:
        rid = f"{interaction_id}~{c['creditNumber']}"
        history = await _records(f"{s.app_id}-ledger-changelog", rid, None, bootstrap, home=interaction_id)
        note = _unwrap(history[-1][1]) if history else None
        notes.append({**c, "ledger": _state(note) if note else None,
                      "delivery": (note or {}).get("delivery") if isinstance(note, dict) else None})
    return {"interactionId": interaction_id, "ledger": ledger, "creditNotes": notes,
            "ledgerHistory": [_state(v) for _, v in changelog],
            "queue": queue[-1][1] if queue else None, **{k.split(".", 1)[1]: v for k, v in story.items()}}


def _unwrap(value: Any) -> Any:
    """Faust writes table values as they were set (our JSON dict); tolerate a wrapper."""
    if isinstance(value, dict) and "__faust" in value and "value" in value:
        return value["value"]
    return value


def _state(value: Any) -> dict[str, Any]:
    v = _unwrap(value) or {}
    return {k: v.get(k) for k in ("state", "reason", "updatedAt", "invoiceNumber", "documentKey")
            if isinstance(v, dict) and v.get(k) is not None}


def render(t: dict[str, Any]) -> str:
    """A timeline a person reads: decisions, reviews, deliveries, actions, by time."""
    lines = [f"interaction {t['interactionId']}"]
    led = t.get("ledger")
    if not led:
        lines.append("  ledger: no entry (never reached intake, or another app id)")
    else:
        lines.append(f"  ledger: {led.get('state')}" + (f" ({led['reason']})" if led.get("reason") else "")
                     + (f", invoice {led['invoiceNumber']}" if led.get("invoiceNumber") else "")
                     + (f", document {led['documentKey']}" if led.get("documentKey") else "")
                     + f", first seen {led.get('firstSeen')}, duplicates {led.get('duplicates', 0)}")
        if led.get("credits"):
            total = sum(Decimal(str(c["total"])) for c in led["credits"])
            cur = (led.get("invoice") or {}).get("currency", "")
            of = (led.get("invoice") or {}).get("total")
            lines.append(f"  credited: {total} {cur} of {of} {cur} in {len(led['credits'])} credit note(s)")
    for n in t.get("creditNotes", []):
        st = n.get("ledger") or {}
        lines.append(f"  credit note {n['creditNumber']}: {n['total']}, {st.get('state', 'no entry')}"
                     + (f" ({st['reason']})" if st.get("reason") else "")
                     + (f", document {st['documentKey']}" if st.get("documentKey") else "")
                     + f", key {n['idempotencyKey']}, issued {str(n.get('issuedAt'))[:19]}")
    events: list[tuple[str, str]] = []
    for a in t.get("audit", []):
        who = f" by {a['actor']}" if a.get("actor") and a["actor"] != "callbill" else ""
        events.append((a["time"], f"{a['stage']:10} {a['outcome']}{' — ' + a['reason'] if a.get('reason') else ''}{who}"))
    for r in t.get("review", []):
        events.append((r["time"], f"{'review':10} {r['reason']} ({r['stage']})"))
    for d in t.get("deliveries", []):
        events.append((d["time"], f"{'delivered':10} {d.get('kind', 'invoice')} by {d['channel']} via {d['transport']}"
                                  f" (provider id {d['providerId']})"))
    for c in t.get("credit-notes", []):
        events.append((c["time"], f"{'credit':10} {c['status']} {c.get('creditNumber') or c.get('reason') or ''}"
                                  f" (key {c['idempotencyKey']})"))
    for a in t.get("review-actions", []):
        events.append((a["time"], f"{'operator':10} {a['action']} by {a['actor']}"))
    for when, text in sorted(events):
        lines.append(f"  {when[:23]:23}  {text}")
    q = t.get("queue")
    if q:
        lines.append(f"  review queue: {q['status']} {q['reason']} (opened {q['openedAt'][:19]})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse
    import asyncio

    p = argparse.ArgumentParser(prog="callbill trace", description="an interaction's whole story")
    p.add_argument("interaction_id")
    p.add_argument("--json", action="store_true", help="print the raw records as JSON")
    args = p.parse_args(argv)
    try:
        t = asyncio.run(trace(args.interaction_id))
    except Exception as e:  # noqa: BLE001 - a clear line, not a traceback
        print(f"callbill trace: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(json.dumps(t, indent=2, default=str) if args.json else render(t))
    found = t["ledger"] or t.get("audit") or t.get("review") or t.get("queue")
    return 0 if found else 1

