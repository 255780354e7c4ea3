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
    # topic/partition/offset of the message that made this entry. The same message seen
    # again is a redelivery after a crash (its forward may not have landed), not a
    # duplicate: it is decided afresh, and later stages are idempotent on interactionId.
    source: str | None = None
    # billing: the number, the invoice as issued (republished if its message is redelivered,
    # since the first publish may not have landed) and the message that billed it.
    invoiceNumber: str | None = None
    invoice: dict | None = None
    billingSource: str | None = None
    draft: dict | None = None  # ERP mode: what the first request was built from, resent as is
    # documents: the stored object and the message that stored it
    documentKey: str | None = None
    document: dict | None = None
    documentSource: str | None = None
    # delivery: the attempt that may be sent (a soft bounce allows the next one), the
    # intent written before sending and the outcome after. An intent of the current
    # attempt without its outcome means a send may have happened: never resent blindly.
    deliveryAttempt: int = 1
    deliveryIntent: dict | None = None
    delivery: dict | None = None
    deliverySource: str | None = None  # the document message this outcome (or unconfirmed review) records
    softBounces: int = 0
    reissued: list[str] = []  # replay runs (--force-reissue) whose new delivery attempt was opened
    # the "Processing Received" acknowledgement, under the same rule
    ackIntent: dict | None = None
    ack: dict | None = None

    def touched(self, now: datetime, **changes) -> "LedgerEntry":
        return self.model_copy(update={"updatedAt": now, **changes})
