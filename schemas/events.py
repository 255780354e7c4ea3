"""Values on callbill's own topics. All keyed by interactionId."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class InteractionCompleted(BaseModel):
    """One canonical record per ended interaction, whichever path it came by."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "interactionId": "gen-100000001", "source": "webhook", "customerId": "CUST-9876543",
        "startedAt": "2026-11-24T22:02:26Z", "endedAt": "2026-11-24T22:15:00Z", "durationSeconds": 754,
        "agentName": "Alex Agent", "serviceType": "Consultation Service - Level 2", "wrapupCode": "Billable Service"}]})

    interactionId: str
    source: Literal["webhook", "eventbridge", "backfill"]
    customerId: str | None = None
    externalContactId: str | None = None
    startedAt: AwareDatetime | None = None
    endedAt: AwareDatetime
    durationSeconds: int = Field(ge=0)
    agentName: str | None = None
    serviceType: str | None = None
    wrapupCode: str | None = None
    wrapupCodeId: str | None = None
    mediaType: str | None = None


class AuditEvent(BaseModel):
    """A decision, for the audit trail. Never carries personal data."""

    interactionId: str
    stage: str
    outcome: str
    reason: str | None = None
    time: AwareDatetime = Field(default_factory=utcnow)
    actor: str = "callbill"
    count: int | None = None


class ReviewItem(BaseModel):
    """Work a person must look at; carries what the reviewer needs to fix and resubmit."""

    interactionId: str
    stage: str
    reason: str
    detail: str | None = None
    time: AwareDatetime = Field(default_factory=utcnow)
    interaction: dict[str, Any] | None = None


class DeadLetter(BaseModel):
    """A message no stage could read, kept whole so it can be fixed and replayed."""

    stage: str
    reason: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None  # base64
    value: str | None = None  # base64 of the raw bytes
    time: AwareDatetime = Field(default_factory=utcnow)


class RetryItem(BaseModel):
    """Work parked on callbill.retry after a retryable failure; never dropped.

    The retry agent republishes `payload` to `topic` once `notBefore` has passed.
    """

    interactionId: str
    stage: str
    topic: str
    attempt: int = Field(ge=1)
    notBefore: AwareDatetime
    reason: str
    payload: dict[str, Any]
    time: AwareDatetime = Field(default_factory=utcnow)


class ReviewRecord(BaseModel):
    """The review queue's item for one interaction (compacted callbill.reviews, key iid).

    Personal data stays out: the reason, the stage and the detail written by the stage
    (which names fields, never values), the age, and who acted.
    """

    interactionId: str
    stage: str
    reason: str
    detail: str | None = None
    status: Literal["OPEN", "RESUBMITTED", "DISMISSED"] = "OPEN"
    openedAt: AwareDatetime
    updatedAt: AwareDatetime
    count: int = 1  # how many times a stage sent it to review
    actor: str | None = None  # who resubmitted or dismissed it
    note: str | None = None  # the reviewer's note (dismissals)
    interaction: dict[str, Any] | None = None  # what a resubmit sends back (intake, billing)


class ReviewAction(BaseModel):
    """An operator's decision on callbill.review-actions (key iid), applied by agents/review.py."""

    interactionId: str
    action: Literal["resubmit", "dismiss"]
    actor: str = Field(min_length=1, max_length=100)
    note: str | None = Field(None, max_length=1000)
    customerId: str | None = Field(None, max_length=128)  # MISSING_CUSTOMER: the customer to bill
    time: AwareDatetime = Field(default_factory=utcnow)


class OperatorSession(BaseModel):
    """A signed-in operator on the compacted callbill.sessions (key: SHA-256 of the session id,
    never the id itself); a null value ends the session (sign-out)."""

    name: str = Field(min_length=1, max_length=100)
    issuedAt: AwareDatetime
    expiresAt: AwareDatetime
