"""callbill.documents -> the customer (email, SMS or postal job) -> callbill.deliveries.

Never twice: before a send the ledger records the intent, and waits until Kafka has it;
after the send, the outcome. A message seen again (crash, rebalance, replay) finds the
outcome and sends nothing. An intent without an outcome means the worker died (or the
connection broke) between the two, and nobody knows whether the customer got the
message: the rule is review (DELIVERY_UNCONFIRMED), never a blind resend (README).

What cannot be sent goes to review with its reason: an invalid or suppressed address
(edge case 3), no possible channel, a refused message. A busy server (SMTP 4xx, Genesys
429/503, unreachable) backs off inside the batch, then the invoice is parked on
callbill.retry. A recipient refused for good is a hard bounce (agents/bounces.py).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from agents.context import Context
from adapters.sending import SendRejected, SendRetryable, SendUnconfirmed
from agents.batching import Batch, Parked, attempt_of, park, run_batches, with_backoff
from agents.channels import message_id, plan
from agents.routing import event_context, guard_one, header, parse, source_of
from runtime import headers
from runtime.logs import get_logger
from runtime.metrics import END_TO_END, EXTERNAL_ERRORS
from runtime.writes import durably
from domain.delivery import EmailRoute, NoRoute, PostalRoute, Route, SmsRoute, normalize_email
from domain.ledger import LedgerEntry, State
from domain.i18n import Localizer
from domain.messages import MessageData, invoice_email, invoice_sms, postal_cover
from schemas.customers import Customer
from schemas.deliveries import Bounce, Delivery, PostalJob, PostalRecipient
from schemas.documents import DocumentStored
from schemas.invoices import Invoice

STAGE = "delivery"
CHANNEL = {EmailRoute: "EMAIL", SmsRoute: "SMS", PostalRoute: "POSTAL"}
log = get_logger("delivery")


def message_data(ctx: Context, invoice: Invoice, doc: DocumentStored, customer: Customer,
                 loc: Localizer) -> MessageData:
    """In the invoice's language and formats (chosen at billing, so the email matches the PDF)."""
    s = ctx.services.seller
    return MessageData(
        invoiceNumber=invoice.invoiceNumber, seller=s.name, amount=loc.money(invoice.total, invoice.currency),
        dueDate=loc.date(invoice.dueDate), url=doc.url, expires=loc.moment(doc.expiresAt, invoice.timezone),
        renewUrl=doc.renewUrl, contact=s.contact or s.name, name=customer.name or None,
        einvoiceUrl=doc.einvoice.url if doc.einvoice else None, facturx=doc.facturx,
        correcting=invoice.precedingInvoice.invoiceNumber if invoice.precedingInvoice else None)


async def send(ctx: Context, r: Route, invoice: Invoice, doc: DocumentStored, customer: Customer, mid: str,
               on_start: Callable[[], Awaitable[None]]) -> tuple[str, str]:
    """(transport, provider id); raises the adapters/sending.py errors. `on_start` (the
    intent record) is awaited right before the message leaves."""
    redact = ctx.services.transports.redactor()
    loc = ctx.services.catalogs.localizer(invoice.locale)
    data = message_data(ctx, invoice, doc, customer, loc)
    if isinstance(r, EmailRoute):
        return await ctx.services.transports.send_email(
            r.address, invoice_email(data, loc, redact, ctx.settings.mail_subject), mid, on_start)
    if isinstance(r, SmsRoute):
        return await ctx.services.transports.send_sms(r.number, invoice_sms(data, loc, redact), on_start)
    assert isinstance(r, PostalRoute)
    await on_start()
    job = PostalJob(interactionId=invoice.interactionId, invoiceNumber=invoice.invoiceNumber, documentKey=doc.key,
                    storage=doc.storage, url=doc.url, expiresAt=doc.expiresAt, sha256=doc.sha256,
                    recipient=PostalRecipient(name=redact(r.name) if r.name else None,
                                              lines=[redact(x) for x in r.lines], country=r.country),
                    locale=loc.tag, coverText=postal_cover(data, loc, redact))
    fut = await ctx.publish("callbill.postal", invoice.interactionId, job)
    meta = fut.result()
    return "postal", f"{meta.topic}/{meta.partition}/{meta.offset}"


def system_of(ctx: Context, r: Route) -> str:
    """The outside system a route's send goes to, for the error and latency metrics."""
    if isinstance(r, EmailRoute):
        return ctx.settings.email_transport  # smtp or genesys
    return "genesys" if isinstance(r, SmsRoute) else "kafka"


