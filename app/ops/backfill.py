"""`callbill backfill`: ended conversations from the Analytics API into the pipeline.

Each conversation with a billable wrap-up code goes onto `genesys.events` as a
`backfill` event and takes the same path as the live events; the ledger makes running
it again (or overlapping with live events) harmless.
"""
from __future__ import annotations

from runtime.kafka import client_kwargs  # noqa: E402

import asyncio
import sys
from datetime import datetime, timedelta, timezone

from agents.reconcile import Summary, backfill
from runtime.settings import get_settings

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

    from app.bootstrap import build_services
    from runtime.topics import ensure_topics, topic_name

    p = argparse.ArgumentParser(prog="callbill backfill", description=__doc__)
    p.add_argument("--since", required=True, help="ISO-8601 time (UTC if no offset) or -6h / -2d")
    p.add_argument("--until", default=None, help="ISO-8601 time; default now")
    p.add_argument("--dry-run", action="store_true", help="count what would be published, publish nothing")
    args = p.parse_args(argv)
    s = get_settings()
    services = build_services(s)
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else datetime.now(timezone.utc)
    if until <= since:
        print("callbill backfill: --until must be after --since", file=sys.stderr)
        return 2
    api = services.genesys
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
            return await backfill(api, services.wrapup_codes, since, until, send, s.billable_code_set, progress, args.dry_run)
        finally:
            print()
            if producer:
                await producer.stop()
            await api.aclose()

    print(f"backfill {since.isoformat()} .. {until.isoformat()}{' (dry run)' if args.dry_run else ''}")
    summary = asyncio.run(run())
    print(summary.line())
    return 0
