"""The ledger entry of one interaction: the dedupe record and the audit anchor."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, model_serializer

from domain.billing import Draft
from schemas.documents import DocumentStored
from schemas.invoices import Invoice


class State(StrEnum):
    RECEIVED = "RECEIVED"
    BILLED = "BILLED"
    DOCUMENTED = "DOCUMENTED"
    DELIVERED = "DELIVERED"
    REVIEW = "REVIEW"


class SendRecord(BaseModel):
    """A send's intent ("about to send") or outcome, as the ledger keeps it.

    Written with exactly the keys that were set (a key set to None stays, one never set is
    absent), so an entry reads and writes back unchanged: `bounceStatus` present means the
    refusal was a bounce, even when the server gave no status. The delivery record of a
    send carries the Delivery fields beside these (kept as they are).
    """

    model_config = ConfigDict(extra="allow")

    channel: str | None = None
    attempt: int = 1
    at: str | None = None  # ISO time, as written
    status: str | None = None  # SENT or FAILED (outcomes)
    reason: str | None = None
    bounceStatus: str | None = None

    @model_serializer(mode="wrap")
    def _as_set(self, handler: Any) -> dict[str, Any]:
        keep = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in handler(self).items() if k in keep}

    @property
    def bounced(self) -> bool:
        return "bounceStatus" in self.model_fields_set


class CreditRecord(BaseModel):
    """A credit note issued on this entry's invoice: the request's key, so a repeat is the same note."""

    idempotencyKey: str
    creditNumber: str
    total: Decimal  # tax included
    issuedAt: AwareDatetime
    source: str | None = None  # the request message that issued it (read again: republished)


class LedgerEntry(BaseModel):
    # frozen: tables/ledger.py hands out the parsed entry it wrote; a change is a new entry (touched)
    model_config = ConfigDict(frozen=True)

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
    invoice: Invoice | None = None
    billingSource: str | None = None
    draft: Draft | None = None  # ERP mode: what the first request was built from, resent as is; None once issued
    # documents: the stored object and the message that stored it
    documentKey: str | None = None
    document: DocumentStored | None = None
    documentSource: str | None = None
    # delivery: the attempt that may be sent (a soft bounce allows the next one), the
    # intent written before sending and the outcome after. An intent of the current
    # attempt without its outcome means a send may have happened: never resent blindly.
    deliveryAttempt: int = 1
    deliveryIntent: SendRecord | None = None
    delivery: SendRecord | None = None
    deliverySource: str | None = None  # the document message this outcome (or unconfirmed review) records
    softBounces: int = 0
    bounceEvents: list[str] = []  # the provider event ids seen (the last 20): a replayed notification counts once
    bounceSource: str | None = None  # the bounce message that recorded the last of them (read again: not a replay)
    reissued: list[str] = []  # replay runs (--force-reissue) whose new delivery attempt was opened
    # the "Processing Received" acknowledgement, under the same rule
    ackIntent: SendRecord | None = None
    ack: SendRecord | None = None
    # the credit notes on this invoice (each has its own entry, `<interactionId>~<creditNumber>`)
    credits: list[CreditRecord] = []

    @property
    def credited(self) -> Decimal:
        """Everything credited on the invoice so far, tax included."""
        return sum((c.total for c in self.credits), Decimal(0))

    def touched(self, now: datetime, **changes: Any) -> "LedgerEntry":
        """A copy with `changes` (models or their JSON form), validated: fields stay typed."""
        return LedgerEntry.model_validate({**dict(self), "updatedAt": now, **changes})