async def send_with_backoff(ctx: Context, r: Route, invoice: Invoice, doc: DocumentStored, customer: Customer, mid: str,
                            batch: Batch, on_start: Callable[[], Awaitable[None]]) -> tuple[str, str] | Parked:
    return await with_backoff(ctx, lambda: send(ctx, r, invoice, doc, customer, mid, on_start), SendRetryable, batch,
                              ctx.settings.delivery_attempts, system_of(ctx, r), lambda e: "retryable")


class Intent:
    """The ledger's "about to send" record, written once and only when the message is about
    to leave (a connection held): an invoice still waiting for a free SMTP connection when
    the worker dies has no intent, so it is sent after the restart instead of going to
    review as unconfirmed. Kafka has the record before the send starts."""

    def __init__(self, ctx: Context, iid: str, fields: dict) -> None:
        self.ctx, self.iid, self.fields, self.written = ctx, iid, fields, False

    async def record(self) -> None:
        if not self.written:
            await durably(self.ctx.ledger.update, self.iid,
                          deliveryIntent={**self.fields, "at": self.ctx.clock().isoformat()})
            self.written = True


async def to_review(ctx: Context, iid: str, reason: str, detail: str, **changes) -> None:
    ctx.ledger.update(iid, state=State.REVIEW, reason=reason, **changes)
    await ctx.review(STAGE, iid, reason, detail=detail)
    await ctx.audit(STAGE, iid, "REVIEW", reason)


async def announce_again(ctx: Context, iid: str, entry: LedgerEntry) -> None:
    """The records of a decided outcome, written again: the delivery (or the refusal's
    bounce or review). Consumers take them by interactionId and attempt, so twice is fine."""
    outcome = entry.delivery
    if outcome is not None and outcome.status == "SENT":
        done = Delivery.model_validate({k: v for k, v in outcome.model_dump(mode="json").items()
                                        if k in Delivery.model_fields})
        await ctx.publish("callbill.deliveries", iid, done, wait=False)
        await ctx.audit(STAGE, iid, "DELIVERED", f"{done.channel} (republished after a restart)")
    elif entry.state is State.REVIEW:
        await ctx.review(STAGE, iid, entry.reason or f"DELIVERY_REJECTED:{outcome.channel if outcome else None}",
                         detail=outcome.reason if outcome else None)
        await ctx.audit(STAGE, iid, "REVIEW", entry.reason)
    elif outcome is not None and outcome.bounced:  # a hard bounce the bounce agent may not have seen
        await ctx.directory.ready()
        customer = ctx.directory.customers.get(entry.invoice.customerReference if entry.invoice else "")
        if customer is None or not customer.email:
            await to_review(ctx, iid, "NO_CUSTOMER", "the customer is no longer in the directory")
            return
        await hard_bounce(ctx, iid, normalize_email(customer.email), outcome.bounceStatus, outcome.reason or "")


async def hard_bounce(ctx: Context, iid: str, address: str, status: str | None, reason: str) -> None:
    """To the bounce agent, which suppresses the address and opens the review."""
    await ctx.publish("callbill.bounces", iid, Bounce(address=address.lower(), kind="hard", status=status,
                                                 diagnostic=reason, interactionId=iid,
                                                 messageId=message_id(ctx, iid, "invoice"), source="smtp"))
    await ctx.audit(STAGE, iid, "BOUNCED", reason)


