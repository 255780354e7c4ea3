"""callbill.interactions -> callbill.billable: billable, customer known, first time seen.

Every decision is audited; nothing is dropped silently. A missing customer goes to review
(the guide's first trap), a repeat is counted on the ledger and never forwarded.
"""
from __future__ import annotations

from datetime import timedelta

import faust

from agents.routing import audit, guarded, parse, publish, review, source_of
from app.main import app, settings, topics
from domain.intake import Outcome, decide
from domain.ledger import LedgerEntry
from schemas.deliveries import AckDue
from schemas.events import InteractionCompleted, utcnow
from tables.ledger import get_entry, put_entry

STAGE = "intake"


async def due_ack(iid: str, interaction: InteractionCompleted, entry: LedgerEntry | None) -> None:
    """The "Processing Received" acknowledgement falls due (agents/acks.py sends it once)."""
    if settings.ack_after_seconds > 0 and interaction.customerId and entry is not None:
        at = entry.firstSeen
        await publish("callbill.acks", iid, AckDue(
            interactionId=iid, customerId=interaction.customerId, intakeAt=at,
            dueAt=at + timedelta(seconds=settings.ack_after_seconds)), wait=False)


async def handle(event: faust.EventT) -> None:
    interaction: InteractionCompleted = parse(InteractionCompleted, event.value)
    iid = interaction.interactionId
    source = source_of(event)
    entry = get_entry(iid)
    decision = decide(interaction, entry, settings.billable_code_set, utcnow(), source)
    if decision.entry is not None:
        put_entry(iid, decision.entry)
    match decision.outcome:
        case Outcome.NOT_BILLABLE:
            await audit(STAGE, iid, decision.outcome, "wrap-up code is not billable")
        case Outcome.DUPLICATE:
            await audit(STAGE, iid, decision.outcome, "already in the ledger", count=decision.entry.duplicates)
        case Outcome.MISSING_CUSTOMER:
            await review(STAGE, iid, Outcome.MISSING_CUSTOMER, interaction,
                         detail="the interaction has no customer id; fix the contact and resubmit")
            await audit(STAGE, iid, "REVIEW", Outcome.MISSING_CUSTOMER)
        case Outcome.FORWARD if decision.again:
            # its forward landed (a later stage took it), its audit and ack may not have
            await audit(STAGE, iid, decision.outcome, "read again after a restart; already forwarded")
            await due_ack(iid, interaction, entry)
        case Outcome.FORWARD:
            # Not awaited: Faust flushes the producer before committing this offset, and
            # a redelivery of this very message is recognised by the ledger's `source`.
            await publish("callbill.billable", iid, interaction, wait=False)
            await due_ack(iid, interaction, decision.entry)
            await audit(STAGE, iid, decision.outcome)


@app.agent(topics["callbill.interactions"], name="intake")
async def intake(stream: faust.StreamT) -> None:
    await guarded(STAGE, stream, handle)
