"""Backfill and reconciliation: ended conversations from the Analytics API into the pipeline.

Each conversation with a billable wrap-up code goes onto `genesys.events` as a
`backfill` event and takes the same path as the live events; the ledger makes running
it again (or overlapping with live events) harmless.
"""
from __future__ import annotations

from app.kafka import client_kwargs  # noqa: E402

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from adapters.genesys import GenesysClient, WrapupCodes
from app.logs import get_logger
from app.settings import get_settings
from domain.assembly import analytics_facts, deciding_code, missing, wrapup_ids
from schemas.genesys import GenesysEvent

log = get_logger("backfill")
Send = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)

    def line(self) -> str:
        c = self.counts
        return (f"{c['seen']} conversations: {c['published']} billable published, {c['not_billable']} not billable, "
                f"{c['not_ended']} not ended, {c['no_wrapup']} without a wrap-up code")


async def backfill(client: GenesysClient, codes: WrapupCodes, since: datetime, until: datetime, send: Send,
                   billable: frozenset[str], progress: Callable[[Summary], None] | None = None,
                   dry_run: bool = False) -> Summary:
    summary = Summary()
    async for conv in client.query_conversations(since, until):
        summary.counts["seen"] += 1
        facts = analytics_facts(conv)
        if facts is None:
            summary.counts["not_ended"] += 1
        elif missing(facts) and not wrapup_ids(facts):
            summary.counts["no_wrapup"] += 1
        else:
            named = [(cid, await codes.name(cid)) for cid in wrapup_ids(facts)]
            code = deciding_code(named, billable)
            is_billable = code is not None and (
                code[0].casefold() in billable or (code[1] or "").strip().casefold() in billable)
            unknown = any(name is None for _, name in named)
            if is_billable or unknown:  # unknown codes go through: the assembler sends them to review
                if not dry_run:
                    record = GenesysEvent(kind="backfill", receivedAt=datetime.now(timezone.utc), payload=conv)
                    await send(facts.conversationId, record.model_dump_json().encode())
                summary.counts["published"] += 1
            else:
                summary.counts["not_billable"] += 1
        if progress:
            progress(summary)
    return summary


def parse_time(value: str) -> datetime:
    """ISO-8601; a value without an offset is taken as UTC; `-6h`/`-2d` count back from now."""
    value = value.strip()
    if value.startswith("-") and value[-1] in "hd" and value[1:-1].isdigit():
        n = int(value[1:-1])
        return datetime.now(timezone.utc) - (timedelta(hours=n) if value[-1] == "h" else timedelta(days=n))
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def main(argv: list[str]) -> int:
    """`callbill backfill --since … --until … [--dry-run]`."""
    import argparse

    from aiokafka import AIOKafkaProducer

    from app.genesys import client as make_client, wrapup_codes
    from app.topics import ensure_topics, topic_name

    p = argparse.ArgumentParser(prog="callbill backfill", description=__doc__)
    p.add_argument("--since", required=True, help="ISO-8601 time (UTC if no offset) or -6h / -2d")
    p.add_argument("--until", default=None, help="ISO-8601 time; default now")
    p.add_argument("--dry-run", action="store_true", help="count what would be published, publish nothing")
    args = p.parse_args(argv)
    s = get_settings()
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else datetime.now(timezone.utc)
    if until <= since:
        print("callbill backfill: --until must be after --since", file=sys.stderr)
        return 2
    api = make_client()
    if api is None:
        print("callbill backfill: set CALLBILL_GENESYS_CLIENT_ID and CALLBILL_GENESYS_CLIENT_SECRET", file=sys.stderr)
        return 2

    async def run() -> Summary:
        producer = None
        if not args.dry_run:
            await ensure_topics()
            producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", enable_idempotence=True,
                                        **client_kwargs())
            await producer.start()

        async def send(key: str, value: bytes) -> None:
            assert producer is not None
            await producer.send_and_wait(topic_name("genesys.events"), value=value, key=key.encode())

        def progress(sm: Summary) -> None:
            c = sm.counts
            print(f"\r  {c['seen']} conversations read, {c['published']} published", end="", flush=True)
        try:
            return await backfill(api, wrapup_codes(), since, until, send, s.billable_code_set, progress, args.dry_run)
        finally:
            print()
            if producer:
                await producer.stop()
            await api.aclose()

    print(f"backfill {since.isoformat()} .. {until.isoformat()}{' (dry run)' if args.dry_run else ''}")
    summary = asyncio.run(run())
    print(summary.line())
    return 0
