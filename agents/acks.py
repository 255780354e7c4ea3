"""callbill.acks -> one "Processing Received" message when the invoice is late (edge case 1).

Intake puts a timer on callbill.acks for every billable interaction, due
CALLBILL_ACK_AFTER_SECONDS after intake. The timers of a partition are due in the order
they were written (same delay), so this agent sleeps until the first is due, then looks
at the ledger: delivered (or being delivered) → nothing; else one short message on the
customer's channel (email or SMS; postal customers get none), under the same intent /
outcome rule as invoices, so never two. A late acknowledgement is worse than none: one
that cannot go out within CALLBILL_ACK_DEADLINE_SECONDS of intake (60: the customer hears
from callbill within a minute, or not from this message) is given up and audited, never
parked; that holds for a timer read late too (an outage, a restart).
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

import faust

from agents.context import Context
from adapters.sending import SendRejected, SendRetryable, SendUnconfirmed
from agents.channels import message_id, plan
from agents.routing import guarded, parse, wait_until_due
from runtime.writes import durably
from domain.backoff import next_delay
from domain.delivery import EmailRoute, NoRoute, SmsRoute
from domain.ledger import State
from domain.messages import ack_email, ack_sms
from schemas.deliveries import AckDue, Delivery

STAGE = "ack"
BUDGET = 20.0  # seconds of retries at the most, and never past the deadline


async def handle(ctx: Context, event: faust.EventT) -> None:
    item: AckDue = parse(AckDue, event.value)
    if not await wait_until_due(ctx, (item.dueAt - ctx.clock()).total_seconds()):
        return
    iid = item.interactionId
    entry = ctx.ledger.get(iid)
    if entry is None or entry.state is State.DELIVERED or entry.delivery or entry.deliveryIntent:
        return  # the invoice came in time (or is on its way): no acknowledgement
    if entry.ack or entry.ackIntent:
        await ctx.audit(STAGE, iid, "ALREADY_ACKNOWLEDGED")
        return
    left = (item.intakeAt + timedelta(seconds=ctx.settings.ack_deadline_seconds) - ctx.clock()).total_seconds()
    if left <= 0:
        await ctx.audit(STAGE, iid, "ACK_SKIPPED", "too late")
        return
    await ctx.directory.ready()
    customer = ctx.directory.customers.get(item.customerId)
    if customer is None:
        await ctx.audit(STAGE, iid, "ACK_SKIPPED", "customer unknown")
        return
    r = await plan(ctx, customer)
    if isinstance(r, NoRoute) or not isinstance(r, (EmailRoute, SmsRoute)):
        await ctx.audit(STAGE, iid, "ACK_SKIPPED", r.reason if isinstance(r, NoRoute) else "postal customer")
        return
    channel = "EMAIL" if isinstance(r, EmailRoute) else "SMS"
    await durably(ctx.ledger.update, iid, ackIntent={"channel": channel, "at": ctx.clock().isoformat()})
    mid = message_id(ctx, iid, "ack")
    name = ctx.services.seller.name
    loc = ctx.services.catalogs.localizer(customer.locale)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(BUDGET, left)
    attempt = 0
    while True:
        try:
            if isinstance(r, EmailRoute):
                transport, provider = await ctx.services.transports.send_email(r.address, ack_email(name, loc, ctx.services.transports.redactor()), mid)
            else:
                transport, provider = await ctx.services.transports.send_sms(r.number, ack_sms(name, loc, ctx.services.transports.redactor()))
            break
        except SendRetryable as e:
            delay = next_delay(attempt, 0.5, 5.0, e.retry_after)
            attempt += 1
            if loop.time() + delay > deadline:
                ctx.ledger.update(iid, ackIntent=None)
                await ctx.audit(STAGE, iid, "ACK_FAILED", e.reason)
                return
            await asyncio.sleep(delay)
        except (SendRejected, SendUnconfirmed) as e:
            await ctx.audit(STAGE, iid, "ACK_FAILED", e.reason)  # the intent stays: never a second try
            return
    done = Delivery(interactionId=iid, kind="ack", channel=channel, transport=transport, providerId=provider,
                    messageId=mid if transport == "smtp" else None)
    ctx.ledger.update(iid, ack=done.model_dump(mode="json", exclude_none=True))
    await ctx.publish("callbill.deliveries", iid, done, wait=False)
    await ctx.audit(STAGE, iid, "ACKNOWLEDGED", channel)


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.acks"], name="acks")
    async def acks(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: handle(ctx, e))
