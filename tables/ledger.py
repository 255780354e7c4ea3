"""The ledger: interactionId -> LedgerEntry, the dedupe table and the audit anchor.

Co-partitioned with the pipeline topics (same partition count, same key), so each
entry lives on the worker that processes its interaction; the changelog topic restores
it after a restart or a rebalance.
"""
from __future__ import annotations

from app.main import app, settings
from domain.ledger import LedgerEntry

ledger = app.Table(
    "ledger",
    key_type=str,
    default=None,
    partitions=settings.topic_partitions,
    help="interactionId -> ledger entry (state, duplicates, reason)",
)


def get_entry(interaction_id: str) -> LedgerEntry | None:
    raw = ledger.get(interaction_id)
    return LedgerEntry.model_validate(raw) if raw else None


def put_entry(interaction_id: str, entry: LedgerEntry) -> None:
    ledger[interaction_id] = entry.model_dump(mode="json")


def update_entry(interaction_id: str, **changes) -> LedgerEntry | None:
    """Read and write in one step (no await between), so concurrent stages (delivery and
    acknowledgement) never overwrite each other's fields. None when there is no entry."""
    from schemas.events import utcnow

    entry = get_entry(interaction_id)
    if entry is None:
        return None
    entry = entry.touched(utcnow(), **changes)
    put_entry(interaction_id, entry)
    return entry
