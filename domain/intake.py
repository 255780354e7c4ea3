"""Which interactions go on to billing: billable, with a customer, and not seen before."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.ledger import LedgerEntry, State
from schemas.events import InteractionCompleted
from schemas.genesys import WebhookPayload


class Outcome(StrEnum):
    FORWARD = "FORWARDED"
    NOT_BILLABLE = "NOT_BILLABLE"
    MISSING_CUSTOMER = "MISSING_CUSTOMER"
    DUPLICATE = "DUPLICATE"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    entry: LedgerEntry | None  # the ledger entry to write; None: leave the ledger alone
    # FORWARD of a message read again after a crash whose forward had already landed (a
    # later stage has moved the entry on): its audit is written again, nothing is sent
    again: bool = False


def interaction_from_webhook(p: WebhookPayload) -> InteractionCompleted:
    """The guide's payload carries the start time and the duration; the end follows."""
    return InteractionCompleted(
        interactionId=p.interactionId,
        source="webhook",
        customerId=p.customerId or None,
        startedAt=p.timestamp,
        endedAt=p.timestamp + timedelta(seconds=p.durationSeconds),
        durationSeconds=p.durationSeconds,
        agentName=p.agentName,
        serviceType=p.serviceType,
        wrapupCode=p.billingCode,
    )


def is_billable(i: InteractionCompleted, billable_codes: frozenset[str]) -> bool:
    """Billable codes may be configured by wrap-up code name or id."""
    return any(
        code is not None and code.strip().casefold() in billable_codes
        for code in (i.wrapupCode, i.wrapupCodeId)
    )


def decide(
    i: InteractionCompleted,
    entry: LedgerEntry | None,
    billable_codes: frozenset[str],
    now: datetime,
    source: str | None = None,
) -> Decision:
    if not is_billable(i, billable_codes):
        return Decision(Outcome.NOT_BILLABLE, None)
    has_customer = bool(i.customerId and i.customerId.strip())
    if entry is not None:
        # only the intake's own review (no customer) is reopened by a fixed event; a review
        # opened by a later stage (billing, documents) is theirs to resubmit
        own_review = entry.state is State.REVIEW and entry.reason == Outcome.MISSING_CUSTOMER
        retry_review = own_review and has_customer
        same_message = source is not None and entry.source == source
        if same_message and not (entry.state is State.RECEIVED or own_review):
            # this very message again, after billing (or later) took it: not a duplicate
            return Decision(Outcome.FORWARD, None, again=True)
        if not (retry_review or same_message):
            return Decision(Outcome.DUPLICATE, entry.touched(now, duplicates=entry.duplicates + 1))
    first = entry.firstSeen if entry else now
    if not has_customer:
        return Decision(
            Outcome.MISSING_CUSTOMER,
            LedgerEntry(state=State.REVIEW, firstSeen=first, updatedAt=now, reason=Outcome.MISSING_CUSTOMER,
                        source=source, duplicates=entry.duplicates if entry else 0),
        )
    return Decision(
        Outcome.FORWARD,
        LedgerEntry(state=State.RECEIVED, firstSeen=first, updatedAt=now, source=source,
                    duplicates=entry.duplicates if entry else 0),
    )
