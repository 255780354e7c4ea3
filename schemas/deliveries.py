"""Delivery records: outcomes (callbill.deliveries), print jobs (callbill.postal), bounces
(callbill.bounces), suppressions (callbill.suppressions) and acknowledgement timers
(callbill.acks). Outcomes name the channel and the provider's id, never the address."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import utcnow

Channel = Literal["EMAIL", "SMS", "POSTAL"]


class Delivery(BaseModel):
    interactionId: str
    invoiceNumber: str | None = None  # None for an acknowledgement
    kind: Literal["invoice", "ack", "creditNote"] = "invoice"
    channel: Channel
    transport: Literal["smtp", "genesys", "postal"]
    providerId: str  # SMTP queue id, Genesys conversation id, or the postal job's topic/partition/offset
    messageId: str | None = None  # the email's Message-ID
    attempt: int = 1
    time: AwareDatetime = Field(default_factory=utcnow)


class PostalRecipient(BaseModel):
    name: str | None = None
    lines: list[str]
    country: str


class PostalJob(BaseModel):
    """What a print vendor needs: the address block and the PDF (key, and a link valid 24 h)."""

    interactionId: str
    invoiceNumber: str
    documentKey: str
    storage: Literal["file", "s3"]
    url: str
    expiresAt: AwareDatetime
    sha256: str
    recipient: PostalRecipient
    locale: str = "en"  # BCP 47: the letter's language (the PDF's)
    coverText: str | None = None  # for the cover page, in that language
    copies: int = 1
    time: AwareDatetime = Field(default_factory=utcnow)


class Bounce(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "address": "jane@example.com", "kind": "hard", "status": "5.1.1",
        "diagnostic": "smtp; 550 5.1.1 user unknown", "interactionId": "gen-100000001", "source": "dsn",
        "time": "2026-11-24T22:16:05Z"}]})

    address: str  # normalized, lower case
    kind: Literal["hard", "soft", "complaint"]
    status: str | None = None
    diagnostic: str | None = None
    interactionId: str | None = None
    messageId: str | None = None
    source: Literal["smtp", "dsn", "ses", "sendgrid"]
    eventId: str | None = Field(None, max_length=256)  # the provider's event id: a replay is counted once
    time: AwareDatetime = Field(default_factory=utcnow)


class Suppression(BaseModel):
    """Key: the address. A null value lifts the suppression."""

    address: str
    reason: Literal["hard", "complaint", "soft-limit"]
    status: str | None = None
    source: str
    interactionId: str | None = None
    time: AwareDatetime = Field(default_factory=utcnow)


class AckDue(BaseModel):
    """When the "Processing Received" acknowledgement is due, unless the invoice came first."""

    interactionId: str
    customerId: str
    intakeAt: AwareDatetime
    dueAt: AwareDatetime
