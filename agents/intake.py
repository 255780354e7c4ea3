"""callbill.interactions -> callbill.billable: billable, customer known, first time seen.

Every decision is audited; nothing is dropped silently. A missing customer goes to review
(the guide's first trap), a repeat is counted on the ledger and never forwarded.
"""
from __future__ import annotations

from datetime import timedelta

import faust

from agents.context import Context
from agents.routing import guarded, parse, source_of
from domain.intake import Outcome, decide
from domain.ledger import LedgerEntry
from schemas.deliveries import AckDue
from schemas.events import InteractionCompleted

STAGE = "intake"


async def due_ack(ctx: Context, iid: str, interaction: InteractionCompleted, entry: LedgerEntry | None) -> None:
    """The "Processing Received" acknowledgement falls due (agents/acks.py sends it once)."""
    if ctx.settings.ack_after_seconds > 0 and interaction.customerId and entry is not None:
        at = entry.firstSeen
        await ctx.publish("callbill.acks", iid, AckDue(
            interactionId=iid, customerId=interaction.customerId, intakeAt=at,
            dueAt=at + timedelta(seconds=ctx.settings.ack_after_seconds)), wait=False)


async def handle(ctx: Context, event: faust.EventT) -> None:
    interaction: InteractionCompleted = parse(InteractionCompleted, event.value)
    iid = interaction.interactionId
    source = source_of(event)
    entry = ctx.ledger.get(iid)
    decision = decide(interaction, entry, ctx.settings.billable_code_set, ctx.clock(), source)
    if decision.entry is not None:
        ctx.ledger.put(iid, decision.entry)
    match decision.outcome:
        case Outcome.NOT_BILLABLE:
            await ctx.audit(STAGE, iid, decision.outcome, "wrap-up code is not billable")
        case Outcome.DUPLICATE:
            await ctx.audit(STAGE, iid, decision.outcome, "already in the ledger", count=decision.entry.duplicates)
        case Outcome.MISSING_CUSTOMER:
            await ctx.review(STAGE, iid, Outcome.MISSING_CUSTOMER, interaction,
                         detail="the interaction has no customer id; fix the contact and resubmit")
            await ctx.audit(STAGE, iid, "REVIEW", Outcome.MISSING_CUSTOMER)
        case Outcome.FORWARD if decision.again:
            # its forward landed (a later stage took it), its audit and ack may not have
            await ctx.audit(STAGE, iid, decision.outcome, "read again after a restart; already forwarded")
            await due_ack(ctx, iid, interaction, entry)
        case Outcome.FORWARD:
            # Not awaited: Faust flushes the producer before committing this offset, and
            # a redelivery of this very message is recognised by the ledger's `source`.
            await ctx.publish("callbill.billable", iid, interaction, wait=False)
            await due_ack(ctx, iid, interaction, decision.entry)
            await ctx.audit(STAGE, iid, decision.outcome)


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.interactions"], name="intake")
    async def intake(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: handle(ctx, e))
