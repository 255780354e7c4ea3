"""Backfill and reconciliation: ended conversations from the Analytics API onto genesys.events.

Each conversation with a billable wrap-up code goes onto `genesys.events` as a
`backfill` event and takes the same path as the live events; the ledger makes running
it again (or overlapping with live events) harmless. Used by the leader's reconciliation
timer (agents/assemble.py) and by `callbill backfill` (app/ops/backfill.py).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

from adapters.genesys import GenesysClient, WrapupCodes
from domain.assembly import analytics_facts, deciding_code, missing, wrapup_ids
from schemas.genesys import GenesysEvent

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


