"""The pending table: conversationId -> what is known so far (domain.assembly.Pending).

Bounded: an entry is replaced by a small `done` marker once the conversation is emitted
or sent to review, and the marker is deleted after CALLBILL_ASSEMBLY_DONE_TTL.
"""
from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from domain.assembly import Pending

NAME = "pending"


def define(app: Any, partitions: int, options: dict[str, Any] | None = None) -> Any:
    return app.Table(NAME, key_type=str, default=None, partitions=partitions, options=dict(options or {}),
                     help="conversationId -> partial Genesys conversation awaiting its other events")


class PendingTable:
    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def get(self, conversation_id: str) -> Pending | None:
        raw = self.table.get(conversation_id)
        return Pending.model_validate(raw) if raw else None

    def put(self, p: Pending) -> None:
        self.table[p.conversationId] = p.model_dump(mode="json", exclude_defaults=True)

    def drop(self, conversation_id: str) -> None:
        self.table.pop(conversation_id, None)

    def items(self) -> Iterator[tuple[str, Pending]]:
        for cid, raw in list(self.table.items()):
            if raw:
                yield cid, Pending.model_validate(raw)
