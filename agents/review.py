"""The review queue: callbill.review -> queue records; callbill.review-actions -> resubmit or dismiss.

Both agents run on the worker that owns the interaction (the topics are keyed and
partitioned like the ledger), so a resubmit can read the ledger and send the work back
to the stage that stopped it:

| stage                          | goes back to          | with                                  |
| intake (MISSING_CUSTOMER)      | callbill.interactions | the interaction, its customer filled  |
| billing                        | callbill.billable     | the interaction                       |
| documents                      | callbill.invoices     | the issued invoice from the ledger    |
| delivery, bounces              | callbill.documents    | the stored document from the ledger   |
| credits                        | callbill.credit-requests | the credit request as it was asked |

A credit note's items are keyed by its record id (`<interactionId>~<number>`, or `~<key>` for a
request without a number yet); every message about them is keyed by the interaction id.

Dedupe and idempotency still hold: each stage checks the ledger as for any message. A
delivery that may already have reached the customer (DELIVERY_UNCONFIRMED) or bounced is
sent again only because a person said so: the resubmit opens the next delivery attempt.
Assembly items cannot be resubmitted here (the conversation is incomplete at Genesys):
`callbill backfill` re-reads it once it is complete.
"""
from __future__ import annotations

import json

import faust

from agents.context import Context
from agents.stages import RESUBMIT_TARGETS
from agents.routing import guarded, parse
from domain.ledger import State
from schemas.events import InteractionCompleted, ReviewAction, ReviewItem, ReviewRecord
from schemas.invoices import kafka_key

STAGE = "review"


class CannotResubmit(Exception):
    """The text says what is missing; it names no personal data."""


async def save(ctx: Context, record: ReviewRecord) -> None:
    ctx.reviews.put(record)
    # one record per item on the compacted queue topic: a credit note's item keeps its own key
    await ctx.publish("callbill.reviews", record.interactionId, record, wait=False, exact_key=True)


async def record(ctx: Context, event: faust.EventT) -> None:
    item: ReviewItem = parse(ReviewItem, event.value)
    iid, now = item.interactionId, ctx.clock()
    old = ctx.reviews.get(iid)
    if old and old.status == "OPEN" and (old.stage, old.reason) == (item.stage, item.reason):
        rec = old.model_copy(update={"updatedAt": now, "count": old.count + 1, "detail": item.detail or old.detail})
    else:
        rec = ReviewRecord(interactionId=iid, stage=item.stage, reason=item.reason, detail=item.detail,
                           openedAt=item.time, updatedAt=now,
                           interaction=item.interaction or (old.interaction if old else None))
    await save(ctx, rec)


def customer_for(ctx: Context, interaction: InteractionCompleted, given: str | None) -> str:
    if given:
        if given not in ctx.directory.customers:
            raise CannotResubmit("that customer id is not in the customer directory: import it first")
        return given
    if interaction.customerId:
        return interaction.customerId
    found = ctx.directory.customer_for_contacts([interaction.externalContactId] if interaction.externalContactId else [])
    if found is None:
        raise CannotResubmit("no customer for this interaction yet: import the customer (with the Genesys "
                             "external contact id) or give a customer id")
    return found


async def resubmit_payload(ctx: Context, rec: ReviewRecord, action: ReviewAction) -> tuple[str, dict]:
    """(topic, payload) for a resubmit; raises CannotResubmit."""
    target = RESUBMIT_TARGETS.get(rec.stage)
    if target is None:
        raise CannotResubmit(f"{rec.stage} items cannot be resubmitted here; re-read the conversation with "
                             "`callbill backfill` once it is complete at Genesys")
    iid = rec.interactionId
    if rec.stage == "credits":  # the request as it was asked (same key: still one credit note)
        if not rec.interaction:
            raise CannotResubmit("the review item carries no credit request to resubmit")
        return target, rec.interaction
    if rec.stage in ("intake", "billing"):
        if not rec.interaction:
            raise CannotResubmit("the review item carries no interaction to resubmit")
        interaction = InteractionCompleted.model_validate(rec.interaction)
        if rec.stage == "intake" or action.customerId:
            await ctx.directory.ready()
            interaction = interaction.model_copy(update={"customerId": customer_for(ctx, interaction, action.customerId)})
        return target, interaction.model_dump(mode="json", exclude_none=True)
    entry = ctx.ledger.get(iid)
    if rec.stage == "documents":
        if entry is None or not entry.invoice:
            raise CannotResubmit("the ledger has no invoice for this interaction")
        return target, entry.invoice.model_dump(mode="json")
    if entry is None or not entry.document:
        raise CannotResubmit("the ledger has no stored document for this interaction")
    # a person decided to send again: the next delivery attempt may go (never twice on its own)
    current = entry.deliveryAttempt
    started = max(r.attempt if r else 0 for r in (entry.deliveryIntent, entry.delivery)) >= current
    ctx.ledger.update(iid, state=State.DOCUMENTED, reason=None,
                 deliveryAttempt=current + 1 if started else current, softBounces=0)
    return target, entry.document.model_dump(mode="json")


async def act(ctx: Context, event: faust.EventT) -> None:
    a: ReviewAction = parse(ReviewAction, event.value)
    iid, now = a.interactionId, ctx.clock()
    rec = ctx.reviews.get(iid)
    if rec is None or rec.status != "OPEN":
        await ctx.audit(STAGE, iid, "ACTION_IGNORED", f"{a.action}: no open review item", actor=a.actor)
        return
    if a.action == "dismiss":
        await save(ctx, rec.model_copy(update={"status": "DISMISSED", "updatedAt": now, "actor": a.actor, "note": a.note}))
        await ctx.audit(STAGE, iid, "DISMISSED", rec.reason, actor=a.actor)
        return
    try:
        topic, payload = await resubmit_payload(ctx, rec, a)
    except CannotResubmit as e:
        await save(ctx, rec.model_copy(update={"updatedAt": now, "detail": f"resubmit refused: {e}"}))
        await ctx.audit(STAGE, iid, "RESUBMIT_REFUSED", str(e), actor=a.actor)
        return
    await save(ctx, rec.model_copy(update={"status": "RESUBMITTED", "updatedAt": now, "actor": a.actor, "note": a.note}))
    await ctx.send_raw(topic, kafka_key(iid).encode(), json.dumps(payload, separators=(",", ":")).encode())
    await ctx.audit(STAGE, iid, "RESUBMITTED", f"{rec.reason} -> {topic}", actor=a.actor)


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.review"], name="review-queue")
    async def review_queue_agent(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: record(ctx, e))

    @app.agent(ctx.topics["callbill.review-actions"], name="review-actions")
    async def review_actions(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: act(ctx, e))
