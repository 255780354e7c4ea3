"""A stored invoice document on callbill.documents (key: interactionId)."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from schemas.events import utcnow


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
    time: AwareDatetime = Field(default_factory=utcnow)
