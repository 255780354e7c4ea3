"""Invoices: the ERP request (the guide's shape), its answer, and what callbill.invoices carries.

Amounts are Decimal; on topics they are JSON strings ("150.00"), so nothing passes
through a float. The ERP request writes them as exact JSON numbers (`erp_json`).
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator



class LineItem(BaseModel):
    description: str
    quantity: int
    unit: str
    unitPrice: Decimal
    amount: Decimal
    # fields added after 0.1.0 are left out at their default: an older invoice reads and writes back unchanged
    taxCategory: Literal["standard", "reduced"] = Field("standard", exclude_if=lambda v: v == "standard")


class TaxAmount(BaseModel):
    name: str
    jurisdiction: str
    rate: Decimal
    base: Decimal  # the lines of this category: the taxable amount per rate
    amount: Decimal
    category: Literal["reduced"] | None = Field(None, exclude_if=lambda v: v is None)  # None: standard
    vatCategory: Literal["E"] | None = Field(None, exclude_if=lambda v: v is None)  # E: exempt (EN 16931)
    exemptionReason: str | None = Field(None, exclude_if=lambda v: v is None)
    note: str | None = None


class Totals(BaseModel):
    """What an invoice, a credit note and a priced draft all carry: lines, taxes per rate, totals."""

    currency: str
    lineItems: list[LineItem]
    subtotal: Decimal
    taxes: list[TaxAmount]
    taxTotal: Decimal
    total: Decimal


class ErpLineItem(BaseModel):
    description: str
    quantity: int
    unitPrice: Decimal


class ErpInvoiceRequest(BaseModel):
    """POST /v1/billing/generate-invoice. Deterministic for an interaction, so a retry
    with the same Idempotency-Key carries the same body (the ERP answers 409 otherwise)."""

    sourceInteractionId: str
    requestedAmount: Decimal  # the total the customer pays, tax included
    currency: str
    lineItems: list[ErpLineItem]
    customerReference: str
    deliveryChannel: Literal["EMAIL", "SMS", "POSTAL", "NONE"]
    priority: Literal["LOW", "NORMAL", "HIGH"] = "NORMAL"
    # beyond the guide's example: the dates already in the customer's timezone (the
    # guide's trap), and the taxes callbill computed, so the ERP needs no conversion.
    issueDate: date | None = None
    serviceDate: date | None = None
    dueDate: date | None = None
    timezone: str | None = None
    subtotal: Decimal | None = None
    taxes: list[TaxAmount] = Field(default_factory=list)


# what an ERP's invoice number may be: it becomes a mail subject, a PDF's text and an object
# key, so no spaces, no line breaks, no slashes
ERP_NUMBER = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"


class ErpAmounts(BaseModel):
    """The amounts of an ERP's answer (an invoice or a credit note), checked to add up before
    anything customer-facing is built from them; domain/billing.erp_amount_problems checks them
    against the request."""

    model_config = ConfigDict(extra="ignore")

    currency: str | None = None
    subtotal: Decimal | None = Field(None, ge=0)
    taxTotal: Decimal | None = Field(None, ge=0)
    total: Decimal = Field(ge=0)

    @model_validator(mode="after")
    def _adds_up(self):
        if self.subtotal is not None and self.taxTotal is not None and self.subtotal + self.taxTotal != self.total:
            raise ValueError("total is not subtotal + taxTotal")
        return self


class ErpInvoiceResponse(ErpAmounts):
    """The ERP's answer to an invoice."""

    invoiceNumber: str = Field(pattern=ERP_NUMBER)
    invoiceId: str | None = Field(None, pattern=r"^[A-Za-z0-9._:\-]{1,128}$")


CREDIT_NOTE = "creditNote"


def record_id(interaction_id: str, number: str, document_type: str = "invoice") -> str:
    """The ledger and review key of a document: an invoice is its interaction's record; a
    credit note is `<interactionId>~<creditNumber>` (a '~' never occurs in an interaction id),
    kept on its invoice's partition because every message about it is keyed by the
    interactionId (agents/context.py: kafka_key)."""
    return interaction_id if document_type != CREDIT_NOTE else f"{interaction_id}~{number}"


def kafka_key(record: str) -> str:
    """The Kafka key of a record id: its interaction id."""
    return record.split("~", 1)[0]


class PrecedingInvoice(BaseModel):
    """A credit note's invoice (EN 16931 BG-3)."""

    invoiceNumber: str
    issueDate: date


class Invoice(Totals):
    """An issued invoice, or a credit note in the same shape, on callbill.invoices (key: interactionId)."""

    interactionId: str
    invoiceNumber: str
    series: str
    issuer: Literal["callbill", "erp"]
    erpInvoiceId: str | None = None
    customerReference: str
    rateId: str
    notes: list[str] = Field(default_factory=list)
    timezone: str
    serviceAt: AwareDatetime  # UTC
    serviceAtLocal: datetime  # the customer's local time, with offset
    serviceDate: date  # local
    issueDate: date  # local
    dueDate: date  # local
    paymentTermsDays: int
    deliveryChannel: Literal["EMAIL", "SMS", "POSTAL", "NONE"]
    issuedAt: AwareDatetime  # UTC, when callbill issued it
    # the customer's language and the legal content (an invoice issued before these fields reads as English, B2C)
    locale: str = Field("en", exclude_if=lambda v: v == "en")  # BCP 47: the formats' locale (domain/i18n.py)
    buyerTaxId: str | None = Field(None, exclude_if=lambda v: v is None)  # printed (EU: the buyer's VAT number)
    reverseCharge: bool = Field(False, exclude_if=lambda v: not v)  # art. 196: the buyer accounts for the VAT
    # a credit note (issue 19): its own number and series, the invoice it corrects, the reason in `notes`
    documentType: Literal["invoice", "creditNote"] = Field("invoice", exclude_if=lambda v: v == "invoice")
    precedingInvoice: PrecedingInvoice | None = Field(None, exclude_if=lambda v: v is None)

    @property
    def is_credit_note(self) -> bool:
        return self.documentType == CREDIT_NOTE

    @property
    def record_id(self) -> str:
        return record_id(self.interactionId, self.invoiceNumber, self.documentType)


_DEC = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')


def erp_json(model: BaseModel) -> bytes:
    """JSON with Decimal amounts as exact JSON numbers (150.00, not "150.00" or 150.0)."""
    def mark(value: object) -> object:
        if isinstance(value, Decimal):
            return f"\u0000dec:{value:f}"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    data = mark(model.model_dump(mode="python", exclude_none=True))
    text = json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return _DEC.sub(r"\1", text).encode()