async def deliver(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    doc: DocumentStored = parse(DocumentStored, event.value)
    iid = doc.record_id  # a credit note's records: `<interactionId>~<creditNumber>`
    entry = ctx.ledger.get(iid)
    if entry is None or not entry.invoice:
        await ctx.audit(STAGE, iid, "REVIEW", "NO_INVOICE_RECORD")
        await ctx.review(STAGE, iid, "NO_INVOICE_RECORD", detail="a document arrived for an interaction the ledger "
                     "has no invoice for (a replay from elsewhere?)")
        return
    run = header(event, headers.REISSUE)
    if run and run not in entry.reissued:
        # an operator asked for a new message (callbill replay --force-reissue): open the next attempt
        current = entry.deliveryAttempt
        started = max(r.attempt if r else 0 for r in (entry.deliveryIntent, entry.delivery))
        entry = await durably(ctx.ledger.update, iid, reissued=[*entry.reissued, run],
                              deliveryAttempt=current + 1 if started >= current else current) or entry
    attempt = entry.deliveryAttempt
    source = source_of(event)
    if entry.delivery and entry.delivery.attempt >= attempt:
        if entry.deliverySource == source:
            # redelivered after a crash: the ledger has the outcome, but what announces it
            # may not have landed before the worker died. Announced again; nothing is sent.
            await announce_again(ctx, iid, entry)
            return
        await ctx.audit(STAGE, iid, "ALREADY_DELIVERED", entry.delivery.channel)
        return
    if entry.deliveryIntent and entry.deliveryIntent.attempt >= attempt:
        if entry.state is not State.REVIEW:
            await to_review(ctx, iid, "DELIVERY_UNCONFIRMED",
                            f"a {entry.deliveryIntent.channel} send started and its outcome was never "
                            "recorded (worker stopped mid-send); check with the customer before resending",
                            deliverySource=source)
        elif entry.deliverySource == source:
            await announce_again(ctx, iid, entry)  # the review may not have landed before a crash
        return

    invoice = entry.invoice
    await ctx.directory.ready()
    customer = ctx.directory.customers.get(invoice.customerReference)
    if customer is None:
        await to_review(ctx, iid, "NO_CUSTOMER", "the customer is no longer in the directory")
        return
    r = await plan(ctx, customer)
    if isinstance(r, NoRoute):
        await to_review(ctx, iid, r.reason, r.detail)
        return

    channel = CHANNEL[type(r)]
    mid = message_id(ctx, iid, "invoice")
    intent = Intent(ctx, iid, {"attempt": attempt, "channel": channel})
    try:
        outcome = await send_with_backoff(ctx, r, invoice, doc, customer, mid, batch, intent.record)
    except SendUnconfirmed as e:
        EXTERNAL_ERRORS.labels(system_of(ctx, r), "unconfirmed").inc()
        await to_review(ctx, iid, "DELIVERY_UNCONFIRMED", f"{e.reason}: the message may have been sent",
                        deliverySource=source)
        return
    except SendRejected as e:
        EXTERNAL_ERRORS.labels(system_of(ctx, r), "rejected").inc()
        failed = {"attempt": attempt, "channel": channel, "status": "FAILED", "reason": e.reason,
                  "at": ctx.clock().isoformat()}
        if e.bounce and isinstance(r, EmailRoute):
            ctx.ledger.update(iid, delivery={**failed, "bounceStatus": e.status}, deliverySource=source)
            await hard_bounce(ctx, iid, r.address, e.status, e.reason)
        else:
            await to_review(ctx, iid, f"DELIVERY_REJECTED:{channel}", e.reason, delivery=failed, deliverySource=source)
        return
    if isinstance(outcome, Parked):
        # nothing was sent: the intent (if one was written) is withdrawn so the retry may send
        if intent.written:
            ctx.ledger.update(iid, deliveryIntent=None)
        if isinstance(r, EmailRoute) and outcome.recipient and attempt_of(event) >= ctx.settings.soft_bounce_limit:
            # the recipient was refused with 4xx on every attempt: the limit's soft bounce
            entry = ctx.ledger.get(iid)
            ctx.ledger.update(iid, softBounces=max(entry.softBounces if entry else 0, ctx.settings.soft_bounce_limit - 1))
            await ctx.publish("callbill.bounces", iid, Bounce(address=r.address.lower(), kind="soft", diagnostic=outcome.reason,
                                                         interactionId=iid, messageId=mid, source="smtp"))
            await ctx.audit(STAGE, iid, "BOUNCED", "soft bounce limit")
            return
        await park(ctx, STAGE, event, iid, "callbill.documents", doc, outcome)
        return
    transport, provider_id = outcome
    done = Delivery(interactionId=doc.interactionId, invoiceNumber=invoice.invoiceNumber,
                    kind="creditNote" if invoice.is_credit_note else "invoice", channel=channel, transport=transport,
                    providerId=provider_id, attempt=attempt,
                    # only an SMTP send carries our Message-ID; Genesys gives its own conversation id
                    messageId=mid if transport == "smtp" else None)
    ctx.ledger.update(iid, state=State.DELIVERED, reason=None, deliverySource=source,
                 delivery={**done.model_dump(mode="json", exclude_none=True), "status": "SENT"})
    await ctx.publish("callbill.deliveries", iid, done, wait=False)
    END_TO_END.observe(max(0.0, (done.time - invoice.serviceAt).total_seconds()))
    await ctx.audit(STAGE, iid, "DELIVERED", channel)


async def deliver_one(ctx: Context, event: faust.EventT, batch: Batch) -> None:
    with event_context(event):
        await guard_one(ctx, STAGE, event, lambda e: deliver(ctx, e, batch))


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.documents"], name="delivery")
    async def delivery(stream: faust.StreamT) -> None:
        await run_batches(stream, STAGE, ctx.settings.delivery_batch, ctx.settings.batch_window,
                          lambda e, b: deliver_one(ctx, e, b))
