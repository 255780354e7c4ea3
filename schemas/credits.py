"""Credit notes: the request (callbill.credit-requests) and its answer (callbill.credit-notes).

Both are keyed by the interactionId of the invoice being corrected, so the request is
handled on the partition that holds that invoice's ledger entry (docs/credit-notes.md).
"""
from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.events import utcnow
from schemas.genesys import ID_PATTERN
from schemas.invoices import ERP_NUMBER, ErpAmounts, ErpLineItem, TaxAmount

KEY_PATTERN = r"^[A-Za-z0-9._:\-]{8,64}$"


class CreditRequest(BaseModel):
    """An operator's request to correct an issued invoice, in full or in part."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "interactionId": "gen-100000001", "invoiceNumber": "INV02-000001", "reason": "Disputed call: wrong rate",
        "lines": [1], "actor": "ops@example.com"}]})

    interactionId: str = Field(pattern=ID_PATTERN)
    invoiceNumber: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)
    lines: list[int] | None = Field(None, min_length=1, description="1-based line numbers to credit in full")
    amount: Decimal | None = Field(None, gt=0, description="a net amount (before tax) to credit")
    idempotencyKey: str | None = Field(None, pattern=KEY_PATTERN)
    actor: str = Field("callbill", max_length=200)
    time: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _one_way(self) -> "CreditRequest":
        if self.lines is not None and self.amount is not None:
            raise ValueError("give lines or amount, not both")
        if "\n" in self.reason or "\r" in self.reason:
            raise ValueError("reason must be one line")
        return self

    def key(self) -> str:
        """The given key, else one derived from what is asked (the same request, the same key)."""
        if self.idempotencyKey:
            return self.idempotencyKey
        what = f"{self.interactionId}|{self.invoiceNumber}|{self.reason}|{self.lines}|{self.amount}"
        return "cn-" + hashlib.sha256(what.encode()).hexdigest()[:24]


class CreditOutcome(BaseModel):
    """What became of a request: the credit note issued (again, for a repeated key), refused
    with a reason code, waiting for the ERP, or in review. No personal data."""

    interactionId: str
    invoiceNumber: str
    idempotencyKey: str
    status: Literal["ISSUED", "REFUSED", "WAITING", "REVIEW"]
    creditNumber: str | None = None
    currency: str | None = None
    total: Decimal | None = None  # the credit note's total, tax included
    creditedTotal: Decimal | None = None  # everything credited on the invoice so far
    reason: str | None = None  # the refusal's or review's code (EXCEEDS_INVOICE, ERP_REJECTED:…)
    detail: str | None = None
    again: bool = False  # the key was seen before: this is the same credit note
    time: AwareDatetime = Field(default_factory=utcnow)


class ErpCreditNoteRequest(BaseModel):
    """POST /v1/billing/credit-notes (Idempotency-Key: the request's key). Built from the
    credit note callbill computed at the invoice's own rates, so a retry sends the same body."""

    sourceInvoiceNumber: str
    sourceInteractionId: str
    reason: str
    currency: str
    lineItems: list[ErpLineItem]
    subtotal: Decimal
    taxes: list[TaxAmount] = Field(default_factory=list)
    requestedAmount: Decimal  # the credit note's total, tax included
    issueDate: date


class ErpCreditNoteResponse(ErpAmounts):
    """The ERP's answer to a credit note."""

    creditNoteNumber: str = Field(pattern=ERP_NUMBER)
    creditNoteId: str | None = Field(None, pattern=r"^[A-Za-z0-9._:\-]{1,128}$")
