"""A stored invoice (or credit note) document on callbill.documents (key: interactionId)."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from schemas.events import utcnow
from schemas.invoices import record_id


class EInvoiceStored(BaseModel):
    """The structured e-invoice stored beside the PDF (docs/einvoices.md)."""

    format: Literal["ubl"]  # UBL 2.1, EN 16931, Peppol BIS Billing 3.0 ids
    key: str  # invoices/<yyyy>/<mm>/<invoiceNumber>.xml
    sha256: str
    size: int
    url: str
    expiresAt: AwareDatetime
    renewUrl: str


class DocumentStored(BaseModel):
    interactionId: str
    invoiceNumber: str
    key: str  # invoices/<yyyy>/<mm>/<invoiceNumber>.pdf
    sha256: str
    size: int
    contentType: str = "application/pdf"
    storage: Literal["file", "s3"]
    url: str  # signed, expires at expiresAt
    expiresAt: AwareDatetime
    renewUrl: str  # long-lived: redirects to a fresh signed link
    einvoice: EInvoiceStored | None = Field(None, exclude_if=lambda v: v is None)  # UBL beside the PDF
    facturx: bool = Field(False, exclude_if=lambda v: not v)  # the PDF itself is Factur-X (CII inside, PDF/A-3)
    documentType: Literal["invoice", "creditNote"] = Field("invoice", exclude_if=lambda v: v == "invoice")
    time: AwareDatetime = Field(default_factory=utcnow)

    @property
    def record_id(self) -> str:
        return record_id(self.interactionId, self.invoiceNumber, self.documentType)
