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

from adapters.sending import SendRejected, SendRetryable, SendUnconfirmed
from agents.channels import message_id, plan
from agents.routing import audit, guarded, parse, publish, wait_until_due
from app import delivery as transports
from app.main import app, settings, topics
from app.storage import seller
from runtime.writes import durably
from domain.backoff import next_delay
from domain.delivery import EmailRoute, NoRoute, SmsRoute
from domain.ledger import State
from domain.messages import ack_email, ack_sms
from schemas.deliveries import AckDue, Delivery
from schemas.events import utcnow
from tables.directory import directory
from tables.ledger import get_entry, update_entry

STAGE = "ack"
BUDGET = 20.0  # seconds of retries at the most, and never past the deadline


async def handle(event: faust.EventT) -> None:
    item: AckDue = parse(AckDue, event.value)
    if not await wait_until_due((item.dueAt - utcnow()).total_seconds()):
        return
    iid = item.interactionId
    entry = get_entry(iid)
    if entry is None or entry.state is State.DELIVERED or entry.delivery or entry.deliveryIntent:
        return  # the invoice came in time (or is on its way): no acknowledgement
    if entry.ack or entry.ackIntent:
        await audit(STAGE, iid, "ALREADY_ACKNOWLEDGED")
        return
    left = (item.intakeAt + timedelta(seconds=settings.ack_deadline_seconds) - utcnow()).total_seconds()
    if left <= 0:
        await audit(STAGE, iid, "ACK_SKIPPED", "too late")
        return
    await directory.ready()
    customer = directory.customers.get(item.customerId)
    if customer is None:
        await audit(STAGE, iid, "ACK_SKIPPED", "customer unknown")
        return
    r = await plan(customer)
    if isinstance(r, NoRoute) or not isinstance(r, (EmailRoute, SmsRoute)):
        await audit(STAGE, iid, "ACK_SKIPPED", r.reason if isinstance(r, NoRoute) else "postal customer")
        return
    channel = "EMAIL" if isinstance(r, EmailRoute) else "SMS"
    await durably(update_entry, iid, ackIntent={"channel": channel, "at": utcnow().isoformat()})
    mid = message_id(iid, "ack")
    name = seller().name
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(BUDGET, left)
    attempt = 0
    while True:
        try:
            if isinstance(r, EmailRoute):
                transport, provider = await transports.send_email(r.address, ack_email(name, transports.redactor()), mid)
            else:
                transport, provider = await transports.send_sms(r.number, ack_sms(name, transports.redactor()))
            break
        except SendRetryable as e:
            delay = next_delay(attempt, 0.5, 5.0, e.retry_after)
            attempt += 1
            if loop.time() + delay > deadline:
                update_entry(iid, ackIntent=None)
                await audit(STAGE, iid, "ACK_FAILED", e.reason)
                return
            await asyncio.sleep(delay)
        except (SendRejected, SendUnconfirmed) as e:
            await audit(STAGE, iid, "ACK_FAILED", e.reason)  # the intent stays: never a second try
            return
    done = Delivery(interactionId=iid, kind="ack", channel=channel, transport=transport, providerId=provider,
                    messageId=mid if transport == "smtp" else None)
    update_entry(iid, ack=done.model_dump(mode="json", exclude_none=True))
    await publish("callbill.deliveries", iid, done, wait=False)
    await audit(STAGE, iid, "ACKNOWLEDGED", channel)


@app.agent(topics["callbill.acks"], name="acks")
async def acks(stream: faust.StreamT) -> None:
    await guarded(STAGE, stream, handle)
