"""The ledger: interactionId -> LedgerEntry, the dedupe table and the audit anchor.

Co-partitioned with the pipeline topics (same partition count, same key), so each
entry lives on the worker that processes its interaction; the changelog topic restores
it after a restart or a rebalance. The table's name ("ledger") is its changelog topic's:
it never changes, or a deployment would lose its entries.
"""
from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import Any

from domain.ledger import LedgerEntry
from schemas.events import utcnow

NAME = "ledger"
# fields added after the recorded 0.1.0 ledger (tests/stages/test_ledger_compat.py): written
# only once set, so an entry that never needed them keeps the shape an older worker wrote
WRITTEN_WHEN_SET = ("bounceEvents", "bounceSource", "credits")


def define(app: Any, partitions: int) -> Any:
    return app.Table(NAME, key_type=str, default=None, partitions=partitions,
                     help="interactionId -> ledger entry (state, duplicates, reason)")


class Ledger:
    """Typed access to the table (a Faust table in a worker, a dict in a test)."""

    def __init__(self, table: MutableMapping[str, Any], clock: Callable[[], datetime] = utcnow) -> None:
        self.table = table
        self.clock = clock

    def get(self, interaction_id: str) -> LedgerEntry | None:
        raw = self.table.get(interaction_id)
        return LedgerEntry.model_validate(raw) if raw else None

    def put(self, interaction_id: str, entry: LedgerEntry) -> None:
        value = entry.model_dump(mode="json")
        for name in WRITTEN_WHEN_SET:
            if not value.get(name):
                value.pop(name, None)
        self.table[interaction_id] = value

    def update(self, interaction_id: str, **changes: Any) -> LedgerEntry | None:
        """Read and write in one step (no await between), so concurrent stages (delivery and
        acknowledgement) never overwrite each other's fields. None when there is no entry."""
        entry = self.get(interaction_id)
        if entry is None:
            return None
        entry = entry.touched(self.clock(), **changes)
        self.put(interaction_id, entry)
        return entry
