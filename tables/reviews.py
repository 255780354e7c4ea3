"""The review queue: a table on the workers that own each interaction, and a view on every worker.

`reviews` (a Faust table, co-partitioned with the ledger) is what the review agents read
and write; each change is also published whole to the compacted `callbill.reviews`
topic, which every worker follows (tables/compacted.py), so any worker's web page and
API can list the whole queue.
"""
from __future__ import annotations

from datetime import datetime

from collections.abc import MutableMapping
from typing import Any

from schemas.events import ReviewRecord
from tables.compacted import ModelView

NAME = "reviews"


def define(app: Any, partitions: int, options: dict[str, Any] | None = None) -> Any:
    return app.Table(NAME, key_type=str, default=None, partitions=partitions, options=dict(options or {}),
                     help="interactionId -> review record")


class ReviewTable:
    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def get(self, iid: str) -> ReviewRecord | None:
        raw = self.table.get(iid)
        return ReviewRecord.model_validate(raw) if raw else None

    def put(self, record: ReviewRecord) -> None:
        self.table[record.interactionId] = record.model_dump(mode="json")


class ReviewQueue(ModelView):
    name = "review-queue"
    topic = "callbill.reviews"
    model = ReviewRecord
    entries: dict[str, ReviewRecord]

    def select(self, status: str | None = "OPEN", reason: str | None = None, stage: str | None = None,
               min_age: float | None = None, now: datetime | None = None) -> list[ReviewRecord]:
        """Oldest first. `reason` matches a prefix (PENDING_REVIEW matches PENDING_REVIEW:BOUNCED)."""
        out = []
        for r in self.entries.values():
            if status and r.status != status:
                continue
            if reason and not r.reason.startswith(reason):
                continue
            if stage and r.stage != stage:
                continue
            if min_age is not None and now is not None and (now - r.openedAt).total_seconds() < min_age:
                continue
            out.append(r)
        return sorted(out, key=lambda r: r.openedAt)
