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
SHARED = ("invoice", "draft", "document")  # the large parts, set once and carried by every later write


def define(app: Any, partitions: int, options: dict[str, Any] | None = None) -> Any:
    """`options`: the store's (runtime/settings.py table_store_options: RocksDB's memory bounds)."""
    return app.Table(NAME, key_type=str, default=None, partitions=partitions, options=dict(options or {}),
                     help="interactionId -> ledger entry (state, duplicates, reason)")


class Ledger:
    """Typed access to the table (a Faust table in a worker, a dict in a test).

    An invoice's entry is read several times by each stage (before and after every await),
    and each read validated the whole entry, invoice included: a sixth of the worker's CPU
    in the profile of bench.e2e. So the entries this worker wrote last are kept parsed, and
    a read returns the parsed one while the table still holds the very value written with
    it: the same object (the memory store), or an equal one (a RocksDB store decodes a new
    dict at every read; comparing it is a fraction of validating it). A changelog recovery
    or another writer that changed the entry installs a different value, which is validated
    afresh. Entries are frozen, so a cached one cannot be changed behind the table's back."""

    # parsed entries kept: the ones in flight through the stages. Each holds its invoice twice
    # (parsed, and the JSON written), about 10 KB: 4,096 of them were 42 MiB of a worker's
    # memory at 50 interactions/s, for no CPU saved over 1,024 (bench.e2e soaks of 2026-12-08)
    KEEP = 1024

    def __init__(self, table: MutableMapping[str, Any], clock: Callable[[], datetime] = utcnow) -> None:
        self.table = table
        self.clock = clock
        self._parsed: dict[str, tuple[object, LedgerEntry]] = {}

    def get(self, interaction_id: str) -> LedgerEntry | None:
        raw = self._read(interaction_id)
        if not raw:
            return None
        kept = self._parsed.get(interaction_id)
        if kept is not None and (kept[0] is raw or kept[0] == raw):
            return kept[1]
        return LedgerEntry.model_validate(raw)

    def _read(self, key: str) -> Any:
        """The table's value, read once: a Faust table's `get` asks its store twice (is the
        key there? then the value), and each ask of a RocksDB store is a read and a decode."""
        table = self.table
        store = getattr(table, "data", None)
        if store is None or isinstance(table, dict):
            return table.get(key)
        table.on_key_get(key)  # the table's sensors (the stats page) still count the read
        return store.get(key)

    def put(self, interaction_id: str, entry: LedgerEntry) -> None:
        value = self._dump(interaction_id, entry)
        for name in WRITTEN_WHEN_SET:
            if not value.get(name):
                value.pop(name, None)
        self.table[interaction_id] = value
        parsed = self._parsed
        parsed.pop(interaction_id, None)  # re-inserted last: the oldest go first
        if len(parsed) >= self.KEEP:
            del parsed[next(iter(parsed))]
        parsed[interaction_id] = (value, entry)

    def _dump(self, interaction_id: str, entry: LedgerEntry) -> dict[str, Any]:
        """The entry's JSON form; the invoice, draft and document are dumped once, not at every
        later write: a stage's write keeps them (the same objects), so their JSON from the
        write before is reused (shared, never changed: table values are replaced whole)."""
        kept = self._parsed.get(interaction_id)
        if kept is None:
            return entry.model_dump(mode="json")
        before, old = kept
        same = {name for name in SHARED if (sub := getattr(entry, name)) is not None
                and sub is getattr(old, name) and name in before}
        if not same:
            return entry.model_dump(mode="json")
        value = entry.model_dump(mode="json", exclude=same)
        return {name: before[name] if name in same else value[name]
                for name in LedgerEntry.model_fields if name in same or name in value}

    def update(self, interaction_id: str, **changes: Any) -> LedgerEntry | None:
        """Read and write in one step (no await between), so concurrent stages (delivery and
        acknowledgement) never overwrite each other's fields. None when there is no entry."""
        entry = self.get(interaction_id)
        if entry is None:
            return None
        entry = entry.touched(self.clock(), **changes)
        self.put(interaction_id, entry)
        return entry
