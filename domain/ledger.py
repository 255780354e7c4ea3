"""The ledger entry of one interaction: the dedupe record and the audit anchor."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel


class State(StrEnum):
    RECEIVED = "RECEIVED"
    BILLED = "BILLED"
    DOCUMENTED = "DOCUMENTED"
    DELIVERED = "DELIVERED"
    REVIEW = "REVIEW"


class LedgerEntry(BaseModel):
    state: State
    firstSeen: AwareDatetime
    updatedAt: AwareDatetime
    reason: str | None = None
    duplicates: int = 0
    # False between writing RECEIVED and Kafka acknowledging the forward: a redelivered
    # message then forwards again instead of being taken for a duplicate.
    forwarded: bool = False

    def touched(self, now: datetime, **changes) -> "LedgerEntry":
        return self.model_copy(update={"updatedAt": now, **changes})
