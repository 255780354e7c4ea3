"""The pending table: conversationId -> what is known so far (domain.assembly.Pending).

Bounded: an entry is replaced by a small `done` marker once the conversation is emitted
or sent to review, and the marker is deleted after CALLBILL_ASSEMBLY_DONE_TTL.
"""
from __future__ import annotations

from app.main import app, settings
from domain.assembly import Pending

pending = app.Table(
    "pending",
    key_type=str,
    default=None,
    partitions=settings.topic_partitions,
    help="conversationId -> partial Genesys conversation awaiting its other events",
)


def get_pending(conversation_id: str) -> Pending | None:
    raw = pending.get(conversation_id)
    return Pending.model_validate(raw) if raw else None


def put_pending(p: Pending) -> None:
    pending[p.conversationId] = p.model_dump(mode="json", exclude_defaults=True)


def drop_pending(conversation_id: str) -> None:
    pending.pop(conversation_id, None)
